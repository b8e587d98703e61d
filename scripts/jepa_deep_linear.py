"""Deep-linear JEPA vs MAE (Littwin et al., NeurIPS 2024): which feature does each objective learn first?

Two features: f0 has high variance but is noisy (lambda 4, rho 0.4), f1 low variance but predictive (lambda 1,
rho 0.9), so lambda*rho favours f0 and rho favours f1. Writes a PNG of the end-to-end map per feature over time
for encoder depths 1-3 and prints when each feature is learned (its map reaches rho / 2).

    python scripts/jepa_deep_linear.py --output outputs/jepa_deep_linear.png
"""

import argparse
from pathlib import Path

import torch

from hf_mim.models.jepa.deep_linear import simulate

LAMBDAS, RHOS = [4.0, 1.0], [0.4, 0.9]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/jepa_deep_linear.png")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--init_scale", type=float, default=0.3)
    parser.add_argument("--total_time", type=float, default=300.0)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args(argv)

    try:
        import matplotlib
    except ImportError:
        raise SystemExit('this script plots with matplotlib: pip install -e ".[plots]"') from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rho = torch.tensor(RHOS, dtype=torch.float64)
    fig, axes = plt.subplots(2, len(args.depths), figsize=(4 * len(args.depths), 6), squeeze=False, sharey=True)
    print(f"{'objective':<9} {'depth':>5} {'f0 learned at':>14} {'f1 learned at':>14} {'final w0':>9} {'final w1':>9}")
    for row, objective in enumerate(("mae", "jepa")):
        for col, depth in enumerate(args.depths):
            run = simulate(objective, depth, LAMBDAS, RHOS, args.init_scale, args.lr, args.total_time, record_every=50)
            t0, t1 = (f"{t:.1f}" if t is not None else "never" for t in run.time_to_learn(rho))
            w0, w1 = run.encoder[-1].tolist()
            print(f"{objective:<9} {depth:>5} {t0:>14} {t1:>14} {w0:>9.3f} {w1:>9.3f}")
            ax = axes[row][col]
            for i, (lam, r) in enumerate(zip(LAMBDAS, RHOS)):
                ax.plot(run.times, run.end_to_end[:, i] / r, label=f"f{i}: lambda={lam}, rho={r}")
            ax.set_title(f"{objective.upper()}, depth {depth}")
            ax.set_xlabel("time (lr x steps)")
            ax.set_ylim(-0.05, 1.1)
    axes[0][0].set_ylabel("end-to-end map / rho")
    axes[1][0].set_ylabel("end-to-end map / rho")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("MAE learns the high-variance noisy feature first; JEPA the predictive one")
    fig.tight_layout()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()

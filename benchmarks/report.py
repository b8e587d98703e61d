"""Markdown tables for benchmarks/RESULTS.md from the JSON files the benchmarks write (so no number is typed by
hand). Usage: python benchmarks/report.py benchmarks/results/cifar_*.json (quality) or
benchmarks/results/bench_*.json (speed, from benchmarks/run.py)."""

import json
import sys


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def quality_table(rows: list[dict]) -> str:
    lines = [
        "| method | teacher | images seen | train min | loss first → last | pooling | kNN k=20 | kNN k=200 | linear probe "
        "| random init: kNN k=20 / probe |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['method']} | | | | failed: {row['error'][:80]} | | | | | |")
            continue
        for pooling, metrics in row["pretrained"].items():
            random = (row.get("random_init") or {}).get(pooling)
            baseline = f"{pct(random['knn_top1_k20'])} / {pct(random['linear_probe_top1'])}" if random else "-"
            teacher = "hf_mim MAE" if row.get("teacher") else ""
            lines.append(
                f"| {row['method']} | {teacher} | {row['train_images']:,} | {row['train_minutes']} | "
                f"{row['loss_first']} → {row['loss_last']} | {pooling} | {pct(metrics['knn_top1_k20'])} | "
                f"{pct(metrics['knn_top1_k200'])} | {pct(metrics['linear_probe_top1'])} | {baseline} |"
            )
    return "\n".join(lines)


def online_table(rows: list[dict]) -> str:
    lines = ["| method | step | online kNN k=20 | online probe |", "|---|---|---|---|"]
    for row in rows:
        for entry in row.get("online_probe") or []:
            lines.append(
                f"| {row['method']} | {entry['step']} | {pct(entry['online_knn_top1'])} | {pct(entry['online_probe_top1'])} |"
            )
    return "\n".join(lines)


def speed_table(rows: list[dict]) -> str:
    """Rows of `benchmarks/run.py` (hf_mim vs transformers)."""
    lines = [
        "| method | size | dtype | mode | train img/s hf_mim | transformers | train ratio (pair quartiles) "
        "| inference ratio "
        "| saved activations MB hf_mim | transformers | matrix-math share hf_mim / transformers |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        low, high = r.get("train_ratio_quartiles") or (None, None)
        quartiles = "" if low is None else f" ({low:.2f}-{high:.2f})"
        share = "" if r.get("ours_kernel_share") is None else (
            f"{100 * r['ours_kernel_share']:.0f}% / {100 * r['theirs_kernel_share']:.0f}%"
        )
        lines.append(
            f"| {r['method']} | {r['size']} | {r['dtype']} | {r['mode']} | {r['ours_train_ips']:.2f} "
            f"| {r['theirs_train_ips']:.2f} | {r['train_ratio']:.2f}{quartiles} | {r['infer_ratio']:.2f} "
            f"| {r['ours_memory_mb']:.1f} | {r['theirs_memory_mb']:.1f} | {share} |"
        )
    return "\n".join(lines)


def e2e_table(reports: list[dict]) -> str:
    """Reports of `benchmarks/e2e.py` (hf-mim pretrain vs transformers' run_mae.py recipe, whole training loop)."""
    lines = [
        "| size | image | batch | workers | threads | device | e2e img/s hf_mim | run_mae recipe | ratio "
        "| loader img/s hf_mim | run_mae recipe | CPU ms/image decode+augment+collate hf_mim | run_mae recipe "
        "| MFU hf_mim / recipe | peak GPU memory MB hf_mim / recipe |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def stages(row):
        cost = row.get("stage_cpu_ms")
        return "-" if not cost else f"{cost['decode']:.2f}+{cost['augment']:.2f}+{cost['collate']:.2f}"

    def mfu(row):
        return "-" if row.get("mfu") is None else f"{100 * row['mfu']:.1f}%"

    def memory(row):
        runs = [r["peak_memory_mb"] for r in row.get("runs", []) if "peak_memory_mb" in r]
        return f"{max(runs):.0f}" if runs else "-"

    for report in reports:
        s, ours, theirs = report["settings"], report["e2e"]["hf_mim"], report["e2e"]["transformers"]
        device = report["environment"].get("gpu", report["environment"]["device"])
        lines.append(
            f"| {s['size']} | {s['image_size']} | {s['batch']} | {s['workers']} | {s['threads']} | {device} "
            f"| {ours['train_ips']:.1f} | {theirs['train_ips']:.1f} | {report['ratio']:.2f} | {ours['loader_ips']:.0f} "
            f"| {theirs['loader_ips']:.0f} | {stages(ours)} | {stages(theirs)} | {mfu(ours)} / {mfu(theirs)} "
            f"| {memory(ours)} / {memory(theirs)} |"
        )
    return "\n".join(lines)


def main(paths: list[str]) -> None:
    loaded = [json.load(open(path)) for path in paths]
    e2e = [data for data in loaded if isinstance(data, dict) and "e2e" in data]
    if e2e:
        print(e2e_table(e2e))
    loaded = [data for data in loaded if not (isinstance(data, dict) and "e2e" in data)]
    speed = [row for data in loaded if isinstance(data, dict) for row in data["results"]]
    rows = [row for data in loaded if isinstance(data, list) for row in data]
    if rows:
        print(quality_table(rows))
    if any(row.get("online_probe") for row in rows):
        print()
        print(online_table(rows))
    if speed:
        print(speed_table(speed))


if __name__ == "__main__":
    main(sys.argv[1:])

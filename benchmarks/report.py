"""Markdown tables for benchmarks/RESULTS.md from the JSON files the benchmarks write (so no number is typed by
hand). Usage: python benchmarks/report.py benchmarks/results/cifar_*.json"""

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


def main(paths: list[str]) -> None:
    rows = [row for path in paths for row in json.load(open(path))]
    print(quality_table(rows))
    if any(row.get("online_probe") for row in rows):
        print()
        print(online_table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Score reports a person reads: a JSON file with everything, Markdown tables, and the PNG plots."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence as Seq

from dytrack_ros.eval.plots import plot_curves, plot_tradeoff
from dytrack_ros.eval.score import ResultSetScore

PROTOCOL_NOTE = (
    "OPE = pytracking/OSTrack semantics (21 IoU thresholds, strict >, frame 1 forced to GT and counted, "
    "invisible frames count as failures; sequence-weighted). AO/SR = GOT-10k toolkit semantics "
    "(frame 1 dropped, frames with cover>0, boxes clipped to the image, frame-weighted). "
    "fps = tracked frames / tracker seconds (initialisation excluded). Scores in percent; '-' = not measured."
)
FORMAT_VERSION = 2  # 2: AO/SR in percent like every other score; ope.avg_overlap dropped
UNITS = {
    "ope.auc, ope.precision, ope.norm_precision, got10k.ao, got10k.sr50, got10k.sr75, per_sequence[].auc, "
    "per_sequence[].precision, per_sequence[].ao, per_attribute.*.auc/precision/norm_precision/ao": "percent [0, 100]",
    "*.success_curve.values, *.precision_curve.values, *.norm_precision_curve.values": "fraction of frames [0, 1]",
    "speed.fps, per_sequence[].fps": "tracked frames per tracker second; null = no _time.txt",
    "speed.ms_per_frame": "milliseconds per tracked frame; null = no _time.txt",
    "speed.mean_layers, per_sequence[].mean_layers": "executed transformer layers; null = no _exit.txt",
    "repaired_lines": "result file -> 1-based lines replaced by the previous valid box (--repair-invalid)",
}


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


def markdown_tables(scores: Seq[ResultSetScore], dataset: str = "") -> str:
    """Main table (one row per result set), exit-depth histograms and per-attribute AUC."""
    lines = []
    if dataset:
        lines += [f"## {dataset}", ""]
    lines += [
        "| Tracker | AUC | P@20 | NP@0.20 | AO | SR0.5 | SR0.75 | fps | ms/frame | mean layers | seqs | frames |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(
            f"| {s.label} | {_fmt(s.ope.auc)} | {_fmt(s.ope.precision)} | {_fmt(s.ope.norm_precision)} | "
            f"{_fmt(s.got10k.ao)} | {_fmt(s.got10k.sr50)} | {_fmt(s.got10k.sr75)} | "
            f"{_fmt(s.speed.fps)} | {_fmt(s.speed.ms_per_frame, 2)} | {_fmt(s.speed.mean_layers, 2)} | "
            f"{s.ope.num_sequences} | {s.ope.num_frames} |"
        )
    lines += ["", f"_{PROTOCOL_NOTE}_", ""]
    depth = [s for s in scores if s.speed.exit_histogram]
    if depth:
        layers = sorted({k for s in depth for k in s.speed.exit_histogram})
        lines += ["### Exit depth (share of tracked frames per exit layer)", "",
                  "| Tracker | " + " | ".join(f"layer {k}" for k in layers) + " |",
                  "|---|" + "---|" * len(layers)]
        for s in depth:
            total = sum(s.speed.exit_histogram.values())
            cells = [f"{100 * s.speed.exit_histogram.get(k, 0) / total:.1f}%" for k in layers]
            lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
        lines.append("")
    attrs = sorted({a for s in scores for a in s.per_attribute})
    if attrs:
        lines += ["### Success AUC per attribute", "",
                  "| Attribute | seqs | " + " | ".join(s.label for s in scores) + " |",
                  "|---|---|" + "---|" * len(scores)]
        for a in attrs:
            n = max(s.per_attribute.get(a, {}).get("num_sequences", 0) for s in scores)
            cells = [_fmt(s.per_attribute.get(a, {}).get("auc")) for s in scores]
            lines.append(f"| {a} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    missing = [s for s in scores if s.missing]
    for s in missing:
        lines.append(f"- {s.label}: scored without {len(s.missing)} sequence(s) that have no results")
    for s in scores:
        if s.repaired:
            rows = sum(len(v) for v in s.repaired.values())
            lines.append(f"- {s.label}: {rows} invalid box row(s) in {len(s.repaired)} file(s) replaced by the "
                         "previous valid box (--repair-invalid)")
    return "\n".join(lines).rstrip() + "\n"


def write_report(scores: Seq[ResultSetScore], out_dir: str | Path, dataset: str = "") -> dict[str, Path]:
    """Write ``scores.json``, ``scores.md``, ``curves.png`` and ``tradeoff.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "scores.json",
        "markdown": out_dir / "scores.md",
        "curves": out_dir / "curves.png",
        "tradeoff": out_dir / "tradeoff.png",
    }
    payload = {"format_version": FORMAT_VERSION, "dataset": dataset, "protocol": PROTOCOL_NOTE, "units": UNITS,
               "results": [s.to_dict() for s in scores]}
    paths["json"].write_text(json.dumps(payload, indent=2))
    paths["markdown"].write_text(markdown_tables(scores, dataset))
    plot_curves(scores, paths["curves"], title=dataset)
    plot_tradeoff(scores, paths["tradeoff"], title=dataset)
    return paths

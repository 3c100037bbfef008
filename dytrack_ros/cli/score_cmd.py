"""dytrack score: success/precision/normalised precision, GOT-10k AO/SR, fps and exit depth of result folders."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    """--format/--root/--split/--sequences (shared with dytrack eval)."""
    from ..data.readers import FORMATS

    g = p.add_argument_group("dataset")
    g.add_argument("--format", required=True, choices=FORMATS, help="dataset layout")
    g.add_argument("--root", required=True, metavar="DIR", help="dataset root folder")
    g.add_argument("--split", default=None,
                   help="GOT-10k: train/val/test (default: the folder itself, else val); LaSOT: test (official 280, "
                        "default)/train/all; TrackingNet: test (default)/train/TRAIN_k; ignored for OTB")
    g.add_argument("--sequences", default=None, metavar="A,B,...",
                   help="only these sequences (comma-separated names, or @FILE with one name per line)")


def add_repair_option(p: argparse.ArgumentParser) -> None:
    """--repair-invalid (shared with dytrack eval)."""
    p.add_argument("--repair-invalid", action="store_true",
                   help="score result files that hold invalid boxes (NaN/inf, negative width or height) by replacing "
                        "each such row with the previous valid box of the file (row 1: the ground-truth init box); "
                        "prints how many rows were replaced per file. Without it such files are refused")


def parse_sequences(text: str | None) -> list[str] | None:
    if not text:
        return None
    if text.startswith("@"):
        return [ln.strip() for ln in Path(text[1:]).read_text().splitlines() if ln.strip()]
    return [s.strip() for s in text.split(",") if s.strip()]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score", help="score result folders (AUC, precision, AO/SR, fps, exit depth) with tables and plots",
        description="Score one or more result folders written by 'dytrack eval' (or any tool writing <seq>.txt "
                    "with x,y,w,h per line) against a dataset. OPE metrics follow pytracking/OSTrack exactly "
                    "(21 thresholds, strict >, frame 1 forced to GT, invisible frames = failures); AO/SR follow "
                    "the GOT-10k toolkit. Writes scores.json, scores.md, curves.png (success/precision curves "
                    "side by side) and tradeoff.png (AUC vs fps and vs mean executed layers).")
    add_dataset_options(p)
    p.add_argument("--results", required=True, nargs="+", action="extend", metavar="DIR",
                   help="result folder(s); repeatable. A folder of threshold-sweep sub-folders expands to all of them")
    p.add_argument("--labels", default=None, metavar="A,B,...",
                   help="legend names for the result folders, in order (default: from run_info.json or folder name)")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="where to write the report (default: <first results folder>/report)")
    p.add_argument("--allow-missing", action="store_true",
                   help="score sequences that have results and list the others instead of failing")
    add_repair_option(p)
    p.set_defaults(func=run)


def score_and_report(sequences, result_dirs, report_dir, dataset: str, labels=None, allow_missing=False,
                     repair_invalid=False) -> list:
    """Score every result folder and write the report; returns the scores."""
    from ..eval.report import write_report
    from ..eval.score import expand_result_dirs, score_results

    dirs = expand_result_dirs(result_dirs)
    if labels and len(labels) != len(dirs):
        raise ValueError(f"{len(labels)} labels for {len(dirs)} result folders")
    scores = [score_results(sequences, d, label=(labels[i] if labels else None), allow_missing=allow_missing,
                            repair_invalid=repair_invalid)
              for i, d in enumerate(dirs)]
    for s in scores:
        for path, lines in s.repaired.items():
            shown = ",".join(str(n) for n in lines[:10]) + (",..." if len(lines) > 10 else "")
            print(f"repaired {len(lines)} invalid row(s) in {path} (lines {shown}): previous valid box")
    paths = write_report(scores, report_dir, dataset)
    from ..eval.report import markdown_tables

    print(markdown_tables(scores, dataset))
    for s in scores:
        ls = s.lost_status
        if ls and ls["absent"]:
            fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
            print(f"{s.label}: lost status vs absence: precision {fmt(ls['precision'])}%, recall "
                  f"{fmt(ls['recall'])}% ({ls['absent']} absent of {ls['frames']} frames)")
    print(f"report: {paths['markdown']} {paths['curves']} {paths['tradeoff']}")
    return scores


def run(args: argparse.Namespace) -> int:
    from ..data import DatasetError, load_dataset
    from ..eval.metrics import MetricInputError
    from ..eval.score import ScoreError

    try:
        seqs = load_dataset(args.format, args.root, args.split, parse_sequences(args.sequences))
        report = args.report or str(Path(args.results[0]) / "report")
        labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
        score_and_report(seqs, args.results, report, f"{args.format} {Path(args.root).name}"
                         + (f" ({args.split})" if args.split else ""), labels, args.allow_missing,
                         args.repair_invalid)
    except (DatasetError, ScoreError, MetricInputError, ValueError, OSError) as exc:
        print(f"dytrack score: error: {exc}", file=sys.stderr)
        return 2
    return 0

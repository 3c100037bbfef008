"""dytrack eval: run a tracker (or an OpenCV baseline) over a benchmark, resumable, then score it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    add_budget_options,
    add_model_options,
    add_recovery_options,
    budget_config_from_args,
    parse_floats,
    runtime_options_from_args,
    tracker_config_from_args,
)
from .score_cmd import add_dataset_options, add_repair_option, parse_sequences


def add_parser(sub) -> None:
    from ..eval.runner import OPENCV_TRACKERS

    p = sub.add_parser(
        "eval", help="run a tracker over a benchmark (parallel, resumable) and score it",
        description="Run a tracker over every sequence of a dataset, initialised from the first ground-truth box. "
                    "Writes <seq>.txt (x,y,w,h per frame, first line = init box), <seq>_time.txt (seconds per "
                    "frame) and <seq>_exit.txt (exit layer per frame, 0 = init) into --results; an interrupted run "
                    "resumes without redoing finished sequences. Then scores it like 'dytrack score'.")
    add_dataset_options(p)
    add_model_options(
        p,
        model_help="model file (.safetensors, .onnx, official checkpoint) or an OpenCV baseline: "
                   + ", ".join(f"opencv:{n}" for n in OPENCV_TRACKERS) + ".",
        threads_help="CPU threads per worker process (default: CPU cores / --workers)")
    r = p.add_argument_group("run")
    r.add_argument("--results", required=True, metavar="DIR", help="result folder (created; resumed if it exists)")
    r.add_argument("--workers", type=int, default=1, help="sequences run in parallel processes (default: %(default)s)")
    r.add_argument("--sweep-thresholds", type=parse_floats, default=None, metavar="T1,T2,...",
                   help="DyTrack models: run once per threshold (applied to every early exit), each into "
                        "DIR/thr_<t>/, and plot the speed/accuracy operating points of the one model")
    r.add_argument("--no-score", action="store_true", help="only run; do not score at the end")
    r.add_argument("--report", default=None, metavar="DIR", help="report folder (default: <results>/report)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_repair_option(r)
    add_budget_options(p)
    add_recovery_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendError
    from ..data import DatasetError, load_dataset
    from ..eval.metrics import MetricInputError
    from ..eval.runner import RunnerError, TrackerSpec, run_tracker, sweep_dir_name, sweep_specs
    from ..eval.score import ScoreError
    from ..model_io.model_file import ModelFileError
    from .score_cmd import score_and_report

    results = Path(args.results)
    dataset_name = f"{args.format} {Path(args.root).name}" + (f" ({args.split})" if args.split else "")
    try:
        seqs = load_dataset(args.format, args.root, args.split, parse_sequences(args.sequences))
        opts = runtime_options_from_args(args)
        spec = TrackerSpec(args.model, opts.backend, opts.device, opts.precision,
                           tuple(args.exit_thresholds) if args.exit_thresholds else None, args.threads, args.ce,
                           budget_config_from_args(args),
                           None if args.model.lower().startswith("opencv:") else tracker_config_from_args(args))
        dataset = {"format": args.format, "root": str(args.root), "split": args.split, "sequences": len(seqs)}
        if args.sweep_thresholds:
            if spec.is_opencv:
                raise RunnerError("--sweep-thresholds needs a DyTrack model with early exits, not an OpenCV tracker")
            jobs = [(s, results / sweep_dir_name(t)) for s, t in zip(sweep_specs(spec, args.sweep_thresholds),
                                                                      args.sweep_thresholds)]
        else:
            jobs = [(spec, results)]
        for job_spec, folder in jobs:
            summary = run_tracker(job_spec, seqs, folder, workers=args.workers, progress=not args.quiet,
                                  dataset=dataset)
            print(f"{job_spec.label}: ran {len(summary.ran)} sequences, skipped {len(summary.skipped)} finished; "
                  f"runner overhead {summary.overhead_ms_per_frame:.2f} ms/frame -> {folder}")
        if not args.no_score:
            if not all(s.has_full_gt for s in seqs):
                print("this split has first-frame ground truth only: results written, scoring skipped "
                      "(submit them to the benchmark server)")
                return 0
            score_and_report(seqs, [results], args.report or str(results / "report"), dataset_name,
                             repair_invalid=args.repair_invalid)
    except (DatasetError, RunnerError, ScoreError, MetricInputError, BackendError, ModelFileError, ValueError,
            OSError) as exc:
        print(f"dytrack eval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndytrack eval: interrupted; finished sequences are kept in {results} and a rerun with the same "
              "options resumes from them", file=sys.stderr)
        return 130
    return 0

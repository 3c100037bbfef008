"""The ``dytrack`` command line: one subcommand module per job.

Each module exposes ``add_parser(subparsers)``, which registers its options and
sets ``func=run`` with ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (module, description) in help order; modules are imported lazily so that
# `dytrack --help` stays fast and one broken extra does not break the rest.
SUBCOMMANDS = [
    "track_cmd", "eval_cmd", "score_cmd", "synth_cmd", "train_cmd", "calibrate_cmd",
    "export_cmd", "convert_cmd", "bench_cmd", "demo_cmd", "models_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dytrack",
        description="Efficient transformer single-object tracking (DyTrack / CompressTracker / OSTrack). "
                    "Run 'dytrack COMMAND --help' for the options of each command.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"dytrack_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


# Commands whose own argument parser takes everything after the command name.
PASSTHROUGH = {"demo": "dytrack_ros.ros.demo"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PASSTHROUGH:
        return int(importlib.import_module(PASSTHROUGH[argv[0]]).main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

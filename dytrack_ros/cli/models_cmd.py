"""dytrack models: list the registry architectures and describe a model file."""
from __future__ import annotations

import argparse
import json

from ..model.registry import MODEL_CONFIGS
from ..paths import default_model_path


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list known architectures, or describe a model file",
                       description="Without arguments: list registry architectures. With FILE: print its "
                                   "architecture and stored info (training, calibration).")
    p.add_argument("file", nargs="?", help="a .safetensors model file to describe")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.file:
        from ..model_io.model_file import read_metadata

        cfg, info = read_metadata(args.file)
        print(json.dumps({"model_config": cfg.to_dict(), "info": info}, indent=2))
        return 0
    print(f"default model: {default_model_path()}")
    print(f"{'name':<16}{'dim':>5}{'depth':>6}{'heads':>6}{'z/x size':>10}  exits     CE")
    for name, c in sorted(MODEL_CONFIGS.items()):
        print(f"{name:<16}{c.embed_dim:>5}{c.depth:>6}{c.num_heads:>6}{f'{c.template_size}/{c.search_size}':>10}  "
              f"{str(list(c.exit_layers) or '-'):<9} {list(c.ce_loc) or '-'}")
    return 0

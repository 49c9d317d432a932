"""``speechrnn info [MODEL | -m FILE]``: what a model file holds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def model_info(path: str | Path | None = None) -> dict[str, Any]:
    """Labels, configs, parameter count and training summary of a model file (default model if None)."""
    from speechrnn import default_model_path
    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.model import count_parameters

    path = Path(path) if path is not None else default_model_path()
    checkpoint = load_checkpoint(path)
    return {
        "path": str(path),
        "labels": list(checkpoint.labels),
        "parameters": count_parameters(checkpoint.build_model()),
        "file_bytes": path.stat().st_size,
        "weights_dtype": checkpoint.weights_dtype,
        "architecture": checkpoint.model_config.description,
        "feature_config": checkpoint.feature_config.to_dict(),
        "model_config": checkpoint.model_config.to_dict(),
        "summary": dict(checkpoint.summary),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``speechrnn info``: the model file, as a positional or ``-m/--model`` (as other commands)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("model", nargs="?", help="model file (default: the shipped default model)")
    which.add_argument(
        "-m", "--model", dest="model_option", metavar="FILE", help="the model file, as in other commands"
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Print the model's information as JSON; 1 on a bad file."""
    from speechrnn.errors import SpeechRNNError

    try:
        option = getattr(args, "model_option", None)
        info = model_info(option if option is not None else args.model)
    except SpeechRNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2))
    return 0

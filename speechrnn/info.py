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


def format_info(info: dict[str, Any]) -> str:
    """A few lines for a person: the file, architecture, labels, features and recorded figures."""
    features, summary = info["feature_config"], info.get("summary") or {}
    lines = [
        f"model file:   {info['path']} ({info['file_bytes'] / 1e6:.2f} MB, {info['weights_dtype']} weights, "
        f"{info['parameters']:,} parameters)",
        f"architecture: {info['architecture']}",
        f"labels:       {', '.join(info['labels'])}",
        f"features:     {features['n_mels']} log-mel bands at {features['sample_rate']} Hz, "
        f"{1000 * features['window_seconds']:g} ms windows every {1000 * features['hop_seconds']:g} ms, "
        f"{features['clip_seconds']:g} s clips",
    ]
    if summary.get("task") or summary.get("epochs"):
        trained = ", ".join(
            part for part in (
                f"task {summary['task']}" if summary.get("task") else "",
                f"{summary['epochs']} epochs" if summary.get("epochs") else "",
                f"{summary.get('training_examples'):,} training examples" if summary.get("training_examples") else "",
                str(summary["trained"])[:10] if summary.get("trained") else "",
            ) if part
        )
        lines.append(f"trained:      {trained}")
    taught = summary.get("finetune") if isinstance(summary.get("finetune"), dict) else None
    if taught is not None:
        base = summary.get("original_model") or summary.get("base_model") or {}
        words = ", ".join(f"{w} ({n} takes)" for w, n in (taught.get("takes") or {}).items()) or "?"
        onto = f" onto {base['path']}" if isinstance(base, dict) and base.get("path") else ""
        base_test = base.get("test_accuracy") if isinstance(base, dict) else None
        first = f" (its test accuracy {100 * float(base_test):.2f}%)" if isinstance(base_test, (int, float)) else ""
        lines.append(f"taught:       {words}{onto}{first}")
    metrics = summary.get("metrics") if isinstance(summary.get("metrics"), dict) else {}
    names = {"val_accuracy": "validation", "test_accuracy": "test", "oov_unknown_share": "other words -> unknown",
             "silence_share": "noise -> silence", "new_word_accuracy": "new words on held-out takes",
             "builtin_accuracy_before": "built-in words before", "builtin_accuracy_after": "after",
             "new_word_false_accept_rate": "new words firing on other sounds",
             "new_word_other_words_false_accept_rate": "on your other words"}
    figures = [f"{names[k]} {100 * float(metrics[k]):.2f}%" for k in names if isinstance(metrics.get(k), (int, float))]
    if not figures:
        figures = [f"{names[k]} {100 * float(summary[k]):.2f}%" for k in ("val_accuracy", "test_accuracy")
                   if isinstance(summary.get(k), (int, float))]
    if figures:
        held = "" if summary.get("validation_held_out", True) else " (validation not held out: trained on it)"
        lines.append(f"recorded:     {', '.join(figures)}{held}")
    lines.append("(--format json for everything the file holds: configs, labels, recorded figures)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``speechrnn info``: the model file, as a positional or ``-m/--model`` (as other commands)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("model", nargs="?", help="model file (default: the shipped default model)")
    which.add_argument(
        "-m", "--model", dest="model_option", metavar="FILE", help="the model file, as in other commands"
    )
    parser.add_argument("-f", "--format", choices=("text", "json"), default=None, dest="fmt",
                        help="a short summary (text, the default on a terminal) or everything as JSON "
                             "(the default otherwise, e.g. in a pipe)")


def run_from_args(args: argparse.Namespace) -> int:
    """Print the model's information (a summary on a terminal, else JSON); 1 on a bad file."""
    from speechrnn.errors import SpeechRNNError

    try:
        option = getattr(args, "model_option", None)
        info = model_info(option if option is not None else args.model)
    except SpeechRNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    fmt = getattr(args, "fmt", None) or ("text" if sys.stdout.isatty() else "json")
    print(format_info(info) if fmt == "text" else json.dumps(info, indent=2))
    return 0

"""Measure a trained model and package it as a release model file (e.g. the shipped default).

Usage::

    python -m training.release runs/default/best.pt --data /path/to/speech_commands_mini \\
        --out speechrnn/models/default.pt --docs docs --name default_model

It measures, on data the run never trained on:

- the testing split (accuracy, per-class precision/recall/F1, confusion matrix) with
  :func:`training.evaluate.evaluate`, written to ``DOCS/NAME_eval.json`` and ``DOCS/NAME_confusion.png``;
- out-of-vocabulary rejection and silence at every level with
  :func:`training.robustness.run_robustness`, written to ``DOCS/NAME_robustness.json`` (for a
  model with ``_silence_`` and ``_unknown_`` classes; a task without them, such as ``v2-35``, is
  released without these figures);
- the testing split again with every clip 20 and 35 dB quieter (:data:`QUIET_GAINS_DB`: a quiet
  talker or a low microphone gain);
- the CPU latency of features + model for one clip on one thread (median of many runs);

The release file stores its weight matrices as float16 (``--weights float32`` keeps them full
size); it is written first to a temporary file beside ``--out`` and everything above is measured
on it, then it is rewritten with the figures added to the training summary and only then moved
onto ``--out``, so the model file itself carries its recipe and its measured figures, and a run
that fails leaves ``--out`` as it was (absent, or the old file).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechrnn.errors import SpeechRNNError

#: Gains (dB) at which the release measures the testing split again: quiet talkers.
QUIET_GAINS_DB: tuple[float, ...] = (-20.0, -35.0)


def latency_ms(
    model_path: str | os.PathLike[str], *, runs: int = 300, threads: int = 1, backend: str = "auto"
) -> float:
    """Median milliseconds for log-mel features + model on one clip, on the CPU with ``threads`` threads.

    ``backend`` is the :class:`~speechrnn.inference.Classifier` backend (``auto``: what
    ``speechrnn classify`` and ``listen`` use, ONNX Runtime where installed).
    """
    import numpy as np
    import torch

    from speechrnn.inference import Classifier

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        classifier = Classifier.from_file(model_path, device="cpu", backend=backend)
        clip = (np.random.default_rng(0).standard_normal((1, classifier.feature_config.clip_samples)) * 0.05).astype(
            np.float32
        )
        times = []
        with torch.inference_mode():
            for i in range(runs + 30):
                start = time.perf_counter()
                classifier.probabilities(clip)
                if i >= 30:
                    times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e3)
    finally:
        torch.set_num_threads(previous)


def release(
    model_path: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    docs: str | os.PathLike[str],
    name: str = "model",
    weights_dtype: str = "float16",
    progress: bool = True,
    oov_per_word: int | None = None,
    silence_count: int = 600,
    robustness_cache: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Measure ``model_path`` and write the release model file and the evaluation outputs.

    Parameters
    ----------
    model_path : path-like
        A model file written by training (``best.pt``).
    data_dir : path-like
        The Speech Commands folder it was trained on (its testing split is measured).
    out : path-like
        Release model file to write.
    docs : path-like
        Folder for ``NAME_eval.json``, ``NAME_confusion.png`` and ``NAME_robustness.json``.
    name : str
        Prefix of those files.
    weights_dtype : {"float16", "float32"}
        Storage of the weight matrices in the release file (see :func:`speechrnn.checkpoint.save_checkpoint`).
    progress : bool
    oov_per_word, silence_count, robustness_cache
        Sizes and cache folder of the robustness sets (:func:`training.robustness.run_robustness`;
        None: its defaults).

    Returns
    -------
    dict
        The summary written into the release file.
    """
    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.outputs import make_folders, remove_empty

    docs = Path(docs)
    out = Path(out)
    if out.is_dir():
        raise SpeechRNNError(f"{out}: is a folder, not a model file to write")
    if docs.exists() and not docs.is_dir():
        raise SpeechRNNError(f"{docs}: is a file, not a folder for the evaluation outputs")
    checkpoint = load_checkpoint(model_path)
    # write the release weights to a temporary file beside out, measure exactly what ships, and
    # move it onto out only when everything succeeded: a failed run never leaves a half-made
    # file at out (nor replaces the model already there)
    made = make_folders(out.parent, name=str(out), doing="cannot write the release file there")
    try:
        fd, name_tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".release.tmp", dir=out.parent)
    except OSError as exc:
        remove_empty(made)
        raise SpeechRNNError(f"{out}: cannot write the release file there: {exc.strerror or exc}") from exc
    os.close(fd)
    staged = Path(name_tmp)
    # the evaluation outputs too are written into a temporary folder inside docs and moved in at
    # the end: a failed run leaves the docs of the model released before as they were
    made_docs: list[Path] = []
    staged_docs: Path | None = None
    try:
        made_docs = make_folders(docs, name=str(docs), doing="cannot write the evaluation outputs there")
        staged_docs = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".release.tmp", dir=docs))
        summary = _measure_and_write(
            staged, checkpoint, shown=out, data_dir=data_dir, docs=staged_docs, name=name,
            weights_dtype=weights_dtype, progress=progress, oov_per_word=oov_per_word, silence_count=silence_count,
            robustness_cache=robustness_cache,
        )  # fmt: skip
        for item in sorted(staged_docs.iterdir()):
            os.replace(item, docs / item.name)
        staged_docs.rmdir()
        os.replace(staged, out)
    except BaseException:
        staged.unlink(missing_ok=True)
        if staged_docs is not None:
            shutil.rmtree(staged_docs, ignore_errors=True)
        remove_empty(made_docs)
        remove_empty(made)  # the folders made for out, if still empty
        raise
    summary["file_bytes"] = out.stat().st_size
    return summary


def _measure_and_write(
    staged: Path,
    checkpoint: Any,
    *,
    shown: Path,
    data_dir: str | os.PathLike[str],
    docs: Path,
    name: str,
    weights_dtype: str,
    progress: bool,
    oov_per_word: int | None,
    silence_count: int,
    robustness_cache: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """Write the release weights to ``staged``, measure that file, and rewrite it with the figures.

    ``shown`` is the name the evaluation outputs give the model (the release file it becomes).
    """
    import dataclasses
    import json

    import numpy as np

    from speechrnn.checkpoint import load_checkpoint, save_checkpoint
    from speechrnn.inference import SILENCE, UNKNOWN
    from speechrnn.model import count_parameters
    from training.evaluate import evaluate
    from training.robustness import OOV_PER_WORD, run_robustness

    save_checkpoint(staged, model=checkpoint.build_model(), feature_config=checkpoint.feature_config,
                    labels=checkpoint.labels, summary=checkpoint.summary, weights_dtype=weights_dtype)  # fmt: skip
    model_path = staged
    checkpoint = load_checkpoint(staged)
    test = evaluate(
        model_path, data_dir=data_dir, split="testing", out_dir=docs, progress=progress,
        json_name=f"{name}_eval.json", png_name=f"{name}_confusion.png", model_name=str(shown),
    )  # fmt: skip
    validation = evaluate(model_path, data_dir=data_dir, split="validation", progress=progress)
    quiet = {
        f"{gain:g}": evaluate(model_path, data_dir=data_dir, split="testing", progress=False, gain_db=gain).accuracy
        for gain in QUIET_GAINS_DB
    }
    words = [i for i, label in enumerate(test.labels) if not label.startswith("_")]
    matrix = test.confusion
    word_accuracy = float(np.trace(matrix[np.ix_(words, words)]) / max(matrix[words].sum(), 1))
    robust = None
    if {SILENCE, UNKNOWN} <= set(checkpoint.labels):  # else nothing to reject words or noise into
        robust = run_robustness(
            model_path, data_root=data_dir, progress=progress,
            per_word=OOV_PER_WORD if oov_per_word is None else oov_per_word, silence_count=silence_count,
            cache_dir=robustness_cache,
        )  # fmt: skip
        robust = dataclasses.replace(robust, model=str(shown))
        robust_json = docs / f"{name}_robustness.json"
        robust_tmp = robust_json.with_name(f".{robust_json.name}.tmp")
        robust_tmp.write_text(json.dumps(robust.to_dict(), indent=2) + "\n")
        os.replace(robust_tmp, robust_json)
    speed = latency_ms(model_path)
    speed_torch = latency_ms(model_path, backend="torch")
    model = checkpoint.build_model()
    summary = dict(checkpoint.summary)
    summary.update(
        {
            "parameters": count_parameters(model),
            "test_accuracy": test.accuracy,
            "release_val_accuracy": validation.accuracy,  # the shipped weights (val_accuracy: training's)
            "release_val_held_out": validation.held_out,
            "test_accuracy_by_gain_db": quiet,
            "test_command_accuracy": round(word_accuracy, 4),
            "testing": {
                "accuracy": test.accuracy,
                "examples": test.examples,
                "macro_f1": test.macro_f1,
                "per_class": test.per_class,
                "confusion": test.confusion.tolist(),
            },
            # None for a model without _silence_ and _unknown_ (not measured)
            "oov": None if robust is None else {
                "unknown_share": robust.oov_unknown_share,
                "clips": robust.oov_total,
                "by_source": dict(robust.oov_by_source),
                "confusions": dict(robust.oov_confusions),
            },
            "silence": None if robust is None else {
                "silence_share": robust.silence_share,
                "clips": robust.silence_total,
                "by_level": dict(robust.silence_by_level),
                "by_kind": dict(robust.silence_by_kind),
            },
            "synthetic_command_accuracy": None if robust is None else robust.command_accuracy,
            "latency_ms_one_thread": round(speed, 3),
            "latency_ms_one_thread_torch": round(speed_torch, 3),
        }
    )
    metrics = dict(summary.get("metrics", {}))
    metrics["test_accuracy"] = test.accuracy
    if robust is not None:
        metrics.update({"oov_unknown_share": robust.oov_unknown_share, "silence_share": robust.silence_share})
    summary["metrics"] = metrics
    save_checkpoint(staged, model=model, feature_config=checkpoint.feature_config, labels=checkpoint.labels,
                    summary=summary, weights_dtype=weights_dtype)  # fmt: skip
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m training.release", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="trained model file (best.pt)")
    parser.add_argument("--data", required=True, help="the Speech Commands folder it was trained on")
    parser.add_argument("--out", required=True, help="release model file to write")
    parser.add_argument("--docs", default="docs", help="folder for the evaluation outputs (default docs/)")
    parser.add_argument("--name", default="model", help="prefix of the evaluation files")
    from speechrnn.checkpoint import WEIGHT_DTYPES

    parser.add_argument("--weights", default="float16", choices=WEIGHT_DTYPES,
                        help="storage of the weight matrices in the release file (default float16)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        summary = release(args.model, data_dir=args.data, out=args.out, docs=args.docs, name=args.name,
                          weights_dtype=args.weights, progress=not args.quiet)  # fmt: skip
    except (SpeechRNNError, ValueError) as exc:
        print(f"release: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. --out or --docs in a folder that cannot be written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"release: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    print(
        f"{args.out}: {summary['file_bytes'] / 1e6:.2f} MB, {summary['parameters']:,} parameters\n"
        f"validation accuracy {summary['release_val_accuracy']:.4f}"
        + (f" (training run: {summary['val_accuracy']:.4f})" if "val_accuracy" in summary else "")
        + f"{'' if summary['release_val_held_out'] else ' - trained on, not held out'}, "
        f"test accuracy {summary['test_accuracy']:.4f} "
        f"(commands only {summary['test_command_accuracy']:.4f})\n"
        "test accuracy with every clip quieter: "
        + ", ".join(f"{gain} dB {acc:.4f}" for gain, acc in summary["test_accuracy_by_gain_db"].items())
        + "\n"
        + (
            "OOV and silence: not measured (the model has no _silence_ and _unknown_ classes)\n"
            if summary["oov"] is None
            else f"OOV -> _unknown_ {summary['oov']['unknown_share']:.4f} of {summary['oov']['clips']}, "
            f"silence -> _silence_ {summary['silence']['silence_share']:.4f} of {summary['silence']['clips']}, "
            f"synthetic-voice commands {summary['synthetic_command_accuracy']:.4f}\n"
        )
        + f"latency (features + model, one clip, one thread): {summary['latency_ms_one_thread']:.2f} ms "
        f"({summary['latency_ms_one_thread_torch']:.2f} ms with the PyTorch backend)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

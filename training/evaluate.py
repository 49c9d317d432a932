"""Evaluate a model file on a Speech Commands split or on a folder laid out by word.

Usage::

    python -m training.evaluate MODEL --data DIR [--split testing|validation|training] [--out DIR]
    python -m training.evaluate MODEL --folder DIR [--out DIR]
    python -m training.evaluate MODEL --data DIR --gain-db -30   # every clip 30 dB quieter

On a Speech Commands tree the split is built exactly as training builds its evaluation splits
(the task, ``_unknown_`` share, ``_silence_`` levels and held-out words recorded in the model's
recipe; no augmentation). A ``--folder`` holds ``<label>/*.wav|flac``: a folder named after one
of the model's labels is that class, ``_silence_`` is silence, any other folder is ``_unknown_``
(skipped when the model has no ``_unknown_`` class; ``_background_noise_`` is always skipped).
``--gain-db`` scales every clip (silence crops included) before the features: a quiet talker or a
low microphone gain.

Writes ``report.json`` (accuracy, per-class precision/recall/F1, confusion matrix, the worst
mistakes) and ``confusion.png`` into the output folder and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechrnn.errors import SpeechRNNError

SILENCE = "_silence_"
UNKNOWN = "_unknown_"


@dataclass(frozen=True)
class EvalReport:
    """The result of :func:`evaluate`.

    Parameters
    ----------
    model : str
        Model file path.
    source : str
        The data folder (and split) or the ``--folder`` evaluated.
    split : str or None
    accuracy : float
    examples : int
    labels : tuple of str
    per_class : dict
        ``{label: {"precision", "recall", "f1", "support"}}``.
    confusion : np.ndarray, shape (n_classes, n_classes)
        Counts, rows true class, columns predicted class.
    macro_f1 : float
    mistakes : list of dict
        Up to 50 misclassified clips (path or kind, true label, predicted label, score), most
        confident first.
    held_out : bool
        False when the model was trained on these clips: the training split, or the validation
        split of a refit (``data.train_on_validation``).
    gain_db : float
        The gain applied to every clip before the features (0: as recorded).
    room : tuple of (float, float) or None
        ``(rt60 seconds, direct-to-reverberant ratio dB)`` of the synthetic room every word clip
        was played through (:mod:`training.reverb`); None: as recorded.
    backend : str
        What ran the model: ``torch``, ``onnx`` (float) or ``int8``.
    json_path, png_path : pathlib.Path or None
        Where the report and the confusion-matrix plot were written.
    """

    model: str
    source: str
    split: str | None
    accuracy: float
    examples: int
    labels: tuple[str, ...]
    per_class: dict[str, dict[str, float]]
    confusion: np.ndarray
    macro_f1: float
    mistakes: list[dict[str, Any]]
    held_out: bool = True
    gain_db: float = 0.0
    room: tuple[float, float] | None = None
    backend: str = "torch"
    json_path: Path | None = None
    png_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (what ``report.json`` holds)."""
        return {
            "model": self.model,
            "source": self.source,
            "split": self.split,
            "accuracy": self.accuracy,
            "examples": self.examples,
            "macro_f1": self.macro_f1,
            "labels": list(self.labels),
            "per_class": self.per_class,
            "confusion": self.confusion.tolist(),
            "mistakes": self.mistakes,
            "held_out": self.held_out,
            "gain_db": self.gain_db,
            "room": None if self.room is None else {"rt60_seconds": self.room[0], "drr_db": self.room[1]},
            "backend": self.backend,
        }

    def table(self) -> str:
        """A plain-text per-class table."""
        lines = [f"{'label':<12} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
        for label in self.labels:
            m = self.per_class[label]
            lines.append(f"{label:<12} {m['precision']:>9.4f} {m['recall']:>7.4f} {m['f1']:>7.4f} {m['support']:>8d}")
        at = f" at {self.gain_db:+g} dB" if self.gain_db else ""
        if self.room is not None:
            at += f" in a room of RT60 {self.room[0]:g} s, DRR {self.room[1]:+g} dB"
        lines.append(f"accuracy {self.accuracy:.4f} on {self.examples} clips{at} (macro F1 {self.macro_f1:.4f})")
        if not self.held_out:
            lines.append("note: the model was trained on these clips: this figure is not a held-out one")
        return "\n".join(lines)


def _data_config_for(checkpoint: Any, data_dir: str) -> Any:
    """The DataConfig a model was trained with (from its recipe), pointed at ``data_dir``."""
    from training.config import DataConfig, TrainConfig

    labels = tuple(checkpoint.labels)
    recipe = checkpoint.summary.get("recipe") if isinstance(checkpoint.summary, dict) else None
    if recipe and "data" in recipe:
        try:
            config = TrainConfig.from_dict({"data": dict(recipe["data"])}).data
            if config.labels == labels:
                return dataclasses.replace(config, data_dir=str(data_dir), extra_unknown_dirs=(), synth_per_word=0)
        except ValueError:
            pass
    fillers = SILENCE in labels or UNKNOWN in labels
    words = tuple(label for label in labels if label not in (SILENCE, UNKNOWN))
    config = DataConfig(data_dir=str(data_dir), task="custom", words=words, fillers=fillers)
    if config.labels != labels:
        raise SpeechRNNError(
            f"model labels {labels} are not ordered as a Speech Commands task (_silence_, _unknown_, words...)"
        )
    return config


def evaluate(
    model_path: str | os.PathLike[str] | None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "testing",
    folder: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    backend: str = "auto",
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
    json_name: str = "report.json",
    png_name: str = "confusion.png",
    gain_db: float = 0.0,
    room: tuple[float, float] | None = None,
    model_name: str | None = None,
) -> EvalReport:
    """Accuracy, per-class metrics and a confusion matrix of a model on labelled clips.

    Parameters
    ----------
    model_path : path-like or None
        A model file (None: the shipped default model).
    data_dir : path-like, optional
        A Speech Commands tree; evaluate its ``split``.
    split : {"testing", "validation", "training"}
        Which list of ``data_dir`` (the training split is evaluated without augmentation).
    folder : path-like, optional
        Instead of ``data_dir``: a folder of ``<label>/*.wav|flac``.
    out_dir : path-like, optional
        Where to write ``report.json`` and ``confusion.png`` (nothing is written when None).
    device : {"auto", "cpu", "cuda"}
    backend : {"auto", "torch", "onnx", "int8"}
        What runs the model (``int8``: the int8-weight model that ``--backend int8`` uses).
    batch_size : int
    seed : int
        Seeds the fixed ``_unknown_`` and ``_silence_`` draws of a split (0, as in training).
    progress : bool
        Show progress on stderr: decoding the clips, then features and model batch by batch.
    json_name, png_name : str
        File names of the report and the plot inside ``out_dir``.
    gain_db : float
        Scale every clip by this many decibels before the features (e.g. -30: a quiet talker).
    room : tuple of (float, float), optional
        ``(rt60 seconds, direct-to-reverberant ratio dB)``: play every word clip through a
        synthetic room of that reverberation (:mod:`training.reverb`; each clip its own impulse
        response, seeded by ``seed``); ``_silence_`` examples are left dry.
    model_name : str, optional
        What the report calls the model (default: ``model_path``, or ``default``).

    Returns
    -------
    EvalReport

    Raises
    ------
    speechrnn.errors.SpeechRNNError
        Unreadable model file, missing data, or no usable clips.
    ValueError
        Neither or both of ``data_dir`` and ``folder``.
    """
    import torch
    from tqdm import tqdm

    from speechrnn.features import LogMel
    from speechrnn.inference import Classifier
    from training.data import BACKGROUND_DIR, DataError, SpeechCommandsData, decode_clips, find_audio_files
    from training.metrics import classification_report, plot_confusion
    from training.reverb import play_in_rooms

    if (data_dir is None) == (folder is None):
        raise ValueError("give exactly one of data_dir (a Speech Commands tree) or folder (<label>/ clips)")
    if not math.isfinite(gain_db):
        raise ValueError(f"gain_db must be a finite number of decibels, not {gain_db}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if room is not None:
        room = (float(room[0]), float(room[1]))
        if not (math.isfinite(room[0]) and 0 < room[0] <= 10 and math.isfinite(room[1])):
            raise ValueError(f"a room needs a reverberation time in (0, 10] seconds and a finite DRR in dB, not {room}")
    classifier = Classifier.from_file(model_path, device=device, backend=backend)
    labels = tuple(classifier.labels)
    features = classifier.feature_config
    names: list[str]
    if data_dir is not None:
        config = _data_config_for(classifier.checkpoint, str(data_dir))
        data = SpeechCommandsData(config, features, seed=seed, progress=progress)
        dataset = data.split(split, training=False)
        items = dataset.items(0)
        truth = np.asarray(items.label)
        # one batch at a time, so that progress can be shown
        frame_batches = dataset.feature_batches(batch_size=batch_size, gain_db=gain_db, room=room)
        names = [
            data.clips[s].path if k == 0 and s < len(data.clips) else ("silence crop" if k == 1 else "made")
            for k, s in zip(items.kind, items.source, strict=True)
        ]
        source = f"{Path(data_dir)} ({split})"
        split_name: str | None = split
        held_out = split not in config.training_splits
    else:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: folder not found")
        paths: list[Path] = []
        truth_list: list[int] = []
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if sub.name == BACKGROUND_DIR and sub.name not in labels:
                # a Speech Commands tree given as --folder: its long noise recordings are no clips
                print(f"warning: skipping {sub}: background noise recordings, not clips", file=sys.stderr)
                continue
            if sub.name in labels:
                label = labels.index(sub.name)
            elif UNKNOWN in labels:
                label = labels.index(UNKNOWN)
            else:
                print(f"warning: skipping {sub}: not one of the model's labels", file=sys.stderr)
                continue
            found = find_audio_files(sub)
            paths.extend(found)
            truth_list.extend([label] * len(found))
        if not paths:
            raise DataError(f"{root}: no <label>/*.wav or *.flac clips found")
        audio, ok = decode_clips(paths, sample_rate=features.sample_rate, clip_samples=features.clip_samples,
                                 progress=progress)  # fmt: skip
        keep = np.flatnonzero(ok)
        log_mel = LogMel(features)
        divisor = 32767.0 / 10.0 ** (gain_db / 20.0)  # int16 samples to floats, with the gain
        silence = np.asarray(truth_list)[keep] == (labels.index(SILENCE) if SILENCE in labels else -1)
        rooms = np.random.default_rng([seed, 5])

        def batch_frames(rows: np.ndarray, dry: np.ndarray) -> torch.Tensor:
            clips = torch.from_numpy(audio[rows].astype(np.float32) / divisor)
            if room is not None:
                play_in_rooms(clips, np.flatnonzero(~dry), room[0], room[1], sample_rate=features.sample_rate,
                              rng=rooms)  # fmt: skip
            with torch.inference_mode():
                return log_mel(clips)

        frame_batches = (
            batch_frames(keep[start : start + batch_size], silence[start : start + batch_size])
            for start in range(0, len(keep), batch_size)
        )

        truth = np.asarray(truth_list)[keep]
        names = [str(paths[i]) for i in keep]
        source = str(root)
        split_name = None
        held_out = True  # a folder of the user's: nothing says it was trained on
    if len(truth) == 0:
        raise DataError(f"{source}: no examples to evaluate")
    parts = []
    with tqdm(total=len(truth), desc="evaluating", unit="clip", disable=not progress, file=sys.stderr) as bar:
        for frames in frame_batches:  # features, then the model, batch by batch
            parts.append(classifier.probabilities_from_frames(frames))
            bar.update(parts[-1].shape[0])
    probs = np.concatenate(parts)
    predicted = probs.argmax(axis=1)
    report = classification_report(truth, predicted, labels)
    wrong = np.flatnonzero(predicted != truth)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]])][:50]
    mistakes = [
        {"clip": names[i], "true": labels[truth[i]], "predicted": labels[predicted[i]],
         "score": round(float(probs[i, predicted[i]]), 4)}
        for i in wrong
    ]  # fmt: skip
    result = EvalReport(
        model=model_name if model_name is not None else str(model_path) if model_path is not None else "default",
        source=source,
        split=split_name,
        accuracy=report["accuracy"],
        examples=report["examples"],
        labels=labels,
        per_class=report["per_class"],
        confusion=np.asarray(report["confusion"]),
        macro_f1=report["macro_f1"],
        mistakes=mistakes,
        held_out=held_out,
        gain_db=float(gain_db),
        room=room,
        backend=classifier.backend,
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, png_path = out / json_name, out / png_name
        result = dataclasses.replace(result, json_path=json_path, png_path=png_path)
        tmp = json_path.with_name(f".{json_path.name}.tmp")
        tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, json_path)
        title = f"{Path(result.model).name} on {source}: accuracy {result.accuracy:.2%}"
        plot_confusion(result.confusion, labels, png_path, title=title)
    return result


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m training.evaluate`` argument parser."""
    from speechrnn.onnx_backend import BACKENDS

    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Accuracy, per-class precision/recall/F1 and a confusion matrix of a model file.",
    )
    parser.add_argument("model", nargs="?", help="model file (default: the shipped default model)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="Speech Commands folder")
    source.add_argument("--folder", help="folder of <label>/*.wav|flac clips")
    parser.add_argument("--split", default="testing", choices=("testing", "validation", "training"))
    parser.add_argument("--out", type=Path, help="output folder for report.json and confusion.png (default: eval/)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="what runs the model (int8: int8 weights in ONNX Runtime, CPU only)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="clips per model call (default 256)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--gain-db", type=float, default=0.0,
                        help="scale every clip by this many dB first (e.g. -30: a quiet talker)")  # fmt: skip
    parser.add_argument("--reverb", type=float, metavar="RT60",
                        help="play every word clip through a synthetic room with this reverberation time, in "
                             "(0, 10] seconds (e.g. 0.6: an office; see training/reverb.py); _silence_ examples "
                             "stay dry")
    parser.add_argument("--drr", type=float, metavar="DB",
                        help="the room's direct-to-reverberant ratio, dB; only with --reverb (default 0; lower: "
                             "farther from the microphone)")
    return parser


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (shared by the training tools' command lines)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the gain and room options of the command line, or None."""
    if not math.isfinite(args.gain_db):
        return f"--gain-db must be a finite number of decibels, not {args.gain_db:g}"
    if args.drr is not None and args.reverb is None:
        return "--drr needs --reverb RT60 (it is the direct-to-reverberant ratio of that room)"
    if args.reverb is not None and not (math.isfinite(args.reverb) and 0 < args.reverb <= 10):
        return f"--reverb RT60 must be in (0, 10] seconds, not {args.reverb:g}"
    if args.drr is not None and not math.isfinite(args.drr):
        return f"--drr must be a finite number of decibels, not {args.drr:g}"
    return None


def _make_output_folder(folder: Path) -> list[Path]:
    """Create the ``--out`` folder (and its parents) before any work; return those made, innermost first.

    Raises
    ------
    speechrnn.errors.SpeechRNNError
        ``folder`` is a file, lies under a file, or cannot be created or written.
    """
    from speechrnn.outputs import make_folders

    if folder.exists() and not folder.is_dir():
        raise SpeechRNNError(f"{folder}: exists and is not a folder; choose another --out")
    return make_folders(folder, name=str(folder), doing="cannot create the output folder (--out)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    problem = _option_problem(args)
    if problem is not None:
        print(f"evaluate: error: {problem}", file=sys.stderr)
        return 1
    from speechrnn.outputs import remove_empty

    out_dir = args.out or Path("eval")
    made: list[Path] = []
    try:
        made = _make_output_folder(out_dir)
        report = evaluate(
            args.model,
            data_dir=args.data,
            split=args.split,
            folder=args.folder,
            out_dir=out_dir,
            device=args.device,
            backend=args.backend,
            batch_size=args.batch_size,
            progress=not args.quiet,
            gain_db=args.gain_db,
            room=None if args.reverb is None else (args.reverb, 0.0 if args.drr is None else args.drr),
        )
    except (SpeechRNNError, ValueError, OSError) as exc:
        if isinstance(exc, OSError) and exc.filename and exc.strerror:  # e.g. the report cannot be written
            exc = f"{exc.filename}: {exc.strerror}"
        print(f"evaluate: error: {exc}", file=sys.stderr)
        remove_empty(made)  # the folders made for --out, if still empty
        return 1
    print(report.table())
    print(f"report: {report.json_path}\nconfusion matrix: {report.png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

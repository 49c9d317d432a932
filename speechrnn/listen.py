"""``speechrnn listen``: recognize commands live, from a microphone or a file played in real time.

The app's engine without the window: an :class:`~speechrnn.microphone.AudioSource` feeds a
:class:`~speechrnn.streaming.StreamingRecognizer`; detections are printed as they happen (text
or JSON lines on stdout), and a one-line level meter is drawn on stderr when it is a terminal.
Ctrl-C stops listening cleanly (exit status 0, after the summary).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from speechrnn.decisions import Detection
    from speechrnn.microphone import AudioSource
    from speechrnn.streaming import StreamingRecognizer, StreamStep

FORMATS = ("text", "jsonl")
_METER_WIDTH = 30
_METER_FLOOR_DB = -70.0
_METER_INTERVAL = 0.1


def format_detection(detection: Detection, *, format: str = "text") -> str:
    """One output line for a detection.

    Parameters
    ----------
    detection : Detection
    format : {"text", "jsonl"}
        ``text``: ``"  12.34 s  yes        0.97"``; ``jsonl``: a JSON object with label, score,
        time (and the start/end of the word's window), all times in stream seconds.

    Returns
    -------
    str
    """
    if format == "jsonl":
        return json.dumps(detection.as_dict())
    return f"{detection.time:8.2f} s  {detection.label:<12} {detection.score:.2f}"


def _meter_line(level_db: float, source_name: str, elapsed: float) -> str:
    fraction = min(1.0, max(0.0, (level_db - _METER_FLOOR_DB) / -_METER_FLOOR_DB))
    filled = round(fraction * _METER_WIDTH)
    bar = "#" * filled + "-" * (_METER_WIDTH - filled)
    return f"\r[{bar}] {level_db:6.1f} dBFS  {elapsed:7.1f} s  {source_name}"


def run_engine(
    source: AudioSource,
    recognizer: StreamingRecognizer,
    *,
    duration: float | None = None,
    on_step: Callable[[StreamStep], None] | None = None,
    read_timeout: float = 0.25,
) -> list[Detection]:
    """Feed a started-or-not audio source into a recognizer until it ends, ``duration`` or Ctrl-C.

    Parameters
    ----------
    source : AudioSource
        Started here if needed, stopped at the end.
    recognizer : StreamingRecognizer
        At the source's sample rate.
    duration : float, optional
        Stop after this many seconds of audio (stream time); None: until the source ends.
    on_step : callable, optional
        Called with every :class:`~speechrnn.streaming.StreamStep` (print, draw, ...).
    read_timeout : float
        Longest wait for one block, in seconds (a silent device does not hang the loop).

    Returns
    -------
    list of Detection
        Everything detected, in order, also when interrupted with Ctrl-C.

    Raises
    ------
    DeviceError
        The device failed (the detections so far are attached as ``exc.detections``).
    """
    from speechrnn.errors import DeviceError

    if source.sample_rate != recognizer.sample_rate:
        raise ValueError(f"source delivers {source.sample_rate} Hz but the model needs {recognizer.sample_rate} Hz")
    limit = None if duration is None else round(duration * recognizer.sample_rate)
    consumed = 0
    detections: list[Detection] = []
    source.start()
    try:
        while limit is None or consumed < limit:
            block = source.read(read_timeout)
            if block is None:
                if getattr(source, "finished", False):
                    break
                continue
            if limit is not None:
                block = block[: limit - consumed]
            consumed += block.shape[0]
            for step in recognizer.push_steps(block):
                if step.detection is not None:
                    detections.append(step.detection)
                if on_step is not None:
                    on_step(step)
    except KeyboardInterrupt:
        pass
    except DeviceError as exc:
        exc.detections = detections  # type: ignore[attr-defined]
        raise
    finally:
        source.stop()
    return detections


def listen(
    *,
    model: str | Path | None = None,
    input: str | int | None = None,
    file: str | Path | None = None,
    fast: bool = False,
    device: str = "auto",
    backend: str = "auto",
    threshold: float | None = None,
    duration: float | None = None,
    hop: float = 0.1,
    format: str = "text",
    meter: bool | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> list[Detection]:
    """Listen to a microphone (or a file) and print detections as they happen.

    Parameters
    ----------
    model : path, optional
        Model file; the shipped default model when None.
    input : str or int, optional
        Microphone name (substring) or index; the system default when None.
    file : path, optional
        Listen to this audio file (through :class:`~speechrnn.microphone.FileSource`) instead
        of a microphone.
    fast : bool
        With ``file``: do not pace the file in real time.
    device : {"auto", "cpu", "cuda"}
        Compute device for the model.
    backend : {"auto", "torch", "onnx", "int8"}
        What runs the model (see :class:`~speechrnn.inference.Classifier`); ``int8`` is
        1.3-1.6x faster on the CPU.
    threshold : float, optional
        Detection threshold in [0, 1]; the decision default when None.
    duration : float, optional
        Stop after this many seconds of audio.
    hop : float
        Seconds between model evaluations.
    format : {"text", "jsonl"}
        How detections are printed on ``out``.
    meter : bool, optional
        Draw the level meter on ``err``; default: only when ``err`` is a terminal.
    out, err : text streams, optional
        Default ``sys.stdout`` / ``sys.stderr``.

    Returns
    -------
    list of Detection
        Everything detected (also after Ctrl-C).

    Raises
    ------
    SpeechRNNError
        Bad model file, missing audio device (:class:`~speechrnn.errors.DeviceError`), unreadable
        file (:class:`~speechrnn.errors.AudioError`).
    ValueError
        Bad option values.
    """
    from speechrnn.decisions import DecisionConfig
    from speechrnn.microphone import FileSource, Microphone
    from speechrnn.onnx_classifier import load_classifier
    from speechrnn.streaming import StreamingRecognizer

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], not {threshold}")
    if duration is not None and not (duration > 0 and math.isfinite(duration)):
        raise ValueError(f"duration must be a positive number of seconds, not {duration} (leave it out to listen "
                         "until Ctrl-C)")
    if not (hop > 0 and math.isfinite(hop)):
        raise ValueError(f"hop must be a positive number of seconds, not {hop}")
    classifier = load_classifier(model, device=device, backend=backend)  # without torch once its export is cached
    if str(classifier.device) == "cpu":
        # one small model call per hop: extra threads only add synchronisation overhead
        classifier.use_threads(1)
    decision = DecisionConfig() if threshold is None else replace(DecisionConfig(), threshold=threshold)
    recognizer = StreamingRecognizer(classifier, hop_seconds=hop, decision=decision)
    rate = classifier.feature_config.sample_rate
    if file is not None:
        source: AudioSource = FileSource(file, sample_rate=rate, realtime=not fast)
    else:
        source = Microphone(input, sample_rate=rate)
    if meter is None:
        meter = bool(getattr(err, "isatty", lambda: False)())
    if format == "text":
        labels = [label for label in classifier.labels if label not in decision.ignore]
        print(f"listening to {source.name} for: {', '.join(labels)} (Ctrl-C to stop)", file=err, flush=True)

    last_draw = -math.inf
    meter_shown = False

    def clear_meter() -> None:
        nonlocal meter_shown
        if meter_shown:
            err.write("\r\x1b[2K")
            err.flush()
            meter_shown = False

    def on_step(step: StreamStep) -> None:
        nonlocal last_draw, meter_shown
        if step.detection is not None:
            clear_meter()
            print(format_detection(step.detection, format=format), file=out, flush=True)
        if meter:
            now = time.monotonic()
            if now - last_draw >= _METER_INTERVAL:
                err.write(_meter_line(step.level_db, source.name, step.time))
                err.flush()
                last_draw, meter_shown = now, True

    started = time.monotonic()
    try:
        detections = run_engine(source, recognizer, duration=duration, on_step=on_step)
    finally:
        clear_meter()
    lost = ""
    if source.dropped_blocks or source.overflows:
        lost = f"; audio lost: {source.dropped_blocks} dropped blocks, {source.overflows} input overflows"
    heard = recognizer.time
    if isinstance(source, FileSource) and not source.loop:  # not the silence added after the file
        heard = min(heard, source.duration - source.tail_seconds)
    if format == "text" or lost:
        print(
            f"{len(detections)} detection(s) in {heard:.1f} s of audio "
            f"({time.monotonic() - started:.1f} s){lost}",
            file=err,
            flush=True,
        )
    return detections


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``speechrnn listen``."""
    from speechrnn.onnx_backend import BACKENDS

    parser.add_argument("--model", help="model file (default: the shipped default model)")
    parser.add_argument(
        "--input", metavar="NAME|INDEX", help="microphone name (substring) or index (default: the system default)"
    )
    parser.add_argument("--list-inputs", action="store_true", help="list the audio input devices and exit")
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="compute device for the model (default: auto)"
    )
    parser.add_argument(
        "--backend", default="auto", choices=BACKENDS,
        help="what runs the model: auto, torch, onnx, or int8 (int8 weights: 1.3-1.6x faster on the CPU)",
    )
    parser.add_argument("--threshold", type=float, help="detection threshold in [0, 1] (default: the decision default)")
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop by itself after this many seconds")
    parser.add_argument(
        "--hop", type=float, default=0.1, metavar="SECONDS", help="time between model evaluations (default: 0.1)"
    )
    parser.add_argument(
        "--format", default="text", choices=FORMATS, help="text lines, or one JSON object per detection (default: text)"
    )
    parser.add_argument("--file", metavar="PATH", help="listen to an audio file instead of the microphone")
    parser.add_argument("--fast", action="store_true", help="with --file: do not pace the file in real time")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``speechrnn listen``; 0 on success (also after Ctrl-C), 1 on an error, 2 on bad options."""
    from speechrnn.errors import SpeechRNNError

    if args.fast and not args.file:
        print("error: --fast only applies with --file", file=sys.stderr)
        return 2
    if args.file and (args.input is not None or args.list_inputs):
        print(f"error: {'--input' if args.input is not None else '--list-inputs'} is for the microphone; "
              "leave it out with --file", file=sys.stderr)
        return 2
    try:
        if args.list_inputs:
            from speechrnn.microphone import list_inputs

            inputs = list_inputs()
            if not inputs:
                print("no audio input devices found", file=sys.stderr)
                return 1
            for entry in inputs:
                print(entry.describe())
            return 0
        listen(
            model=args.model,
            input=args.input,
            file=args.file,
            fast=args.fast,
            device=args.device,
            backend=args.backend,
            threshold=args.threshold,
            duration=args.duration,
            hop=args.hop,
            format=args.format,
        )
    except SpeechRNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0

"""``speechrnn classify``: classify audio files and folders, clips and long recordings.

Every file :mod:`speechrnn.audio` reads (any sample rate, any channel count) is classified:

- a **clip** (at most the model's clip length, 1 s for the shipped model) gets one prediction:
  the most probable label, its probability and the top-k labels;
- a **short recording** (longer than a clip, at most ``clip_max_seconds``, 2 s by default) is
  taken as one spoken word: its loudest clip-length window (:func:`speechrnn.trim.loudest_window`,
  how Speech Commands' clips were cut from their recordings) gets one prediction like a clip, so
  a one-second clip saved with a little padding, or re-encoded by a lossy codec that adds a few
  milliseconds, is classified as well as the clip itself;
- a **long recording** (longer than ``clip_max_seconds``) is scanned with a sliding window (one
  model window every ``hop``, 0.1 s by default) and the windows' probabilities go through
  :class:`speechrnn.decisions.CommandDecider`, the same smoothing, threshold and suppression as
  live listening, giving a list of detections. The windows and their times are exactly those of
  :class:`speechrnn.streaming.StreamingRecognizer` fed with the same audio (the first windows are
  left-padded with the features of silence), so a file gives the detections a live listener
  would have given. Memory stays bounded: the file is read in blocks
  (:func:`speechrnn.audio.iter_audio_blocks`), features are computed per block and windows are
  strided views of the frame sequence.

Files are processed in chunks (``--batch-size`` files): the clips of a chunk are decoded and go
through the batched log-mel (:class:`~speechrnn.features.LogMel`, or its numpy twin
:class:`~speechrnn.features.LogMelNumpy` without PyTorch) and the model together. Chunks run in
parallel in worker processes (``--workers``, one per CPU core by default) forked from the main
process once it has loaded the model, each on one thread (``--threads``); the main process
writes their records in order. Small jobs (up to 64 files) and GPU runs stay in one process,
which hands out each record as soon as its file is done.

The model is loaded with :func:`speechrnn.onnx_classifier.load_classifier`: on the CPU, once a
model file's checked ONNX export is cached (by the first run with it), classification needs
neither PyTorch nor its 3 s import: numpy features and ONNX Runtime do the work.

Output schema
-------------
One record per input file, in sorted path order (the same order in every format)::

    {
      "path": "clips/yes/0a7c2a8d_nohash_0.wav",   # the file, as found or named (bytes of a
                                # name that are not UTF-8 as \\xNN)
      "label": "yes",           # clip or short recording: the most probable class; long file:
                                # the best detection's label, or "_silence_"/"_unknown_"
                                # (whichever had the higher mean probability over the windows)
                                # when nothing was detected; null when the file could not be
                                # classified
      "score": 0.973,           # clip: the label's probability; long file: the best detection's
                                # averaged probability, or the mean probability of the
                                # "_silence_"/"_unknown_" label; null on error
      "top_k": [{"label": "yes", "score": 0.973}, ...],
                                # the k best classes, best first (--top-k, default 3); clip: by
                                # probability; long file: by the peak of each class's smoothed
                                # (averaged) probability over the file; [] on error
      "detections": [{"label": "yes", "score": 0.91, "start": 1.2, "end": 2.2, "time": 2.45}, ...],
                                # long files only ([] for clips and on error): each recognised
                                # command, with the span in seconds of the model window that
                                # scored it highest (start, end) and the time the decision was
                                # made (time), as in live listening
      "duration": 1.0,          # seconds of audio read (at the model's sample rate); null on error
      "error": null             # or a one-line reason the file could not be classified
    }

Scores are probabilities in [0, 1] rounded to 6 decimals; times are seconds rounded to 3 decimals.

Formats (``--format``): ``jsonl`` writes one such object per line; ``json`` one array of them
(closed even when interrupted); ``csv`` the columns ``path,label,score,top_k,n_detections,
detections,duration,error`` with ``top_k`` as ``label:score;label:score`` and ``detections`` as
``label@start-end;...`` (empty cells for nulls); ``table`` aligned, human-readable columns. The
default is ``table`` when writing to a terminal; otherwise the format follows the ``--output``
extension (``.csv``, ``.json``, ``.jsonl``/``.ndjson``, ``.txt`` for a table) and is ``jsonl``
for anything else (pipes, other names).

Exit status: 0 when every file was classified, 1 when any file failed (each failure is also one
``path: reason`` line on stderr), 2 for bad usage (bad arguments, no files found, bad ``--shard``,
an unreadable model file, an unavailable device, an unwritable output), 130 when interrupted
(Ctrl-C; the records finished so far are written, in order). Folders that cannot be listed are
reported as ``path: reason`` lines on stderr (exit status 1) and the files found elsewhere are
still classified. When the reader of the output goes away (``speechrnn classify ... | head``) the
command stops quietly.

``--shard K/N`` (K from 1 to N) keeps the K-th of N contiguous, near-equal blocks of the sorted
file list, so the outputs of shards 1..N concatenated in order are the output of the whole run.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import json
import math
import os
import signal
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from speechrnn.decisions import CommandDecider, DecisionConfig, Detection
from speechrnn.errors import AudioError, SpeechRNNError
from speechrnn.outputs import silence_stdout

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

    from speechrnn.inference import Classifier
    from speechrnn.onnx_classifier import OnnxClassifier

    #: What classifies: PyTorch (and its ONNX backends), or the torch-free ONNX classifier.
    AnyClassifier = Classifier | OnnxClassifier

__all__ = [
    "FORMATS",
    "FileRecord",
    "ScanResult",
    "UsageError",
    "add_arguments",
    "classify_files",
    "collect_audio_files",
    "iter_classify",
    "parse_shard",
    "run_classify",
    "run_from_args",
    "scan_audio",
    "shard_files",
    "write_records",
]

FORMATS: tuple[str, ...] = ("table", "csv", "json", "jsonl")
CSV_COLUMNS: tuple[str, ...] = ("path", "label", "score", "top_k", "n_detections", "detections", "duration", "error")

_SILENCE = "_silence_"
_UNKNOWN = "_unknown_"
_EXTENSION_FORMATS = MappingProxyType(
    {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "table"}
)
_BLOCK_SECONDS = 10.0
#: Default longest recording taken as one word (its loudest clip-length window), seconds.
CLIP_MAX_SECONDS = 2.0


class UsageError(SpeechRNNError):
    """The command was used wrongly (no files, bad ``--shard``, ...): exit status 2."""


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanResult:
    """What a sliding-window scan of a recording found.

    Parameters
    ----------
    labels : tuple of str
        Class names, aligned with the probability columns.
    times : np.ndarray, shape (n_windows,), float64
        End time of each model window, seconds from the start of the audio.
    probabilities : np.ndarray, shape (n_windows, n_classes), float32
        The model's probabilities for each window.
    peak_average : np.ndarray, shape (n_classes,), float32
        The highest smoothed (averaged) probability each class reached.
    detections : tuple of Detection
        The recognised commands, in time order.
    duration : float
        Seconds of audio scanned.
    label : str
        The best detection's label, or the ``_silence_``/``_unknown_`` class with the higher mean
        probability over the windows when nothing was detected (the class with the highest mean
        probability when the model has neither).
    score : float
        The best detection's averaged probability, or that class's mean probability.
    """

    labels: tuple[str, ...]
    times: np.ndarray
    probabilities: np.ndarray
    peak_average: np.ndarray
    detections: tuple[Detection, ...]
    duration: float
    label: str
    score: float

    def top_k(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` classes with the highest peak smoothed probability, ``(label, score)``, best first."""
        order = np.argsort(-self.peak_average, kind="stable")[:k]
        return [(self.labels[i], float(self.peak_average[i])) for i in order]


@dataclass(frozen=True)
class FileRecord:
    """The result for one file: a prediction, a scan or an error (see the module docstring).

    Parameters
    ----------
    path : str
    label : str or None
    score : float or None
    top_k : tuple of (str, float)
    detections : tuple of Detection
    duration : float or None
        Seconds of audio.
    error : str or None
        One-line reason the file could not be classified.
    """

    path: str
    label: str | None = None
    score: float | None = None
    top_k: tuple[tuple[str, float], ...] = ()
    detections: tuple[Detection, ...] = field(default=())
    duration: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was classified."""
        return self.error is None

    @property
    def shown_path(self) -> str:
        """``path`` as any output can hold it: bytes of a file name that are not UTF-8 as ``\\xNN``."""
        return shown_path(self.path)

    def as_dict(self) -> dict[str, Any]:
        """The record in the documented JSON schema."""
        return {
            "path": self.shown_path,
            "label": self.label,
            "score": None if self.score is None else round(float(self.score), 6),
            "top_k": [{"label": name, "score": round(float(p), 6)} for name, p in self.top_k],
            "detections": [
                {
                    "label": d.label,
                    "score": round(float(d.score), 6),
                    "start": round(float(d.start), 3),
                    "end": round(float(d.end), 3),
                    "time": round(float(d.time), 3),
                }
                for d in self.detections
            ],
            "duration": None if self.duration is None else round(float(self.duration), 3),
            "error": self.error,
        }


# ------------------------------------------------------------------------------------------------
# file lists
# ------------------------------------------------------------------------------------------------


def collect_audio_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    on_error: Callable[[str, str], None] | None = None,
) -> list[str]:
    """The sorted list of files to classify.

    Folders are searched for files whose extension is in
    :data:`speechrnn.audio.AUDIO_EXTENSIONS` (case-insensitive; hidden files and folders are
    skipped), including subfolders when ``recursive`` (symbolic links to folders are followed,
    each real folder once). Every other path is kept as named, whatever its extension; a missing
    one gets an error record when classified. The same file named twice (``f``, ``./f``) is
    kept once.

    Parameters
    ----------
    paths : iterable of path-like
    recursive : bool
    on_error : callable, optional
        Called with ``(folder, reason)`` for each folder that cannot be listed (no permission,
        a link loop, ...); the search goes on. By default a :class:`RuntimeWarning` is issued.

    Returns
    -------
    list of str
        Sorted, without duplicates.

    Raises
    ------
    UsageError
        Nothing to classify.
    """
    from speechrnn.audio import AUDIO_EXTENSIONS

    def report(folder: str, exc: OSError) -> None:
        reason = f"cannot list folder ({exc.strerror or type(exc).__name__})"
        if on_error is None:
            warnings.warn(f"{folder}: {reason}", RuntimeWarning, stacklevel=3)
        else:
            on_error(folder, reason)

    def is_audio(name: str) -> bool:
        return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS

    found: dict[str, str] = {}  # normalized absolute path -> the path as found
    skipped_folders = False

    def add(path: str) -> None:
        found.setdefault(os.path.normcase(os.path.abspath(path)), path)

    names = [os.fspath(p) for p in paths]
    seen: set[str] = set()  # real folders searched, over all the named paths
    for name in names:
        if not os.path.isdir(name):
            add(name)
            continue
        if recursive:
            for folder, dirs, files in os.walk(name, onerror=lambda exc, top=name: report(exc.filename or top, exc),
                                               followlinks=True):
                real = os.path.realpath(folder)
                if real in seen:  # a link back to a folder already searched
                    dirs[:] = []
                    continue
                seen.add(real)
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for f in files:
                    if is_audio(f):
                        add(os.path.join(folder, f))
            continue
        try:
            with os.scandir(name) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    try:
                        folder_entry = entry.is_dir()
                    except OSError:  # a link loop or an unreadable target: classify it and say why
                        folder_entry = False
                    if folder_entry:
                        skipped_folders = True
                    elif is_audio(entry.name):
                        add(os.path.join(name, entry.name))
        except OSError as exc:
            report(name, exc)
    if not found:
        where = ", ".join(names) if names else "(no paths given)"
        hint = " (add --recursive to search subfolders)" if skipped_folders else ""
        raise UsageError(f"no audio files found in {where}{hint}")
    return sorted(found.values())


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"K/N"`` (1 <= K <= N) into ``(K, N)``; raise :class:`UsageError` otherwise."""
    parts = str(text).split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        k, n = int(parts[0]), int(parts[1])
    except ValueError:
        raise UsageError(f"bad --shard {text!r}: use K/N with whole numbers, e.g. 1/4") from None
    if not 1 <= k <= n:
        raise UsageError(f"bad --shard {text!r}: need 1 <= K <= N")
    return k, n


def shard_files(files: Sequence[str], shard: tuple[int, int] | str | None) -> list[str]:
    """The K-th of N contiguous, near-equal blocks of ``files`` (all of them when ``shard`` is None).

    Concatenating the shards 1..N in order gives ``files`` back.
    """
    if shard is None:
        return list(files)
    k, n = parse_shard(shard) if isinstance(shard, str) else shard
    if not 1 <= k <= n:
        raise UsageError(f"bad shard {k}/{n}: need 1 <= K <= N")
    total = len(files)
    return list(files[(k - 1) * total // n : k * total // n])


# ------------------------------------------------------------------------------------------------
# decoding (runs in worker processes)
# ------------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _decode_chunk(
    paths: Sequence[str], sample_rate: int, clip_samples: int, max_samples: int
) -> tuple[np.ndarray, list[tuple[str, Any]]]:
    """Decode a chunk of files for the clip path.

    Files of at most ``max_samples`` (>= ``clip_samples``) are clips: a longer one is cut to its
    loudest ``clip_samples`` window.

    Returns
    -------
    clips : np.ndarray, shape (n_clips, clip_samples), float32
        The files that are clips, zero-padded at the end, in order.
    entries : list of (kind, value)
        One per path: ``("clip", n_samples)`` (the file's length), ``("long", None)`` (longer
        than ``max_samples``: scanned later, block by block) or ``("error", reason)``.
    """
    from speechrnn.audio import load_audio
    from speechrnn.trim import loudest_window

    clips = np.zeros((len(paths), clip_samples), dtype=np.float32)
    entries: list[tuple[str, Any]] = []
    n = 0
    max_samples = max(max_samples, clip_samples)
    max_seconds = (max_samples + 1) / sample_rate  # one sample more tells a long file apart
    for path in paths:
        try:
            audio = load_audio(path, sample_rate=sample_rate, max_seconds=max_seconds)
        except AudioError as exc:
            entries.append(("error", _one_line(exc.reason)))
            continue
        except (OSError, RuntimeError, ValueError, MemoryError) as exc:
            entries.append(("error", _one_line(f"cannot read audio ({type(exc).__name__}: {exc})")))
            continue
        if audio.shape[0] > max_samples:
            entries.append(("long", None))
            continue
        start = loudest_window(audio, clip_samples)
        window = audio[start : start + clip_samples]
        clips[n, : window.shape[0]] = window
        entries.append(("clip", int(audio.shape[0])))
        n += 1
    return clips[:n], entries


def _auto_workers(n_files: int) -> int:
    """Worker processes: none for small jobs, else one per CPU core (at most 8)."""
    if n_files <= 64:
        return 0
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass(frozen=True)
class _ChunkOptions:
    """How each chunk of files is classified (sent to the workers with every chunk)."""

    top_k: int
    decision: DecisionConfig | None
    hop_seconds: float
    batch_size: int
    clip_max_seconds: float = CLIP_MAX_SECONDS


# Per-process state of the worker processes: the classifier, set once by the pool initializer in
# each worker (inherited through fork, or pickled for spawn); never used in the main process. It is
# a plain, writable dict on purpose (unlike the read-only tables above): a pool's initializer can
# only hand its worker the classifier through module state, and each process has its own copy.
_WORKER_STATE: dict[str, AnyClassifier] = {}


def _worker_init(classifier: AnyClassifier, threads: int) -> None:
    """Set up a worker process: its classifier and compute threads; Ctrl-C is left to the main process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    classifier.use_threads(threads)  # 1 by default: the workers are the parallelism
    _WORKER_STATE["classifier"] = classifier


def _worker_chunk(paths: list[str], options: _ChunkOptions) -> list[FileRecord]:
    """Classify one chunk in a worker process."""
    return list(_iter_chunk(_WORKER_STATE["classifier"], paths, options))


def _stop_pool(executor: Executor, *, now: bool) -> None:
    """Shut the worker pool down; ``now`` also ends the workers' current chunks (Ctrl-C)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=not now, cancel_futures=True)
    if now:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)


# ------------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------------


def _top_k(probabilities: np.ndarray, labels: tuple[str, ...], k: int) -> tuple[tuple[str, float], ...]:
    order = np.argsort(-probabilities, kind="stable")[:k]
    return tuple((labels[i], float(probabilities[i])) for i in order)


def scan_audio(
    classifier: AnyClassifier,
    blocks: Iterable[np.ndarray],
    *,
    hop_seconds: float = 0.1,
    decision: DecisionConfig | None = None,
    batch_size: int = 256,
    on_progress: Callable[[float], None] | None = None,
) -> ScanResult:
    """Scan a recording with a sliding model window and decide on detections.

    Window ``k`` (``k = 1, 2, ...``) ends with feature frame ``k * hop_frames - 1`` and covers the
    ``n_frames`` frames before it, left-padded with the features of silence at the start: the
    windows, times and probabilities of :meth:`speechrnn.streaming.StreamingRecognizer.push_steps`
    on the same audio. Their probabilities go through :class:`~speechrnn.decisions.CommandDecider`.

    Memory is bounded by the block size: features are computed per block (with the one-frame
    overlap carried over), and windows are strided views of the frame sequence.

    Parameters
    ----------
    classifier : Classifier or OnnxClassifier
    blocks : iterable of np.ndarray, each shape (n_i,)
        Consecutive mono float blocks of the recording at the model's sample rate, any sizes
        (e.g. :func:`speechrnn.audio.iter_audio_blocks`, or ``[audio]``).
    hop_seconds : float
        Time between windows, rounded to a whole number (>= 1) of feature hops.
    decision : DecisionConfig, optional
        Averaging, threshold and suppression (defaults when omitted).
    batch_size : int
        Windows per model call.
    on_progress : callable, optional
        Called with the seconds of audio scanned so far after each block.

    Returns
    -------
    ScanResult

    Raises
    ------
    ValueError
        A block is not 1-D or holds NaN/infinity, or the audio is shorter than one hop window.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    cfg = classifier.feature_config
    if not hop_seconds > 0:
        raise ValueError(f"hop_seconds must be positive, got {hop_seconds!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    hop = max(1, round(hop_seconds / cfg.hop_seconds))
    (decision or DecisionConfig()).check_hop(hop * cfg.hop_seconds)
    n_frames, hl, n_fft, rate = cfg.n_frames, cfg.hop_length, cfg.n_fft, cfg.sample_rate
    labels = tuple(classifier.labels)
    decider = CommandDecider(labels, config=decision, window_seconds=cfg.clip_seconds)
    detections: list[Detection] = []
    all_times: list[np.ndarray] = []
    all_probs: list[np.ndarray] = []
    peak = np.zeros(len(labels), dtype=np.float32)
    tail = np.zeros(0, dtype=np.float32)  # samples from frame `frames_done` on
    frames_done = 0
    total = 0
    next_k = 1
    silence = classifier.features(np.zeros(n_fft, dtype=np.float32))  # (1, n_mels)
    buffer = np.repeat(silence, n_frames, axis=0)  # frames with global indices [first, first + len)
    first = -n_frames
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 2 and block.shape[1] == 1:
            block = block[:, 0]
        if block.ndim != 1:
            raise ValueError(f"expected mono blocks of shape (n,), got shape {block.shape}")
        if not np.isfinite(np.dot(block, block)) and not np.isfinite(block).all():
            raise ValueError("audio contains NaN or infinite samples")
        total += block.shape[0]
        audio = np.concatenate([tail, block]) if tail.shape[0] else block
        n_new = cfg.frames_for(audio.shape[0])
        if n_new == 0:
            tail = audio.copy()
            continue
        new = classifier.features(audio[: (n_new - 1) * hl + n_fft])  # (n_new, n_mels)
        tail = audio[n_new * hl :].copy()
        frames_done += n_new
        buffer = np.concatenate([buffer, new])
        last_k = frames_done // hop
        if last_k >= next_k:
            count = last_k - next_k + 1
            start = next_k * hop - n_frames - first
            span = buffer[start : start + (count - 1) * hop + n_frames]
            # (count, n_frames, n_mels), a view
            windows = sliding_window_view(span, n_frames, axis=0)[::hop].transpose(0, 2, 1)
            ks = np.arange(next_k, last_k + 1)
            times = ((ks * hop - 1) * hl + n_fft) / rate
            for b in range(0, count, batch_size):
                probs = classifier.probabilities_from_frames(np.ascontiguousarray(windows[b : b + batch_size]))
                for t, p in zip(times[b : b + batch_size], probs, strict=True):
                    found = decider.update(float(t), p)
                    if found is not None:
                        detections.append(found)
                    np.maximum(peak, decider.average, out=peak)
                all_probs.append(probs)
            all_times.append(times)
            next_k = last_k + 1
            drop = min(next_k * hop - n_frames - first, buffer.shape[0])
            if drop > 0:
                buffer = buffer[drop:].copy()  # keep only what later windows need
                first += drop
        if on_progress is not None:
            on_progress(total / rate)
    if not all_times:
        need = ((hop - 1) * hl + n_fft) / rate
        raise ValueError(f"{total / rate:.3f} s of audio is too short to scan (need at least {need:.3f} s)")
    times_arr = np.concatenate(all_times)
    probs_arr = np.concatenate(all_probs).astype(np.float32, copy=False)
    if detections:
        best = max(detections, key=lambda d: d.score)
        label, score = best.label, float(best.score)
    else:
        mean = probs_arr.mean(axis=0)
        quiet = [i for i, name in enumerate(labels) if name in (_SILENCE, _UNKNOWN)]
        choice = max(quiet, key=lambda i: mean[i]) if quiet else int(mean.argmax())
        label, score = labels[choice], float(mean[choice])
    if not peak.any():  # too few windows for the decider to average: rank by the raw peaks
        peak = probs_arr.max(axis=0)
    return ScanResult(
        labels=labels,
        times=times_arr,
        probabilities=probs_arr,
        peak_average=peak,
        detections=tuple(detections),
        duration=total / rate,
        label=label,
        score=score,
    )


# ------------------------------------------------------------------------------------------------
# the batch job
# ------------------------------------------------------------------------------------------------


def iter_classify(
    files: Sequence[str],
    *,
    classifier: AnyClassifier | None = None,
    model: str | os.PathLike[str] | None = None,
    device: str = "auto",
    backend: str = "auto",
    top_k: int = 3,
    batch_size: int = 256,
    workers: int | None = None,
    decision: DecisionConfig | None = None,
    hop_seconds: float = 0.1,
    threads: int | None = None,
    on_loaded: Callable[[tuple[str, ...]], None] | None = None,
    clip_max_seconds: float = CLIP_MAX_SECONDS,
    on_scan: Callable[[str, float], None] | None = None,
) -> Iterator[FileRecord]:
    """Classify files and yield one record per file, in the order of ``files``.

    Files are handled in chunks of ``batch_size``: the clips of a chunk (and the loudest window of
    each recording of at most ``clip_max_seconds``) are decoded and classified in one model batch,
    longer files are scanned with :func:`scan_audio`. Chunks run in parallel
    in ``workers`` processes (forked with the loaded model) and records come back in order.
    A file that cannot be read gives a record with ``error`` set; the rest go on.
    Close the generator (or exhaust it) to stop the workers.

    Parameters
    ----------
    files : sequence of str
        The files, e.g. from :func:`collect_audio_files`.
    classifier : Classifier or OnnxClassifier, optional
        A loaded model; otherwise ``model`` is loaded on ``device`` with
        :func:`speechrnn.onnx_classifier.load_classifier` (without PyTorch when its checked
        ONNX export is cached).
    model : path-like, optional
        Model file (the shipped default model when None).
    device : {"auto", "cpu", "cuda"}
    backend : {"auto", "torch", "onnx", "int8"}
        What runs the model (see :class:`~speechrnn.inference.Classifier`).
    top_k : int
        Labels in each record's ``top_k``.
    batch_size : int
        Clips per decoding chunk and model batch.
    workers : int, optional
        Worker processes, each decoding and classifying whole chunks on one thread; 0 does
        everything in this process (on the classifier's current threads); None picks by job size
        and cores (0 for up to 64 files, else one per core, at most 8).
    decision : DecisionConfig, optional
        Smoothing, threshold and suppression for long files.
    hop_seconds : float
        Sliding-window hop for long files, seconds.
    threads : int, optional
        Compute threads per worker process (default 1), and for work done in this process when
        ``workers`` is 0 (default: leave the current setting; restored afterwards). PyTorch's
        threads, or ONNX Runtime's for an :class:`~speechrnn.onnx_classifier.OnnxClassifier`.
    on_loaded : callable, optional
        Called with the model's labels once the model is loaded, before the first record.
    clip_max_seconds : float
        Longest recording classified as one word (its loudest clip-length window), seconds;
        longer ones are scanned for detections. At most the clip length scans every file longer
        than a clip.
    on_scan : callable, optional
        Called with ``(path, seconds scanned)`` while a long recording is scanned in this
        process (not from worker processes), e.g. to show progress within a long file.

    Yields
    ------
    FileRecord

    Raises
    ------
    speechrnn.errors.CheckpointError, speechrnn.errors.DeviceError
        The model cannot be loaded (raised before any record).
    ValueError
        Bad options, e.g. a hop whose results the decision's averaging window cannot hold
        ``minimum_count`` of (:meth:`DecisionConfig.check_hop`).
    """
    if batch_size < 1 or top_k < 1:
        raise ValueError("batch_size and top_k must be >= 1")
    if not (clip_max_seconds >= 0 and math.isfinite(clip_max_seconds)):
        raise ValueError(f"clip_max_seconds must be a finite number >= 0, got {clip_max_seconds!r}")
    (decision or DecisionConfig()).check_hop(hop_seconds)  # else no long file could ever give a detection
    options = _ChunkOptions(top_k=top_k, decision=decision, hop_seconds=hop_seconds, batch_size=batch_size,
                            clip_max_seconds=clip_max_seconds)
    files = list(files)
    chunks = [files[i : i + batch_size] for i in range(0, len(files), batch_size)]
    n_workers = _auto_workers(len(files)) if workers is None else max(0, int(workers))
    n_workers = min(n_workers, len(chunks))
    if classifier is None:
        from speechrnn.onnx_classifier import load_classifier

        classifier = load_classifier(model, device=device, backend=backend)
    if on_loaded is not None:
        on_loaded(tuple(classifier.labels))
    if str(classifier.device) != "cpu":
        n_workers = 0  # one process feeds the GPU (a CUDA context does not survive fork)
    if n_workers == 0:
        previous = classifier.use_threads(threads) if threads is not None else None
        try:
            for chunk in chunks:
                yield from _iter_chunk(classifier, chunk, options, on_scan=on_scan)
        finally:
            if previous is not None:
                classifier.use_threads(previous)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    method = "fork" if sys.platform.startswith("linux") else "spawn"
    for stream in (sys.stdout, sys.stderr):  # a forked worker must not inherit (and re-emit) buffered output
        if stream is not None:
            stream.flush()
    executor = ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context(method),
                                   initializer=_worker_init, initargs=(classifier, threads or 1))
    pending: deque[Future[list[FileRecord]]] = deque()
    submitted = 0

    def fill() -> None:
        nonlocal submitted
        while len(pending) < 2 * n_workers and submitted < len(chunks):
            pending.append(executor.submit(_worker_chunk, chunks[submitted], options))
            submitted += 1

    consumed = 0
    try:
        fill()
        while pending:
            try:
                result = pending.popleft().result()
            except BrokenProcessPool:  # a worker died (killed, or a decoder crashed): go on here
                for future in pending:
                    future.cancel()
                pending.clear()
                _stop_pool(executor, now=True)
                warnings.warn("a worker process died; classifying the remaining files in the main process",
                              RuntimeWarning, stacklevel=2)
                for chunk in chunks[consumed:]:
                    yield from _iter_chunk(classifier, chunk, options, on_scan=on_scan)
                return
            consumed += 1
            fill()
            yield from result
    except BaseException:
        for future in pending:
            future.cancel()
        _stop_pool(executor, now=True)
        raise
    _stop_pool(executor, now=False)


def _iter_chunk(classifier: AnyClassifier, paths: list[str], options: _ChunkOptions, *,
                on_scan: Callable[[str, float], None] | None = None) -> Iterator[FileRecord]:
    """Records for a chunk of files, in order, each yielded as soon as it is done.

    Clips go through the model in one batch, long files are scanned, unreadable files get an
    error record.
    """
    cfg = classifier.feature_config
    labels = tuple(classifier.labels)
    max_samples = round(options.clip_max_seconds * cfg.sample_rate)
    clips, entries = _decode_chunk(paths, cfg.sample_rate, cfg.clip_samples, max_samples)
    probabilities = classifier.probabilities(clips) if clips.shape[0] else None
    row = 0
    for path, (kind, value) in zip(paths, entries, strict=True):
        if kind == "clip":
            assert probabilities is not None
            p = probabilities[row]
            row += 1
            best = int(p.argmax())
            yield FileRecord(path=path, label=labels[best], score=float(p[best]),
                             top_k=_top_k(p, labels, options.top_k), duration=value / cfg.sample_rate)
        elif kind == "long":
            yield _scan_file(classifier, path, top_k=options.top_k, decision=options.decision,
                             hop_seconds=options.hop_seconds, batch_size=options.batch_size, on_scan=on_scan)
        else:
            yield FileRecord(path=path, error=str(value))


def _scan_file(classifier: AnyClassifier, path: str, *, top_k: int, decision: DecisionConfig | None,
               hop_seconds: float, batch_size: int,
               on_scan: Callable[[str, float], None] | None = None) -> FileRecord:
    from functools import partial

    from speechrnn.audio import iter_audio_blocks

    cfg = classifier.feature_config
    progress = None if on_scan is None else partial(on_scan, path)
    try:
        blocks = iter_audio_blocks(path, sample_rate=cfg.sample_rate, block_seconds=_BLOCK_SECONDS)
        result = scan_audio(classifier, blocks, hop_seconds=hop_seconds, decision=decision, batch_size=batch_size,
                            on_progress=progress)
    except AudioError as exc:
        return FileRecord(path=path, error=_one_line(exc.reason))
    except (OSError, RuntimeError, ValueError, MemoryError) as exc:
        return FileRecord(path=path, error=_one_line(f"cannot scan audio ({type(exc).__name__}: {exc})"))
    return FileRecord(path=path, label=result.label, score=result.score, top_k=tuple(result.top_k(top_k)),
                      detections=result.detections, duration=result.duration)


def classify_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = False,
    shard: tuple[int, int] | str | None = None,
    **options: Any,
) -> list[FileRecord]:
    """Collect, shard and classify files; all records in sorted path order.

    Parameters
    ----------
    paths : iterable of path-like
        Files and folders, as on the command line.
    recursive : bool
        Search folders' subfolders too.
    shard : (K, N) or "K/N", optional
        Keep the K-th of N contiguous blocks of the sorted file list.
    **options
        Keyword options of :func:`iter_classify` (``classifier``, ``model``, ``device``,
        ``top_k``, ``batch_size``, ``workers``, ``decision``, ``hop_seconds``).

    Returns
    -------
    list of FileRecord

    Raises
    ------
    UsageError
        No files, or a bad shard.
    """
    files = shard_files(collect_audio_files(paths, recursive=recursive), shard)
    return list(iter_classify(files, **options))


# ------------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------------


def shown_path(path: str) -> str:
    """A file name as text that UTF-8 can encode.

    Python keeps the bytes of a file name that are not valid UTF-8 as lone surrogates, which no
    output can write; they are shown as ``\\xNN`` instead (``b"bad\\xff.wav"`` becomes
    ``"bad\\\\xff.wav"``). Any other name is returned unchanged.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    return path


def _fmt_score(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"


def csv_row(record: FileRecord) -> list[str]:
    """The CSV cells of a record (columns :data:`CSV_COLUMNS`)."""
    return [
        record.shown_path,
        record.label or "",
        _fmt_score(record.score),
        ";".join(f"{name}:{_fmt_score(p)}" for name, p in record.top_k),
        "" if record.error else str(len(record.detections)),
        ";".join(f"{d.label}@{d.start:.3f}-{d.end:.3f}" for d in record.detections),
        "" if record.duration is None else f"{record.duration:.3f}",
        record.error or "",
    ]


def write_records(stream: TextIO, records: Iterable[FileRecord], fmt: str) -> int:
    """Write ``records`` to ``stream`` exactly as ``speechrnn classify --format fmt`` prints them.

    Parameters
    ----------
    stream : text stream
        Open for writing (a file opened with ``newline=""`` for CSV).
    records : iterable of FileRecord
    fmt : {"table", "csv", "json", "jsonl"}

    Returns
    -------
    int
        How many records were written.

    Raises
    ------
    UsageError
        An unknown ``fmt``.
    """
    writer = _Writer(stream, fmt)
    for record in records:
        writer.write(record)
    writer.close()
    return writer.count


class _Writer:
    """Writes records in one of :data:`FORMATS` to a text stream, flushing at least every half second."""

    def __init__(self, stream: TextIO, fmt: str, *, path_width: int = 40, label_width: int = 10) -> None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.stream = stream
        self.format = fmt
        self.count = 0
        # a stream that cannot hold every character (PYTHONIOENCODING=ascii, a Latin-1 terminal):
        # JSON escapes them (\\u00fc), table and CSV write them as backslash escapes
        encoding = getattr(stream, "encoding", None) or "utf-8"
        self._unicode = codecs.lookup(encoding).name.startswith("utf")
        self._encoding = encoding
        self._last_flush = time.monotonic()
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        self._widths = (max(4, path_width), max(5, label_width))
        if fmt == "csv":
            assert self._csv is not None
            self._csv.writerow(CSV_COLUMNS)
        elif fmt == "json":
            stream.write("[")
        elif fmt == "table":
            pw, lw = self._widths
            stream.write(f"{'PATH':<{pw}}  {'LABEL':<{lw}}  {'SCORE':>6}  {'SECONDS':>8}  DETAILS\n")

    def write(self, record: FileRecord) -> None:
        fmt = self.format
        if fmt == "jsonl":
            self.stream.write(json.dumps(record.as_dict(), ensure_ascii=not self._unicode) + "\n")
        elif fmt == "json":
            text = json.dumps(record.as_dict(), ensure_ascii=not self._unicode)
            self.stream.write(("\n" if self.count == 0 else ",\n") + text)
        elif fmt == "csv":
            assert self._csv is not None
            self._csv.writerow([self._text(cell) for cell in csv_row(record)])
        else:
            self.stream.write(self._text(self._table_line(record)) + "\n")
        self.count += 1
        now = time.monotonic()
        if now - self._last_flush > 0.5:
            self.flush()
            self._last_flush = now

    def _text(self, text: str) -> str:
        if self._unicode:
            return text
        return text.encode(self._encoding, "backslashreplace").decode(self._encoding)

    def _table_line(self, record: FileRecord) -> str:
        pw, lw = self._widths
        label = record.label or "-"
        score = "-" if record.score is None else f"{record.score:.3f}"
        seconds = "-" if record.duration is None else f"{record.duration:.2f}"
        if record.error:
            details = f"error: {record.error}"
        elif record.detections:
            n = len(record.detections)
            shown = " ".join(f"{d.label}@{d.start:.2f}-{d.end:.2f}" for d in record.detections[:8])
            details = f"{n} detection{'s' if n != 1 else ''}: {shown}{' ...' if n > 8 else ''}"
        else:
            # the other classes: a long file's label is not always its top_k's first
            details = " ".join(f"{name}:{p:.3f}" for name, p in record.top_k if name != record.label)
        return f"{record.shown_path:<{pw}}  {label:<{lw}}  {score:>6}  {seconds:>8}  {details}".rstrip()

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        """Finish the document (close the JSON array) and flush."""
        if self.format == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
        self.flush()


def _choose_format(fmt: str | None, output: str | None, stream: TextIO) -> str:
    if fmt:
        return fmt
    if output is not None and output != "-":
        return _EXTENSION_FORMATS.get(os.path.splitext(output)[1].lower(), "jsonl")
    return "table" if _is_terminal(stream) else "jsonl"


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------


def run_classify(
    *,
    paths: Sequence[str | os.PathLike[str]],
    recursive: bool = False,
    model: str | os.PathLike[str] | None = None,
    device: str = "auto",
    backend: str = "auto",
    fmt: str | None = None,
    output: str | os.PathLike[str] | None = None,
    top_k: int = 3,
    batch_size: int = 256,
    workers: int | None = None,
    threshold: float | None = None,
    hop_seconds: float = 0.1,
    quiet: bool = False,
    shard: str | tuple[int, int] | None = None,
    threads: int | None = None,
    clip_max_seconds: float = CLIP_MAX_SECONDS,
    classifier: AnyClassifier | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The ``speechrnn classify`` command as a function; returns the exit status.

    Parameters
    ----------
    paths : sequence of path-like
        Files and folders.
    recursive : bool
    model : path-like, optional
        Model file (default: the shipped model).
    device : {"auto", "cpu", "cuda"}
    backend : {"auto", "torch", "onnx", "int8"}
        What runs the model on the CPU (``int8``: int8 weights, faster, answers differ on
        up to 0.3% of clips).
    fmt : {"table", "csv", "json", "jsonl"}, optional
        Output format; chosen from ``output``'s extension or the terminal when None.
    output : path-like, optional
        Write here instead of stdout (``"-"`` is stdout).
    top_k, batch_size, workers, hop_seconds
        As :func:`iter_classify`.
    threshold : float, optional
        Detection threshold for long files (default :class:`DecisionConfig`'s).
    quiet : bool
        No progress bar (it is only drawn when ``stderr`` is a terminal anyway).
    shard : "K/N" or (K, N), optional
    threads : int, optional
        Compute threads per process, as :func:`iter_classify`.
    clip_max_seconds : float
        Longest recording classified as one word, as :func:`iter_classify`.
    classifier : Classifier or OnnxClassifier, optional
        Use this loaded model instead of ``model``/``device``.
    stdout, stderr : text streams, optional
        Default ``sys.stdout`` / ``sys.stderr``.

    Returns
    -------
    int
        0 all classified, 1 some files failed, 2 bad usage, 130 interrupted.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    unlisted: list[str] = []

    def fail(message: str) -> int:
        print(f"speechrnn classify: error: {message}", file=stderr)
        return 2

    def folder_error(folder: str, reason: str) -> None:
        unlisted.append(folder)
        print(f"{folder}: {reason}", file=stderr)

    try:
        decision = DecisionConfig() if threshold is None else DecisionConfig(threshold=threshold)
        if top_k < 1 or batch_size < 1 or not hop_seconds > 0:
            raise UsageError("--top-k and --batch-size must be >= 1 and --hop positive")
        if not (clip_max_seconds >= 0 and math.isfinite(clip_max_seconds)):
            raise UsageError("--clip-max must be a finite number >= 0")
        try:
            decision.check_hop(hop_seconds)
        except ValueError as exc:
            raise UsageError(f"--hop: {exc}") from None
        if workers is not None and workers < 0:
            raise UsageError("--workers must be >= 0")
        if threads is not None and threads < 1:
            raise UsageError("--threads must be >= 1")
        if fmt is not None and fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        shard_value = parse_shard(shard) if isinstance(shard, str) else shard
        files = shard_files(collect_audio_files(paths, recursive=recursive, on_error=folder_error), shard_value)
        out_name = None if output is None else os.fspath(output)
        if out_name is not None and out_name != "-":
            _check_not_an_input(out_name, files)
    except (UsageError, ValueError) as exc:
        return fail(str(exc))
    chosen = _choose_format(fmt, out_name, stdout)
    if shard_value is not None and not files:
        print(f"speechrnn classify: shard {shard_value[0]}/{shard_value[1]} has no files", file=stderr)
    stream: TextIO | None = None
    writer: _Writer | None = None
    progress: Any = None
    failed = 0
    interrupted = False
    write_error: OSError | None = None

    def loaded(labels: tuple[str, ...]) -> None:
        nonlocal stream, writer, progress, write_error
        if out_name is None or out_name == "-":
            stream = stdout
        else:
            try:
                stream = open(out_name, "w", encoding="utf-8", newline="")
            except OSError as exc:
                raise UsageError(f"cannot write {out_name}: {exc.strerror or exc}") from None
        path_width = max((len(shown_path(p)) for p in files), default=4)
        label_width = max((len(label) for label in labels), default=5)
        try:
            writer = _Writer(stream, chosen, path_width=path_width, label_width=label_width)  # writes a header
        except BrokenPipeError:
            raise
        except OSError as exc:
            write_error = exc  # reported as the output's failure below
            raise UsageError(str(exc)) from None
        if not quiet and _is_terminal(stderr):
            from tqdm import tqdm

            progress = tqdm(total=len(files), unit="file", file=stderr, dynamic_ncols=True, leave=False)

    lengths: dict[str, float | None] = {}

    def scanning(path: str, seconds: float) -> None:
        """Progress within a long recording (scanned in this process): 'name 120/600 s'."""
        if progress is None:
            return
        if path not in lengths:
            from speechrnn.audio import audio_info

            try:
                lengths[path] = audio_info(path).duration_seconds
            except (SpeechRNNError, OSError, RuntimeError, ValueError):
                lengths[path] = None
        total = lengths[path]
        of = f"/{total:.0f}" if total else ""
        progress.set_postfix_str(f"{os.path.basename(path)} {seconds:.0f}{of} s")

    records = iter_classify(files, classifier=classifier, model=model, device=device, backend=backend, top_k=top_k,
                            batch_size=batch_size, workers=workers, decision=decision, hop_seconds=hop_seconds,
                            threads=threads, on_loaded=loaded, clip_max_seconds=clip_max_seconds,
                            on_scan=scanning)
    try:
        for record in records:
            assert writer is not None and stream is not None
            try:
                if progress is not None and _is_terminal(stream):
                    # rows and the bar share the terminal: take the bar away while a row is written
                    progress.clear()
                    writer.write(record)
                    stream.flush()
                    progress.refresh()
                else:
                    writer.write(record)
            except BrokenPipeError:
                raise
            except OSError as exc:  # the output itself: a full disk, a device gone
                write_error = exc
                break
            if not record.ok:
                failed += 1
                message = f"{record.path}: {record.error}"
                if progress is not None:
                    progress.write(message, file=stderr)
                else:
                    print(message, file=stderr)
            if progress is not None:
                progress.set_postfix_str("", refresh=False)
                progress.update(1)
    except SpeechRNNError as exc:  # the model, the device or the output: before any record
        if writer is not None and writer.count:
            raise
        usage_error: str | None = str(exc)
    except KeyboardInterrupt:
        interrupted = True
        usage_error = None
    else:
        usage_error = None
    finally:
        records.close()
        if progress is not None:
            progress.close()
        write_error = _finish_output(writer, stream, stdout, write_error)
    if write_error is not None:
        if stream is stdout and stdout is sys.stdout:
            silence_stdout()  # Python's own flush at exit would fail on it again
        where = "standard output" if stream is stdout else out_name
        return fail(f"cannot write {where}: {write_error.strerror or write_error}")
    if usage_error is not None:
        return fail(usage_error)
    if interrupted:
        done = writer.count if writer is not None else 0
        print(f"speechrnn classify: interrupted after {done} of {len(files)} files", file=stderr)
        return 130
    return 1 if failed or unlisted else 0


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def _check_not_an_input(output: str, files: Sequence[str]) -> None:
    """Raise UsageError when ``output`` is one of the files to classify (opening it would empty it)."""
    try:
        target = os.stat(output)
    except OSError:
        return  # a new file (or one that cannot be looked at: opening it says why)
    for path in files:
        try:
            found = os.stat(path)
        except OSError:
            continue
        if (found.st_dev, found.st_ino) == (target.st_dev, target.st_ino):
            raise UsageError(f"--output {output} is one of the files to classify; writing it would destroy it")


def _finish_output(writer: _Writer | None, stream: TextIO | None, stdout: TextIO,
                   error: OSError | None) -> OSError | None:
    """Close the document and the output file; the first write error met (or ``error``)."""
    if writer is not None and error is None:
        try:
            writer.close()
        except BrokenPipeError:
            raise
        except OSError as exc:
            error = exc
    if stream is not None and stream is not stdout:
        try:
            stream.close()
        except OSError as exc:
            error = error or exc
    return error


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _finite_float(*, allow_zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number, positive (or, with ``allow_zero``, >= 0)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else 'positive'}, got {value}")
        return value

    return parse


_positive_float = _finite_float(allow_zero=False)
_non_negative_float = _finite_float(allow_zero=True)


def _shard_arg(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("bad --shard ")) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``speechrnn classify``."""
    from speechrnn.onnx_backend import BACKENDS

    defaults = DecisionConfig()
    parser.epilog = (
        "Clips (up to the model's clip length) get one label, and so do recordings of up to --clip-max "
        "seconds (their loudest clip-length window); longer recordings are scanned with a "
        "sliding window and get a list of detections. Output: one record per file, in sorted path "
        "order. Exit status: 0 all files classified, 1 some failed, 2 bad usage, 130 interrupted."
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="audio files (any extension) and folders (searched for audio extensions)")
    parser.add_argument("-r", "--recursive", action="store_true", help="search folders' subfolders too")
    parser.add_argument("-m", "--model", help="model file (default: the shipped default model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="compute device (default: auto, CUDA when available)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="what runs the model: auto (ONNX Runtime on the CPU when installed), torch, onnx, "
                             "or int8 (ONNX Runtime with int8 weights: 1.3-1.6x faster on the CPU, answers "
                             "differ from the float model's on up to 0.3%% of clips)")
    parser.add_argument("-f", "--format", choices=FORMATS, dest="fmt",
                        help="output format (default: table on a terminal, else from the --output "
                             "extension .csv/.json/.jsonl/.txt, else jsonl)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the records to FILE instead of stdout")
    parser.add_argument("-k", "--top-k", type=_positive_int, default=3, metavar="K",
                        help="labels listed per file (default: 3)")
    parser.add_argument("-b", "--batch-size", type=_positive_int, default=256, metavar="N",
                        help="clips per decoding chunk and model batch (default: 256)")
    parser.add_argument("-j", "--workers", type=_non_negative_int, default=None, metavar="N",
                        help="worker processes that decode and classify chunks in parallel; 0 does all "
                             "in the main process (default: one per CPU core, at most 8; 0 for up to 64 files)")
    parser.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                        help="compute threads per process (default: 1; the worker processes are the parallelism)")
    parser.add_argument("-t", "--threshold", type=_probability, default=None, metavar="P",
                        help=f"detection threshold for long recordings (default: {defaults.threshold})")
    parser.add_argument("--hop", type=_positive_float, default=0.1, metavar="SECONDS", dest="hop_seconds",
                        help="sliding-window hop for long recordings (default: 0.1)")
    parser.add_argument("--clip-max", type=_non_negative_float, default=CLIP_MAX_SECONDS, metavar="SECONDS",
                        dest="clip_max_seconds",
                        help="recordings up to this long hold one word: their loudest one-second window gets "
                             f"one label like a clip; longer ones are scanned (default: {CLIP_MAX_SECONDS:g}; "
                             "0 scans everything longer than a clip)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--shard", type=_shard_arg, default=None, metavar="K/N",
                        help="classify only the K-th of N contiguous blocks of the sorted file list "
                             "(shards 1..N concatenated give the whole output)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``speechrnn classify`` from parsed arguments; returns the exit status."""
    return run_classify(
        paths=args.paths,
        recursive=args.recursive,
        model=args.model,
        device=args.device,
        backend=args.backend,
        fmt=args.fmt,
        output=args.output,
        top_k=args.top_k,
        batch_size=args.batch_size,
        workers=args.workers,
        threshold=args.threshold,
        hop_seconds=args.hop_seconds,
        quiet=args.quiet,
        shard=args.shard,
        threads=args.threads,
        clip_max_seconds=args.clip_max_seconds,
    )


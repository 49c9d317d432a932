"""The app's background work: live listening, model loading, file classification, recording.

Threading rules of the app:

- PortAudio's callback (inside :class:`speechrnn.microphone.Microphone`) only copies blocks into a
  bounded queue.
- :class:`ListenWorker` runs on its own :class:`QThread`: it reads blocks from an
  :class:`~speechrnn.microphone.AudioSource` (``read`` with a short timeout, so the stop flag is
  checked several times a second), feeds them to a
  :class:`~speechrnn.streaming.StreamingRecognizer` and emits immutable :class:`LiveUpdate`
  objects (holding the frozen ``StreamStep`` dataclasses) through a queued signal.
- One-shot jobs (loading a model, classifying files, recording a clip) run as :class:`TaskWorker`
  on their own threads, reporting progress, items and the result through signals. A cancelled job
  raises :class:`TaskCancelled` at its next check (long jobs check often, e.g. every few seconds of
  a long recording being scanned), so stopping one is prompt and its thread can always be joined.
- The GUI thread never waits on audio, torch or disk: it stores what the signals carry and
  repaints from a timer.

Signals are only ever connected to methods of QObjects living on the GUI thread, so Qt delivers
them there (queued).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

if TYPE_CHECKING:
    from speechrnn.classify import FileRecord
    from speechrnn.decisions import DecisionConfig
    from speechrnn.inference import Classifier
    from speechrnn.microphone import AudioSource
    from speechrnn.onnx_classifier import OnnxClassifier
    from speechrnn.streaming import StreamingRecognizer, StreamStep

#: ``source_factory(device, sample_rate)``: opens the audio source to listen to. ``device`` is
#: what :func:`speechrnn.microphone.find_input` accepts (None = system default).
SourceFactory = Callable[[str | int | None, int], "AudioSource"]
#: files per model batch when classifying files (records arrive, and progress moves, per batch)
_CLASSIFY_BATCH = 16


def microphone_factory(device: str | int | None, sample_rate: int) -> AudioSource:
    """The app's default audio source: a :class:`~speechrnn.microphone.Microphone`.

    Parameters
    ----------
    device : str, int or None
        Input device name or index; None is the system default.
    sample_rate : int
        Rate the blocks are delivered at, Hz (the model's rate).

    Returns
    -------
    Microphone
    """
    from speechrnn.microphone import Microphone

    return Microphone(device, sample_rate=sample_rate)


# ---------------------------------------------------------------------------------- live listening


@dataclass(frozen=True)
class LiveUpdate:
    """What one batch of audio produced, sent from the listening thread to the window.

    Parameters
    ----------
    labels : tuple of str
        The class names the probabilities are aligned with.
    steps : tuple of StreamStep
        The model steps completed by the batch, in time order (frozen, read-only arrays).
    dropped_blocks : int
        Audio blocks the source dropped so far (reader too slow).
    overflows : int
        Input overflows the device reported so far.
    """

    labels: tuple[str, ...]
    steps: tuple[StreamStep, ...]
    dropped_blocks: int
    overflows: int


@dataclass(frozen=True)
class SourceInfo:
    """The audio source the listening thread opened: its name, delivered rate and the device's own rate (Hz)."""

    name: str
    sample_rate: int
    native_rate: int | None = None  # what the device records at (resampled to sample_rate); None: not a device


class ListenWorker(QObject):
    """Reads an audio source and runs the streaming recognizer, on its own thread.

    Parameters
    ----------
    source_factory : callable
        ``source_factory(device, sample_rate) -> AudioSource``; called on the worker thread.
    device : str, int or None
        Passed to ``source_factory``.
    classifier : Classifier or OnnxClassifier
        The loaded model.
    decision : DecisionConfig
        Threshold and smoothing.
    hop_seconds : float
        Time between model evaluations, seconds.
    read_timeout : float
        Longest wait for audio before the stop flag is checked again, seconds.

    Signals
    -------
    opened(SourceInfo)
        The source started.
    updated(LiveUpdate)
        Model steps; emitted only for reads that completed at least one step.
    recorded(np.ndarray)
        A clip requested with :meth:`request_recording`, float32 at the model's rate.
    failed(str)
        A one-line reason the source or the model failed; listening ends.
    finished(str)
        Listening ended: ``"stopped"``, ``"end of input"`` or ``"error"``.
    """

    opened = Signal(object)
    updated = Signal(object)
    recorded = Signal(object)
    failed = Signal(str)
    finished = Signal(str)

    def __init__(self, *, source_factory: SourceFactory, device: str | int | None,
                 classifier: Classifier | OnnxClassifier,
                 decision: DecisionConfig, hop_seconds: float = 0.1, read_timeout: float = 0.05) -> None:
        super().__init__()
        self._factory = source_factory
        self._device = device
        self._classifier = classifier
        self._decision = decision
        self._hop_seconds = hop_seconds
        self._read_timeout = read_timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending_decision: DecisionConfig | None = None
        self._pending_classifier: Classifier | OnnxClassifier | None = None
        self._record_seconds: float | None = None

    def request_stop(self) -> None:
        """Ask the loop to end; it does within about ``read_timeout`` plus one model step."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`request_stop` was called."""
        return self._stop.is_set()

    def set_decision(self, decision: DecisionConfig) -> None:
        """Use new threshold/smoothing settings from the next block on (thread-safe)."""
        with self._lock:
            self._pending_decision = decision

    def set_classifier(self, classifier: Classifier | OnnxClassifier) -> None:
        """Switch to another loaded model from the next block on (thread-safe)."""
        with self._lock:
            self._pending_classifier = classifier

    def request_recording(self, seconds: float) -> None:
        """Capture the next ``seconds`` of the input and emit it through :attr:`recorded` (thread-safe)."""
        with self._lock:
            self._record_seconds = float(seconds)

    def _recognizer(self, classifier: Classifier | OnnxClassifier, decision: DecisionConfig) -> StreamingRecognizer:
        """A streaming recognizer for ``classifier``, set up on the calling (listening) thread."""
        from speechrnn.streaming import StreamingRecognizer

        if getattr(classifier.device, "type", None) == "cpu":  # PyTorch on the CPU (OnnxClassifier: threads set)
            import torch

            # One small model call per hop, as in `speechrnn listen`. Set here: the thread count of
            # torch's OpenMP regions belongs to the calling thread, and with two threads the features
            # of a hop waited for a core the GUI thread was painting on (3x slower).
            torch.set_num_threads(1)
        return StreamingRecognizer(classifier, hop_seconds=self._hop_seconds, decision=decision)

    @Slot()
    def run(self) -> None:
        """The listening loop (runs on the worker thread until stopped, finished or failed)."""
        from speechrnn.errors import DeviceError, SpeechRNNError

        reason = "stopped"
        source = None
        try:
            classifier = self._classifier
            rate = classifier.feature_config.sample_rate
            recognizer = self._recognizer(classifier, self._decision)
            source = self._factory(self._device, rate)
            if int(source.sample_rate) != rate:
                raise SpeechRNNError(f"{source.name} delivers {source.sample_rate} Hz, the model needs {rate} Hz")
            source.start()
            native = getattr(source, "native_rate", None)
            self.opened.emit(SourceInfo(name=str(source.name), sample_rate=int(source.sample_rate),
                                        native_rate=None if native is None else int(native)))
            recording: list[np.ndarray] = []
            record_samples = 0
            while not self._stop.is_set():
                with self._lock:
                    decision, self._pending_decision = self._pending_decision, None
                    new_classifier, self._pending_classifier = self._pending_classifier, None
                    record_seconds, self._record_seconds = self._record_seconds, None
                if new_classifier is not None:
                    recognizer = self._recognizer(new_classifier, decision or recognizer.decision)
                elif decision is not None:
                    recognizer.set_decision(decision)
                if record_seconds is not None:
                    recording, record_samples = [], round(record_seconds * rate)
                block = source.read(timeout=self._read_timeout)
                if block is None:
                    if source.error:  # a source that reports its failure instead of raising it
                        raise DeviceError(source.error)
                    if getattr(source, "finished", False):
                        reason = "end of input"
                        break
                    continue
                if record_samples > 0:
                    recording.append(block)
                    if sum(b.shape[0] for b in recording) >= record_samples:
                        self.recorded.emit(np.concatenate(recording)[:record_samples].copy())
                        recording, record_samples = [], 0
                steps = recognizer.push_steps(block)
                if steps:
                    self.updated.emit(LiveUpdate(
                        labels=recognizer.labels,
                        steps=tuple(steps),
                        dropped_blocks=int(source.dropped_blocks),
                        overflows=int(source.overflows),
                    ))
        except SpeechRNNError as exc:  # DeviceError, AudioError: the one-line message is for the user
            reason = "error"
            self.failed.emit(str(exc))
        except (RuntimeError, ValueError, OSError) as exc:  # torch or device trouble: report, do not crash
            reason = "error"
            self.failed.emit(f"listening stopped: {type(exc).__name__}: {exc}")
        finally:
            if source is not None:
                try:
                    source.stop()
                except (OSError, RuntimeError) as exc:  # the device may already be gone
                    self.failed.emit(f"could not close the audio input cleanly: {exc}")
            _return_to_main_thread(self)
            self.finished.emit(reason)


# ---------------------------------------------------------------------------------- one-shot tasks


class TaskCancelled(Exception):
    """Raised inside a task when it was asked to stop (:meth:`TaskContext.raise_if_cancelled`).

    Deliberately not an ``OSError``/``RuntimeError``/``ValueError``: library code that turns those
    into per-file error records lets it through, so a cancelled scan never shows as a file error.
    """


@dataclass(frozen=True)
class ScanProgress:
    """How far the scan of a long recording has got (sent while file classification runs).

    Parameters
    ----------
    path : str
        The file being scanned.
    seconds : float
        Audio scanned so far, seconds.
    """

    path: str
    seconds: float


class TaskContext:
    """What a task function receives: progress reporting, item streaming and cancellation."""

    def __init__(self, worker: TaskWorker) -> None:
        self._worker = worker

    @property
    def cancelled(self) -> bool:
        """Whether the user (or the window closing) asked the task to stop."""
        return self._worker.cancel_requested

    def progress(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` units finished."""
        self._worker.progress.emit(int(done), int(total))

    def item(self, value: object) -> None:
        """Hand one partial result to the GUI as soon as it exists."""
        self._worker.item.emit(value)

    def status(self, value: object) -> None:
        """Report where the task is within its current unit of work (an immutable value)."""
        self._worker.status.emit(value)

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelled` when the task was asked to stop.

        Raises
        ------
        TaskCancelled
        """
        if self._worker.cancel_requested:
            raise TaskCancelled(f"{self._worker.name} cancelled")


class TaskWorker(QObject):
    """Runs ``function(context)`` once on a worker thread.

    Parameters
    ----------
    function : callable
        ``function(TaskContext) -> result``; raise :class:`speechrnn.errors.SpeechRNNError` (or
        ``OSError``/``ValueError``/``RuntimeError``) to fail with a message, or
        :class:`TaskCancelled` when it stops because it was asked to.
    name : str
        What the task does, for messages ("loading model", ...).

    Signals
    -------
    progress(int, int), item(object), status(object), succeeded(object), failed(str), cancelled(), finished()
        ``cancelled`` replaces ``succeeded``/``failed`` when the function raised :class:`TaskCancelled`;
        ``finished`` always comes last.
    """

    progress = Signal(int, int)
    item = Signal(object)
    status = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, function: Callable[[TaskContext], Any], *, name: str) -> None:
        super().__init__()
        self.name = name
        self._function = function
        self._cancel = threading.Event()

    def request_stop(self) -> None:
        """Ask the task to stop at its next check."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        """Whether :meth:`request_stop` was called."""
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        """Run the function and report its outcome."""
        from speechrnn.errors import SpeechRNNError

        try:
            result = self._function(TaskContext(self))
        except TaskCancelled:
            self.cancelled.emit()
        except SpeechRNNError as exc:
            self.failed.emit(str(exc))
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:  # shown to the user, never lost
            self.failed.emit(f"{self.name} failed: {type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(result)
        finally:
            _return_to_main_thread(self)
            self.finished.emit()


def _return_to_main_thread(worker: QObject) -> None:
    """Hand a worker whose loop has ended back to the GUI thread, so it can be deleted there."""
    app = QCoreApplication.instance()
    if app is not None:
        worker.moveToThread(app.thread())


class WorkerThread(QObject):
    """A worker object moved onto its own QThread; stopped and joined.

    A QThread destroyed while it runs aborts the process, so an owner never drops one that has
    not finished: :meth:`stop` without a timeout waits until it has.

    Parameters
    ----------
    worker : ListenWorker or TaskWorker
        Must have a ``run`` slot, a ``finished`` signal and ``request_stop()``.
    parent : QObject, optional

    Signals
    -------
    done()
        The thread has finished (emitted on the GUI thread).
    """

    done = Signal()

    def __init__(self, worker: QObject, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName(type(worker).__name__)
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # direct: the worker's thread ends its own event loop when the work is done, so join() from
        # the GUI thread returns then (a queued quit would wait for the blocked GUI thread's event loop)
        worker.finished.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        self.thread.finished.connect(self._on_thread_finished)

    def start(self) -> None:
        """Start the thread (the worker's ``run`` begins on it)."""
        self.thread.start()

    def is_running(self) -> bool:
        """Whether the thread is still running."""
        return self.thread.isRunning()

    def request_stop(self) -> None:
        """Ask the worker to stop, without waiting."""
        self.worker.request_stop()
        self.thread.quit()

    def stop(self, *, timeout_ms: int | None = None) -> bool:
        """Ask the worker to stop and wait for its thread.

        Parameters
        ----------
        timeout_ms : int, optional
            Longest wait, milliseconds; None waits until the thread has finished.

        Returns
        -------
        bool
            True when the thread has finished.
        """
        self.request_stop()
        return self.join(timeout_ms=timeout_ms)

    def join(self, *, timeout_ms: int | None = 1000) -> bool:
        """Wait until the thread has completely exited (True) or ``timeout_ms`` passed (False).

        ``QThread.finished`` is emitted just *before* the thread exits; a QThread must not be
        destroyed until it has, so owners join before dropping it. None waits without a limit.
        """
        if timeout_ms is None:
            return bool(self.thread.wait())
        return bool(self.thread.wait(timeout_ms))

    @Slot()
    def _on_thread_finished(self) -> None:
        self.done.emit()


# ---------------------------------------------------------------------------------- model loading


@dataclass(frozen=True)
class LoadedModel:
    """A model file loaded on a worker thread.

    Parameters
    ----------
    path : Path
    classifier : Classifier or OnnxClassifier
    device : str
        ``cpu`` or ``cuda``: where the model runs.
    """

    path: Path
    classifier: Classifier | OnnxClassifier
    device: str

    @property
    def compute_text(self) -> str:
        """Where and how the model runs, for display: ``CPU``, ``CPU (int8)`` or ``CUDA``."""
        return self.device.upper() + (" (int8)" if self.classifier.backend == "int8" else "")


def load_model(path: str | os.PathLike[str], *, device: str) -> LoadedModel:
    """Load a model file for the app (runs on a worker thread).

    As ``speechrnn classify`` does (:func:`speechrnn.onnx_classifier.load_classifier`): on the CPU,
    from the model file's cached ONNX export without importing PyTorch, or the first time through
    PyTorch, which exports, checks and caches it; on a GPU, with PyTorch.

    Raises
    ------
    CheckpointError
        Bad file (message names it and the problem).
    DeviceError
        ``cuda`` asked for where there is none.
    """
    from speechrnn.onnx_classifier import load_classifier

    classifier = load_classifier(path, device=device)
    where = classifier.device if isinstance(classifier.device, str) else classifier.device.type
    return LoadedModel(path=Path(path), classifier=classifier, device=where)


def summarize_model(classifier: Classifier | OnnxClassifier) -> dict[str, str]:
    """Human-readable facts about a loaded model, for the Model panel.

    Returns
    -------
    dict of str to str
        ``labels``, ``accuracy`` (the recorded accuracy metrics, test first, or "not recorded"),
        ``architecture``, ``parameters``, ``features`` and ``trained on`` where known.
    """
    summary = classifier.summary
    config = classifier.model_config
    features = classifier.feature_config
    accuracies = recorded_accuracies(summary)
    facts = {
        "labels": ", ".join(classifier.labels),
        "accuracy": ", ".join(f"{name} {value:.1%}" for name, value in accuracies.items())
        if accuracies else "not recorded in the model file",
        "architecture": (f"{config.cell.upper()} {config.num_layers}×{config.hidden_size}"
                         f"{' bidirectional' if config.bidirectional else ''}") if config else "not recorded",
        "parameters": f"{count:,}" if (count := classifier.parameter_count) is not None else "not recorded",
        "features": (f"{features.n_mels} log-mel bands, {features.sample_rate} Hz, "
                     f"{features.clip_seconds:g} s clips"),
    }
    data = summary.get("data")
    trained_on = [str(v) for v in (summary.get("dataset") or summary.get("task"),) if v]
    if isinstance(data, str) and data:
        trained_on.append(Path(data).name)
    elif isinstance(data, dict) and data.get("name"):
        trained_on.append(str(data["name"]))
    if summary.get("epochs"):
        trained_on.append(f"{summary['epochs']} epochs")
    if trained_on:
        facts["trained on"] = ", ".join(trained_on)
    return facts


def recorded_accuracies(summary: Any) -> dict[str, float]:
    """The accuracy metrics a model file's training summary records, one per kind, test first.

    Every number in [0, 1] whose key contains "acc" counts, at any depth; the same metric stored
    under several names (``test_accuracy``, ``metrics.test_accuracy``, ``testing.accuracy``) is
    shown once, as ``test``.

    Parameters
    ----------
    summary : dict
        ``Classifier.summary``.

    Returns
    -------
    dict of str to float
        ``{"test": 0.949, "validation": 0.946, "test command": 0.943, ...}``.
    """
    found: dict[str, float] = {}
    for path, value in _find_metrics(summary, "acc"):
        parts = [p for p in path.lower().replace("_", " ").split(".") if p != "metrics"]
        words = " ".join(parts).replace("accuracy", "").replace("acc", "").split()
        words = [{"val": "validation", "valid": "validation", "testing": "test"}.get(w, w) for w in words]
        found.setdefault(" ".join(words) or "accuracy", value)
    order = {"test": 0, "validation": 1}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], 2)))


def _find_metrics(tree: Any, word: str, prefix: str = "") -> Iterator[tuple[str, float]]:
    """``(dotted.key.path, value)`` for every number in [0, 1] in a nested dict whose key contains ``word``."""
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _find_metrics(value, word, prefix=f"{name}.")
        elif word in str(key).lower() and isinstance(value, (int, float)) and not isinstance(value, bool):
            if 0.0 <= float(value) <= 1.0:
                yield name, float(value)


# ---------------------------------------------------------------------------------- file classification


def expand_paths(paths: Iterable[str | os.PathLike[str]],
                 on_error: Callable[[str, str], None] | None = None) -> list[str]:
    """Files to classify: folders are searched recursively for audio files; files are kept as named.

    Uses :func:`speechrnn.classify.collect_audio_files` (sorted, hidden files skipped).

    Parameters
    ----------
    paths : iterable of path-like
    on_error : callable, optional
        Called with ``(folder, reason)`` for each folder that cannot be listed.

    Raises
    ------
    speechrnn.classify.UsageError
        Nothing to classify (the message names the folders searched).
    """
    from speechrnn.classify import collect_audio_files

    return collect_audio_files(paths, recursive=True, on_error=on_error)


def classify_files(paths: Sequence[str | os.PathLike[str]], classifier: Classifier | OnnxClassifier, *,
                   context: TaskContext | None = None, top_k: int = 3,
                   decision: DecisionConfig | None = None) -> list[FileRecord]:
    """Classify audio files with the library's batch classification (runs on a worker thread).

    Clips get one prediction, long recordings are scanned for commands with ``decision`` (the
    same logic as live listening), unreadable files get a record with ``error`` set; see
    :func:`speechrnn.classify.iter_classify`. Decoding happens on this thread (no worker
    processes: forking a process that runs Qt threads is unsafe).

    Parameters
    ----------
    paths : sequence of path-like
        Files (already expanded from folders, e.g. by :func:`expand_paths`).
    classifier : Classifier or OnnxClassifier
    context : TaskContext, optional
        Progress, per-file records (:meth:`TaskContext.item`), how far a long recording's scan has
        got (:class:`ScanProgress` through :meth:`TaskContext.status`) and cancellation, checked
        after each file and every few seconds of audio while a long recording is scanned.
    top_k : int
    decision : DecisionConfig, optional
        Threshold and smoothing for long files.

    Returns
    -------
    list of FileRecord
        In the order of ``paths``; when cancelled, the files finished before (a file whose scan
        was interrupted has no record).
    """
    from speechrnn.classify import iter_classify

    files = [os.fspath(p) for p in paths]
    results: list[FileRecord] = []
    on_scan = None
    if context is not None:
        context.progress(0, len(files))

        def on_scan(path: str, seconds: float) -> None:  # called on this thread, inside the scan
            context.raise_if_cancelled()
            context.status(ScanProgress(path=path, seconds=float(seconds)))

    try:
        with closing(iter_classify(files, classifier=classifier, top_k=top_k, decision=decision, workers=0,
                                   batch_size=_CLASSIFY_BATCH, on_scan=on_scan)) as records:
            for record in records:
                results.append(record)
                if context is not None:
                    context.item(record)
                    context.progress(len(results), len(files))
                    if context.cancelled:
                        break
    except TaskCancelled:
        pass  # raised in on_scan: the records so far stand
    return results


# ---------------------------------------------------------------------------------- recording


def record_clip(source: AudioSource, seconds: float, *, context: TaskContext | None = None,
                timeout: float = 0.1) -> np.ndarray:
    """Record ``seconds`` of audio from a source (runs on a worker thread).

    Parameters
    ----------
    source : AudioSource
        Not yet started; it is started and stopped here.
    seconds : float
    context : TaskContext, optional
        Cancellation and progress (in samples).
    timeout : float
        Read timeout, seconds.

    Returns
    -------
    np.ndarray, shape (round(seconds * source.sample_rate),), float32

    Raises
    ------
    DeviceError
        The input failed, or delivered nothing for several seconds.
    TaskCancelled
        ``context`` was cancelled (the source is stopped first).
    """
    from speechrnn.errors import DeviceError

    wanted = round(seconds * source.sample_rate)
    blocks: list[np.ndarray] = []
    have = 0
    last_audio = time.monotonic()
    source.start()
    try:
        while have < wanted:
            if context is not None:
                context.raise_if_cancelled()
            block = source.read(timeout=timeout)
            if block is None:
                if getattr(source, "finished", False):
                    break
                if time.monotonic() - last_audio > 3.0:
                    raise DeviceError(f"{source.name} delivered no audio for 3 s")
                continue
            last_audio = time.monotonic()
            blocks.append(block)
            have += block.shape[0]
            if context is not None:
                context.progress(min(have, wanted), wanted)
    finally:
        source.stop()
    audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    audio = audio[:wanted]
    if audio.shape[0] < wanted:
        audio = np.pad(audio, (0, wanted - audio.shape[0]))
    return audio.astype(np.float32, copy=False)


def save_wav(path: str | os.PathLike[str], audio: np.ndarray, *, sample_rate: int) -> Path:
    """Write mono float audio as 16-bit PCM WAV, creating the folder.

    Raises
    ------
    OSError
        The file cannot be written.
    """
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(path, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise OSError(f"{path}: cannot write the recording ({exc})") from None
    return path

"""Audio sources for live recognition: a microphone, or a file played as if it were one.

Both implement :class:`AudioSource`: ``start()``, ``read(timeout)`` returning the next float32
mono block at ``sample_rate`` (or None on timeout), ``stop()``, and counters of what was lost.

:class:`Microphone` opens a PortAudio input (through :mod:`sounddevice`, imported only here and
only inside functions) at the device's native rate. Its callback, which runs on PortAudio's audio
thread, does nothing but copy the block into a bounded queue; when the queue is full the oldest
block is dropped (so recognition stays current) and counted. :meth:`Microphone.read` mixes to
mono and resamples to the model's rate with :class:`soxr.ResampleStream`. A missing device, a
device that refuses its rate, or one that disappears while recording is reported as
:class:`speechrnn.errors.DeviceError` with a one-line reason; ``read`` never blocks longer than
its timeout.

:class:`FileSource` delivers an audio file (or array) through the same interface, paced by the
wall clock (``realtime=True``) or as fast as it is read, for tests, demos and benchmarks.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from speechrnn.errors import DeviceError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType, TracebackType

__all__ = ["AudioSource", "FileSource", "InputDevice", "Microphone", "find_input", "list_inputs"]


@dataclass(frozen=True)
class InputDevice:
    """An audio input device as PortAudio reports it.

    Parameters
    ----------
    index : int
        PortAudio device index (what ``--input`` accepts).
    name : str
    channels : int
        Maximum input channels.
    default_samplerate : float
        The device's native rate in Hz.
    is_default : bool
        Whether it is the system's default input.
    """

    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool

    def describe(self) -> str:
        """One line for listings: ``"3  pulse  (32 ch, 44100 Hz) [default]"``."""
        mark = "  [default]" if self.is_default else ""
        return f"{self.index:>3}  {self.name}  ({self.channels} ch, {self.default_samplerate:g} Hz){mark}"


#: Longest wait, seconds, for PortAudio to start or re-scan: it asks the sound server for its devices,
#: blocking in C code (where Ctrl-C cannot reach) for as long as a frozen server does not answer.
START_TIMEOUT_SECONDS = 10.0


def _import_sounddevice() -> ModuleType:
    import sounddevice

    return sounddevice


def _bounded(call: Any, *, what: str) -> Any:
    """``call()`` on a helper thread, waited for at most :data:`START_TIMEOUT_SECONDS`.

    Raises DeviceError when it does not return in time (the helper thread is left to finish or
    hang on its own); its own exception when it raises.
    """
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller below
            outcome.append((False, exc))

    # sounddevice points file descriptor 2 at /dev/null while PortAudio starts (to hide ALSA's
    # chatter) and restores it after: a start that never ends would silence every later error
    try:
        stderr = os.dup(2)
    except OSError:
        stderr = None
    helper = threading.Thread(target=run, name=f"portaudio-{what}", daemon=True)
    helper.start()
    try:
        helper.join(START_TIMEOUT_SECONDS)
        if not outcome and stderr is not None:
            os.dup2(stderr, 2)
    finally:
        if stderr is not None:
            os.close(stderr)
    if not outcome:
        raise DeviceError(
            f"audio input is unavailable: the sound system did not answer within {START_TIMEOUT_SECONDS:g} s "
            f"({what}); is the sound server (PulseAudio, PipeWire) frozen?"
        )
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _sounddevice(*, refresh: bool = False) -> ModuleType:
    """Import :mod:`sounddevice`, turning a missing PortAudio into :class:`DeviceError`.

    ``refresh`` re-initialises PortAudio so that devices that appeared since the first import
    (a sound server started later) are seen; it must not be used while a stream is open. Both
    wait at most :data:`START_TIMEOUT_SECONDS` for the sound server.
    """
    try:
        sd = _bounded(_import_sounddevice, what="starting PortAudio")
    except (OSError, ImportError) as exc:
        raise DeviceError(
            f"audio input is unavailable: PortAudio could not be loaded ({exc}); "
            "install libportaudio2 (Debian/Ubuntu) or portaudio"
        ) from None
    if refresh:

        def restart() -> None:
            sd._terminate()
            sd._initialize()

        try:
            _bounded(restart, what="re-scanning the devices")
        except sd.PortAudioError as exc:
            raise DeviceError(f"audio input is unavailable: PortAudio failed to start ({exc})") from None
    return sd


def _default_input_index(sd: ModuleType) -> int:
    try:
        index = sd.default.device[0]
    except (TypeError, IndexError):
        return -1
    if isinstance(index, str):
        return -1
    return int(index) if index is not None else -1


def list_inputs(*, refresh: bool = False) -> list[InputDevice]:
    """Every audio input device, in PortAudio's order.

    Parameters
    ----------
    refresh : bool
        Re-scan the system's devices (re-initialises PortAudio; do not use while recording).

    Returns
    -------
    list of InputDevice
        Empty when the machine has no input device.

    Raises
    ------
    DeviceError
        PortAudio (libportaudio2) is missing or cannot start.
    """
    sd = _sounddevice(refresh=refresh)
    try:
        devices = sd.query_devices()
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list audio devices: {exc}") from None
    default = _default_input_index(sd)
    found = []
    for index, info in enumerate(devices):
        channels = int(info.get("max_input_channels", 0))
        if channels > 0:
            found.append(
                InputDevice(
                    index=index,
                    name=str(info["name"]),
                    channels=channels,
                    default_samplerate=float(info["default_samplerate"]),
                    is_default=index == default,
                )
            )
    return found


def find_input(device: str | int | None = None, *, refresh: bool = False) -> InputDevice:
    """Pick an input device by index, by name, or the system default.

    Parameters
    ----------
    device : str, int or None
        None: the default input (or the first input when there is no default). An int, or a
        string of digits: a device index. Another string: an exact name, else a unique-first
        case-insensitive substring of a name.
    refresh : bool
        Re-scan the system's devices first (see :func:`list_inputs`).

    Returns
    -------
    InputDevice

    Raises
    ------
    DeviceError
        No input device at all, no device matching ``device``, or the index is not an input.
    """
    inputs = list_inputs(refresh=refresh)
    if not inputs:
        raise DeviceError("no audio input device found (is a microphone connected and a sound server running?)")
    available = "; ".join(f"{d.index}: {d.name}" for d in inputs)
    if device is None:
        for candidate in inputs:
            if candidate.is_default:
                return candidate
        return inputs[0]
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device.strip())
    if isinstance(device, int):
        for candidate in inputs:
            if candidate.index == device:
                return candidate
        raise DeviceError(f"no audio input device with index {device} (inputs: {available})")
    wanted = device.strip().lower()
    if not wanted:
        raise DeviceError(f"empty input device name (inputs: {available})")
    for candidate in inputs:
        if candidate.name.lower() == wanted:
            return candidate
    for candidate in inputs:
        if wanted in candidate.name.lower():
            return candidate
    raise DeviceError(f"no audio input device matches {device!r} (inputs: {available})")


@runtime_checkable
class AudioSource(Protocol):
    """What the live engine and the app read audio from.

    Attributes
    ----------
    name : str
        Human-readable source name (device or file name).
    sample_rate : int
        Rate, in Hz, of the blocks :meth:`read` returns.
    dropped_blocks : int
        Blocks lost because the reader fell behind (the queue was full).
    overflows : int
        Input overflows reported by the device (audio it lost before we saw it).
    error : str or None
        Why the source stopped on its own, once it has.
    """

    name: str
    sample_rate: int
    dropped_blocks: int
    overflows: int
    error: str | None

    def start(self) -> None:
        """Begin delivering audio."""

    def stop(self) -> None:
        """Stop delivering audio and release the device (idempotent)."""

    def read(self, timeout: float) -> np.ndarray | None:
        """The next block, shape ``(n,)`` float32 at :attr:`sample_rate`; None after ``timeout`` seconds."""

    def __enter__(self) -> AudioSource:
        """Start; return self."""

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop."""


class _SourceBase:
    """Context-manager plumbing shared by the sources."""

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Microphone(_SourceBase):
    """Live audio from an input device, resampled to ``sample_rate`` and mixed to mono.

    The device is resolved (and a missing one reported) when the object is made; it is opened
    by :meth:`start`.

    Parameters
    ----------
    device : str, int or None
        Device name (substring), index, or None for the system default; see :func:`find_input`.
    sample_rate : int
        Rate of the blocks :meth:`read` returns, in Hz (the model's rate).
    block_seconds : float
        Length of the blocks the device delivers, in seconds.
    max_queue_seconds : float
        How much audio may wait for :meth:`read` before blocks are dropped (and counted).

    Raises
    ------
    DeviceError
        PortAudio is missing, or there is no such input device.
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        sample_rate: int = 16000,
        block_seconds: float = 0.02,
        max_queue_seconds: float = 2.0,
    ) -> None:
        if sample_rate <= 0 or not block_seconds > 0 or not max_queue_seconds > 0:
            raise ValueError("sample_rate, block_seconds and max_queue_seconds must be positive")
        self.device = find_input(device)
        self.name: str = self.device.name
        self.sample_rate: int = int(sample_rate)
        self.native_rate: int = round(self.device.default_samplerate)
        self.block_seconds = float(block_seconds)
        self.dropped_blocks: int = 0
        self.overflows: int = 0
        self.error: str | None = None
        self._blocksize = max(1, round(block_seconds * self.native_rate))
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(1, round(max_queue_seconds / block_seconds)))
        self._finished = threading.Event()
        self._stream: Any = None
        self._resampler: Any = None
        self._stopping = False
        self.channels = 1

    # the PortAudio thread calls these two; they only copy and count
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        block = indata.copy()
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            # the reader fell behind: drop the oldest block, so what is recognized stays current
            self.dropped_blocks += 1
            try:
                self._queue.get_nowait()
                self._queue.put_nowait(block)
            except (queue.Empty, queue.Full):
                pass

    def _finished_callback(self) -> None:
        self._finished.set()

    @property
    def running(self) -> bool:
        """Whether the device is open and delivering audio."""
        return self._stream is not None and not self._finished.is_set()

    def start(self) -> None:
        """Open the device at its native rate and start recording.

        Raises
        ------
        DeviceError
            The device cannot be opened (busy, gone, or it refuses its rate/channels).
        """
        if self._stream is not None:
            return
        sd = _sounddevice()
        self._finished.clear()
        self._stopping = False
        self.error = None
        last_error: Exception | None = None
        for channels in dict.fromkeys((1, min(2, self.device.channels))):
            try:
                stream = sd.InputStream(
                    device=self.device.index,
                    samplerate=self.native_rate,
                    channels=channels,
                    dtype="float32",
                    blocksize=self._blocksize,
                    callback=self._callback,
                    finished_callback=self._finished_callback,
                )
            except (sd.PortAudioError, ValueError) as exc:
                last_error = exc
                continue
            try:
                stream.start()
            except sd.PortAudioError as exc:
                stream.close(ignore_errors=True)
                last_error = exc
                continue
            self._stream, self.channels = stream, channels
            break
        if self._stream is None:
            raise DeviceError(
                f"cannot open input device {self.name!r} (index {self.device.index}) at {self.native_rate} Hz: "
                f"{_one_line(last_error)}"
            )
        if self.native_rate != self.sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(self.native_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        else:
            self._resampler = None

    def stop(self) -> None:
        """Stop recording and close the device; safe to call twice or after an error."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self._stopping = True
        try:
            stream.stop(ignore_errors=True)
        finally:
            stream.close(ignore_errors=True)

    def read(self, timeout: float) -> np.ndarray | None:
        """The next block of audio, waiting at most ``timeout`` seconds.

        Parameters
        ----------
        timeout : float
            Seconds to wait for audio.

        Returns
        -------
        np.ndarray, shape (n,), float32, or None
            Mono audio at :attr:`sample_rate`; None when nothing arrived in time (or after
            :meth:`stop`).

        Raises
        ------
        DeviceError
            The device stopped by itself (unplugged, sound server gone); :attr:`error` says why.
        """
        if self._stream is None:
            if self.error:
                raise DeviceError(self.error)
            return None
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            try:
                block = self._queue.get(timeout=max(0.0, min(remaining, 0.05)))
            except queue.Empty:
                self._check_alive()
                if time.monotonic() >= deadline:
                    return None
                continue
            mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
            if self._resampler is not None:
                mono = self._resampler.resample_chunk(np.ascontiguousarray(mono))
            if mono.size:
                return np.ascontiguousarray(mono, dtype=np.float32)
            if time.monotonic() >= deadline:
                return None

    def _check_alive(self) -> None:
        """Raise DeviceError when the stream ended without :meth:`stop` being called."""
        stream = self._stream
        if stream is None or self._stopping:
            return
        if self._finished.is_set() or not stream.active:
            self.error = f"input device {self.name!r} stopped delivering audio (disconnected or sound server gone)"
            self.stop()
            self._stopping = False
            raise DeviceError(self.error)


class FileSource(_SourceBase):
    """An audio file or array delivered block by block, like a microphone.

    Parameters
    ----------
    audio : path-like or np.ndarray
        A file (read as it is played, ten seconds at a time, with
        :func:`speechrnn.audio.iter_audio_blocks`, resampled to ``sample_rate``: an hour-long file
        takes no more memory than a short one) or mono float audio already at ``sample_rate``.
    sample_rate : int
        Rate of the delivered blocks, in Hz.
    block_seconds : float
        Length of each block, in seconds.
    realtime : bool
        Pace blocks by the wall clock (block ``k`` is available ``(k + 1) * block_seconds``
        after :meth:`start`); otherwise return them as fast as they are read.
    loop : bool
        Start over at the end instead of finishing.
    tail_silence_seconds : float
        Zeros appended after the audio (so the last word can be recognized).

    Raises
    ------
    speechrnn.errors.AudioError
        The file cannot be read (corrupt data further into a file is raised by :meth:`read`).
    """

    _FILE_BLOCK_SECONDS = 10.0

    def __init__(
        self,
        audio: str | os.PathLike[str] | np.ndarray,
        *,
        sample_rate: int = 16000,
        block_seconds: float = 0.02,
        realtime: bool = True,
        loop: bool = False,
        tail_silence_seconds: float = 1.0,
    ) -> None:
        if sample_rate <= 0 or not block_seconds > 0 or tail_silence_seconds < 0:
            raise ValueError("sample_rate and block_seconds must be positive, tail_silence_seconds >= 0")
        self.sample_rate: int = int(sample_rate)
        self._tail = round(tail_silence_seconds * sample_rate)
        self._path: str | None = None
        self._pending: list[np.ndarray] = []  # decoded samples not yet delivered (file input)
        self._pending_size = 0
        if isinstance(audio, np.ndarray):
            signal = np.asarray(audio, dtype=np.float32)
            if signal.ndim != 1:
                raise ValueError(f"expected mono audio of shape (n,), got shape {signal.shape}")
            self.name = "audio array"
            self._signal = np.concatenate([signal, np.zeros(self._tail, np.float32)]) if self._tail else signal
            if self._signal.size == 0:
                raise ValueError("no audio to play")
            self._length = int(self._signal.size)
        else:
            from speechrnn.audio import audio_info

            self._path = os.fspath(audio)
            self.name = Path(audio).name
            info = audio_info(self._path)  # a missing or broken file is reported here
            self._blocks: Iterator[np.ndarray] | None = None  # opened when playing starts
            self._exhausted = False  # read to its end (not looping): not opened again until start()
            self._length = round(info.frames * sample_rate / info.sample_rate) + self._tail
            self._signal = np.zeros(0, dtype=np.float32)
        self.block_seconds = float(block_seconds)
        self.realtime = realtime
        self.loop = loop
        self.dropped_blocks: int = 0
        self.overflows: int = 0
        self.error: str | None = None
        self.finished = False
        self._block = max(1, round(block_seconds * sample_rate))
        self._position = 0  # samples delivered
        self._started: float | None = None

    @property
    def duration(self) -> float:
        """Seconds of audio one pass delivers, tail silence included (for some compressed files an estimate)."""
        return self._length / self.sample_rate

    @property
    def tail_seconds(self) -> float:
        """Seconds of silence delivered after the audio (so that the last word's decision is made)."""
        return self._tail / self.sample_rate

    def _open(self) -> Iterator[np.ndarray]:
        """The file's blocks from its start, then its tail silence."""
        from speechrnn.audio import iter_audio_blocks

        assert self._path is not None
        blocks = iter_audio_blocks(self._path, sample_rate=self.sample_rate, block_seconds=self._FILE_BLOCK_SECONDS)

        def with_tail() -> Iterator[np.ndarray]:
            yield from blocks
            if self._tail:
                yield np.zeros(self._tail, dtype=np.float32)

        return with_tail()

    def _close_file(self) -> None:
        """Close the file being read (its reader's generator closes the handle)."""
        blocks, self._blocks = self._blocks, None
        if blocks is not None:
            blocks.close()  # type: ignore[attr-defined]

    def _next_from_file(self) -> np.ndarray | None:
        """The next block of a file input (None at its end unless looping)."""
        if self._blocks is None and not self._exhausted:
            self._blocks = self._open()
        while self._blocks is not None and self._pending_size < self._block:
            chunk = next(self._blocks, None)
            if chunk is None:
                if not self.loop or self._position + self._pending_size == 0:
                    self._close_file()
                    self._exhausted = True
                    break
                self._close_file()
                self._blocks = self._open()
                continue
            self._pending.append(chunk)
            self._pending_size += chunk.size
        if self._pending_size == 0:
            return None
        joined = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        block, rest = joined[: self._block], joined[self._block :]
        self._pending, self._pending_size = ([rest] if rest.size else []), int(rest.size)
        return block

    def start(self) -> None:
        """Start (or restart) delivering from the beginning."""
        if self._path is not None:
            self._close_file()  # from the start again: reopened at the first read
            self._pending, self._pending_size, self._exhausted = [], 0, False
        self._position = 0
        self.finished = False
        self._started = time.monotonic()

    def stop(self) -> None:
        """Stop delivering (and close the file); further reads return None."""
        self._started = None
        if self._path is not None:
            self._close_file()

    def read(self, timeout: float) -> np.ndarray | None:
        """The next block; None on timeout, after :meth:`stop`, or once finished.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the next block when pacing in real time.

        Returns
        -------
        np.ndarray, shape (n,), float32, or None
        """
        if self._started is None or self.finished:
            return None
        if self.realtime:
            due = self._started + (self._position + self._block) / self.sample_rate
            wait = due - time.monotonic()
            if wait > timeout:
                time.sleep(max(0.0, timeout))
                return None
            if wait > 0:
                time.sleep(wait)
        if self._path is not None:
            block = self._next_from_file()
            if block is None:
                self.finished = True
                return None
            self._position += block.size
            return block.copy()
        start = self._position % self._signal.size if self.loop else self._position
        if start >= self._signal.size:
            self.finished = True
            return None
        block = self._signal[start : start + self._block]
        if self.loop and block.size < self._block:
            block = np.concatenate([block, self._signal[: self._block - block.size]])
        self._position += block.size
        if not self.loop and self._position >= self._signal.size:
            self.finished = True
        return block.copy()


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

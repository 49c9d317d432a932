"""Read audio files as float32 mono signals at a chosen sample rate.

Everything :mod:`soundfile` (libsndfile >= 1.1) reads — WAV with 8/16/24/32-bit integer or
float samples, FLAC, OGG/Vorbis/Opus, MP3, AIFF, AU, ... — is read directly; other formats
(M4A/AAC, WMA, WebM, ...) fall back to :func:`librosa.load`, which decodes them through
``audioread`` and ffmpeg. Channels are mixed down by their mean and the signal is resampled
with soxr's high-quality mode (``librosa.resample(..., res_type="soxr_hq")``, or
:class:`soxr.ResampleStream` for :func:`iter_audio_blocks`).

Every failure raises :class:`speechrnn.errors.AudioError`, whose one-line message names the
file and a plain reason ("file not found", "truncated or corrupt header", ...).

Importing this module is cheap: librosa and audioread are imported only when a file needs
resampling or the fallback decoder.
"""

from __future__ import annotations

import codecs
import math
import os
import re
import shutil
import stat
import sys
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from speechrnn.errors import AudioError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "audio_info", "iter_audio_blocks", "load_audio"]

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        # libsndfile
        ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".snd",
        ".caf", ".w64", ".rf64",
        # ffmpeg (through librosa/audioread)
        ".m4a", ".aac", ".wma", ".webm",
    }
)
"""Lower-case file extensions (with the dot) treated as audio when scanning folders."""

# Containers libsndfile reads itself: when it fails on one of these, the header is broken.
_NATIVE_CONTAINERS = frozenset({"WAV", "RF64", "W64", "AIFF", "AU", "FLAC", "CAF", "OGG", "MP3"})
# Extensions whose files libsndfile must recognize: unknown content there is not audio.
_NATIVE_EXTENSIONS = frozenset({".wav", ".flac", ".aiff", ".aif", ".aifc", ".au", ".snd", ".caf", ".w64"})
# A native-container file this small that libsndfile cannot open has a cut-off header.
_MIN_HEADER_BYTES = 128
_SNIFF_BYTES = 512
# libsndfile's log line for an audio chunk whose size disagrees with the file: "data : 32000
# (should be 19956)" (WAV) or "SSND : 32008 (should be 19920)" (AIFF).
_CHUNK_SIZE_LOG = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Chunk sizes from here (2 GiB less 64 KiB) up are taken for the "length unknown" placeholders of
# streamed files, not promises: ffmpeg piping a WAV writes 0xFFFFFFFF, espeak-ng 0x7FFFF000.
_PLACEHOLDER_SIZE = 0x7FFF0000
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What an audio file holds, read from its header (or probed by ffmpeg).

    Attributes
    ----------
    sample_rate : int
        Samples per second per channel, in Hz, as stored in the file.
    channels : int
        Number of channels.
    frames : int
        Samples per channel (for MP3/fallback formats an estimate from the stream length).
    duration_seconds : float
        ``frames / sample_rate``, in seconds.
    format : str
        libsndfile's major format name (``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``, ...), or
        for files decoded through the ffmpeg fallback the upper-case extension (``"M4A"``).
    """

    sample_rate: int
    channels: int
    frames: int
    duration_seconds: float
    format: str


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def load_audio(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = 16000,
    max_seconds: float | None = None,
) -> NDArray[np.float32]:
    """Read an audio file as a float32 mono signal at ``sample_rate``.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sample_rate : int, keyword-only
        Sample rate of the result, in Hz (default 16000). Files at another rate are resampled
        with soxr's high-quality mode.
    max_seconds : float or None, keyword-only
        Read at most this many seconds from the start of the file; the rest is not read.
        ``None`` (default) reads the whole file.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_samples,)``, dtype float32, nominally in [-1, 1], mono (the mean of the
        file's channels), at ``sample_rate``. ``n_samples`` is
        ``ceil(frames * sample_rate / file_rate)``, capped at ``round(max_seconds * sample_rate)``.

    Raises
    ------
    speechrnn.errors.AudioError
        The file is missing, unreadable, not audio, corrupt, empty, of an unsupported format,
        or holds NaN/infinite samples.
    ValueError
        ``sample_rate`` is not positive or ``max_seconds`` is not positive.
    """
    _check_rate(sample_rate)
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds!r}")
    name = os.fspath(path)
    try:
        handle, fd = _open_soundfile(name)
    except (RuntimeError, OSError):
        label = _diagnose(name)
        signal = _fallback_load(name, label, sample_rate=sample_rate, max_seconds=max_seconds)
        if max_seconds is not None:
            signal = signal[: max(1, round(max_seconds * sample_rate))]
        return _check_finite(name, signal)
    try:
        _check_complete(name, handle)
        file_rate = handle.samplerate
        frames = -1 if max_seconds is None else max(1, math.ceil(max_seconds * file_rate))
        try:
            data = handle.read(frames, dtype="float32", always_2d=False)
        except RuntimeError as exc:
            raise AudioError(name, _corrupt_data_reason(exc)) from None
    finally:
        handle.close()
        if fd is not None:
            os.close(fd)
    if data.ndim > 1:
        data = data.mean(axis=1, dtype=np.float32)
    if data.size == 0:
        raise AudioError(name, "no audio samples")
    _check_finite(name, data)
    if file_rate != sample_rate:
        data = _resample(data, file_rate, sample_rate)
    if max_seconds is not None:
        data = data[: max(1, round(max_seconds * sample_rate))]
    return data


def iter_audio_blocks(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = 16000,
    block_seconds: float = 10.0,
) -> Iterator[NDArray[np.float32]]:
    """Read a long audio file block by block, in bounded memory.

    The file is opened (and its problems reported) when this function is called; blocks are
    read and resampled (with :class:`soxr.ResampleStream`) as the iterator is advanced. The
    file is closed when the blocks run out, when the iterator's ``close()`` is called, or when
    the iterator is dropped (advanced or not).
    Concatenating all blocks gives the same signal as :func:`load_audio` of the whole file
    (to within float rounding). Files libsndfile cannot open are decoded whole by the ffmpeg
    fallback and then sliced.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sample_rate : int, keyword-only
        Sample rate of the blocks, in Hz (default 16000).
    block_seconds : float, keyword-only
        Length of each block, in seconds (default 10.0).

    Returns
    -------
    iterator of numpy.ndarray
        Blocks of shape ``(round(block_seconds * sample_rate),)``, dtype float32, mono; the
        last block is shorter when the file does not fill it. It has a ``close()`` method.

    Raises
    ------
    speechrnn.errors.AudioError
        As :func:`load_audio`; corrupt data or NaN/infinite samples further into the file are
        reported while iterating.
    ValueError
        ``sample_rate`` or ``block_seconds`` is not positive.
    """
    _check_rate(sample_rate)
    if not block_seconds > 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds!r}")
    block_len = max(1, round(block_seconds * sample_rate))
    name = os.fspath(path)
    try:
        handle, fd = _open_soundfile(name)
    except (RuntimeError, OSError):
        label = _diagnose(name)
        signal = _check_finite(name, _fallback_load(name, label, sample_rate=sample_rate, max_seconds=None))
        return _slice_blocks(signal, block_len)
    try:
        if handle.frames == 0:
            raise AudioError(name, "no audio samples")
        _check_complete(name, handle)
    except AudioError:
        handle.close()
        if fd is not None:
            os.close(fd)
        raise
    return _FileBlocks(name, handle, fd, sample_rate=sample_rate, block_len=block_len)


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Describe an audio file without decoding its samples.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.

    Returns
    -------
    AudioInfo
        Sample rate, channel count, length and container format. A file whose header is
        valid but holds no samples gives ``frames == 0``.

    Raises
    ------
    speechrnn.errors.AudioError
        The file is missing, unreadable, not audio, has a broken header or an unsupported
        format.
    """
    name = os.fspath(path)
    try:
        handle, fd = _open_soundfile(name)
    except (RuntimeError, OSError):
        label = _diagnose(name)
        return _fallback_info(name, label)
    try:
        rate, channels, frames, fmt = handle.samplerate, handle.channels, handle.frames, handle.format
    finally:
        handle.close()
        if fd is not None:
            os.close(fd)
    return AudioInfo(
        sample_rate=int(rate),
        channels=int(channels),
        frames=int(frames),
        duration_seconds=frames / rate if rate else 0.0,
        format=str(fmt),
    )


# --------------------------------------------------------------------------------------------
# soundfile path
# --------------------------------------------------------------------------------------------


def _check_rate(sample_rate: int) -> None:
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")


def _open_soundfile(name: str | bytes) -> tuple[sf.SoundFile, int | None]:
    """Open ``name`` with libsndfile for reading.

    On POSIX the file is opened with :func:`os.open` and handed to libsndfile as a descriptor,
    which spares soundfile's own ``os.path.isfile`` call (this is the hot path of batch
    classification). The caller closes the handle and then the descriptor.

    Raises
    ------
    OSError
        :func:`os.open` failed.
    soundfile.LibsndfileError
        libsndfile did not recognize the file (a :class:`RuntimeError`).
    """
    if sys.platform == "win32":  # CRT descriptors are not shareable with libsndfile's CRT
        return sf.SoundFile(name), None
    fd = os.open(name, _OPEN_FLAGS)
    try:
        return sf.SoundFile(fd, closefd=False), fd
    except BaseException:
        os.close(fd)
        raise


def _check_complete(name: str, handle: sf.SoundFile) -> None:
    """Raise if a WAV/AIFF/CAF file holds less audio data than its header promises (a cut-off copy).

    libsndfile reads such a file without complaint, up to where it ends, and notes the mismatch
    in its log; a streamed file whose header has a "length unknown" placeholder is not cut off.
    """
    if handle.format not in ("WAV", "WAVEX", "AIFF", "CAF"):  # W64/RF64 log their sizes otherwise
        return
    found = _CHUNK_SIZE_LOG.search(handle.extra_info)
    if found is None:
        return
    promised, present = int(found[1]), int(found[2])
    if present < promised < _PLACEHOLDER_SIZE:
        raise AudioError(name, f"truncated file (its header promises {promised} bytes of audio, {present} are there)")


def _check_finite(name: str, signal: NDArray[np.float32]) -> NDArray[np.float32]:
    """Raise if ``signal`` holds NaN or infinity.

    The sum of squares (one BLAS dot, ~2 us per second of 16 kHz audio) is finite whenever all
    samples are; only when it is not (or it overflowed) are the samples checked one by one.
    """
    energy = float(np.dot(signal, signal))
    if not math.isfinite(energy) and not bool(np.isfinite(signal).all()):
        raise AudioError(name, "contains NaN or infinite samples")
    return signal


def _resample(signal: NDArray[np.float32], file_rate: int, sample_rate: int) -> NDArray[np.float32]:
    """Resample a mono float32 signal with ``librosa.resample(res_type="soxr_hq")``."""
    import librosa  # heavy; only needed when rates differ

    out = librosa.resample(signal, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(out, dtype=np.float32)


def _target_length(n_in: int, file_rate: int, sample_rate: int) -> int:
    """Output length of ``librosa.resample`` for ``n_in`` input samples (same float math)."""
    return math.ceil(n_in * (float(sample_rate) / file_rate))


def _corrupt_data_reason(exc: RuntimeError) -> str:
    detail = str(getattr(exc, "error_string", "") or exc).strip().rstrip(".")
    if detail.lower().startswith("error"):  # libsndfile's "Error : flac decoder lost sync"
        detail = detail[len("error") :].lstrip(" :")
    return f"corrupt audio data ({_one_line(detail)})"


def _one_line(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _Release:
    """Close a soundfile handle, then the descriptor under it: once (later calls do nothing)."""

    def __init__(self, handle: sf.SoundFile, fd: int | None) -> None:
        self._handle: sf.SoundFile | None = handle
        self._fd = fd

    def __call__(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.close()
        finally:
            if self._fd is not None:
                os.close(self._fd)


class _FileBlocks(Iterator["NDArray[np.float32]"]):
    """The blocks of an open soundfile (see :func:`iter_audio_blocks`), which owns the file.

    A bare generator would leak the file when dropped or closed before its first ``next()``
    (its ``finally`` never runs): here the file is also closed by :meth:`close` and, through
    :func:`weakref.finalize`, when the iterator is garbage-collected.
    """

    def __init__(self, name: str, handle: sf.SoundFile, fd: int | None, *, sample_rate: int, block_len: int) -> None:
        release = _Release(handle, fd)
        self._blocks = _stream_blocks(name, handle, release, sample_rate=sample_rate, block_len=block_len)
        self._release = weakref.finalize(self, release)  # holds the file, not the iterator

    def __next__(self) -> NDArray[np.float32]:
        return next(self._blocks)

    def close(self) -> None:
        """Stop reading and close the file (at any point; again is a no-op)."""
        self._blocks.close()
        self._release()


def _stream_blocks(
    name: str,
    handle: sf.SoundFile,
    release: Callable[[], None],
    *,
    sample_rate: int,
    block_len: int,
) -> Iterator[NDArray[np.float32]]:
    """Yield ``block_len``-sample mono blocks at ``sample_rate`` from an open soundfile; ``release()`` closes it."""
    try:
        file_rate = int(handle.samplerate)
        resampler = None
        read_len = block_len
        reserve = 0
        if file_rate != sample_rate:
            import soxr  # a librosa dependency

            resampler = soxr.ResampleStream(file_rate, sample_rate, 1, dtype="float32", quality="HQ")
            read_len = max(1, math.ceil(block_len * file_rate / sample_rate))
            reserve = 64  # held back so the final length can be fixed to librosa's
        pending: list[NDArray[np.float32]] = []
        pending_len = 0
        n_in = 0
        n_out = 0
        while True:
            try:
                chunk = handle.read(read_len, dtype="float32", always_2d=False)
            except RuntimeError as exc:
                raise AudioError(name, _corrupt_data_reason(exc)) from None
            if chunk.shape[0] == 0:
                break
            if chunk.ndim > 1:
                chunk = chunk.mean(axis=1, dtype=np.float32)
            _check_finite(name, chunk)
            n_in += chunk.shape[0]
            if resampler is not None:
                chunk = resampler.resample_chunk(chunk)
            pending.append(chunk)
            pending_len += chunk.shape[0]
            if pending_len >= block_len + reserve:
                buf = np.concatenate(pending)
                start = 0
                while buf.shape[0] - start >= block_len + reserve:
                    yield buf[start : start + block_len].copy()
                    start += block_len
                    n_out += block_len
                pending = [buf[start:]]
                pending_len = buf.shape[0] - start
        if n_in == 0:
            raise AudioError(name, "no audio samples")
        buf = np.concatenate(pending) if pending else np.zeros(0, np.float32)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            need = _target_length(n_in, file_rate, sample_rate) - n_out
            buf = np.concatenate([buf, tail])[:need]
            if buf.shape[0] < need:
                buf = np.concatenate([buf, np.zeros(need - buf.shape[0], np.float32)])
        for start in range(0, buf.shape[0], block_len):
            yield np.ascontiguousarray(buf[start : start + block_len], dtype=np.float32)
    finally:
        release()


def _slice_blocks(signal: NDArray[np.float32], block_len: int) -> Iterator[NDArray[np.float32]]:
    for start in range(0, signal.shape[0], block_len):
        yield signal[start : start + block_len].copy()


# --------------------------------------------------------------------------------------------
# error path and ffmpeg fallback
# --------------------------------------------------------------------------------------------


def _diagnose(name: str) -> str | None:
    """Explain why libsndfile could not open ``name``, or name its container for the fallback.

    Returns
    -------
    str or None
        The container recognized from the file's first bytes (``"WAV"``, ``"M4A/MP4"``, ...),
        or None when unrecognized but worth handing to ffmpeg.

    Raises
    ------
    speechrnn.errors.AudioError
        When the cause is clear without decoding: missing, directory, permission, empty, text,
        cut-off header, unrecognized content in a file with a libsndfile extension.
    """
    try:
        info = os.stat(name)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(name):
            raise AudioError(name, f"broken link (to {os.readlink(name)}, which does not exist)") from None
        raise AudioError(name, "file not found") from None
    except PermissionError:
        raise AudioError(name, "permission denied") from None
    except OSError as exc:
        raise AudioError(name, f"cannot access file ({_one_line(exc.strerror or str(exc))})") from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioError(name, "is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(name, "not an audio file (not a regular file)")
    if info.st_size == 0:
        raise AudioError(name, "empty file (0 bytes)")
    try:
        with open(name, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except PermissionError:
        raise AudioError(name, "permission denied") from None
    except OSError as exc:
        raise AudioError(name, f"cannot read file ({_one_line(exc.strerror or str(exc))})") from None
    container = _sniff(head)
    if container is None and _looks_like_text(head):
        raise AudioError(name, "not an audio file (looks like text)")
    if container in _NATIVE_CONTAINERS and info.st_size < _MIN_HEADER_BYTES:
        raise AudioError(name, "truncated or corrupt header")
    ext = os.path.splitext(os.fsdecode(name))[1].lower()
    if container is None and ext in _NATIVE_EXTENSIONS:
        raise AudioError(name, f"not an audio file (no {ext[1:].upper()} header found)")
    return container


def _looks_like_text(head: bytes) -> bool:
    """True when the bytes decode as UTF-8 and are (almost) all printable or whitespace."""
    if not head or b"\x00" in head:
        return False
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    if not text:
        return False
    printable = sum(ch.isprintable() or ch in "\t\n\r\f\v" for ch in text)
    return printable >= 0.95 * len(text)


def _sniff(head: bytes) -> str | None:
    """Name the container from a file's first bytes, or None."""
    magic4 = head[:4]
    if magic4 in (b"RIFF", b"RIFX"):
        return "WAV" if head[8:12] in (b"WAVE", b"") else "RIFF"
    table = {
        b"RF64": "RF64",
        b"BW64": "RF64",
        b"riff": "W64",
        b"FORM": "AIFF",
        b".snd": "AU",
        b"fLaC": "FLAC",
        b"caff": "CAF",
        b"OggS": "OGG",
        b"\x1a\x45\xdf\xa3": "WebM/Matroska",
        b"\x30\x26\xb2\x75": "ASF/WMA",
        b"#!AM": "AMR",
        b"MAC ": "APE",
        b"wvpk": "WavPack",
    }
    if magic4 in table:
        return table[magic4]
    if head[:3] == b"ID3":
        return "MP3"
    if head[4:8] == b"ftyp":
        return "M4A/MP4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync: layer bits 00 mean ADTS AAC, anything else MP1/2/3
        return "AAC (ADTS)" if head[1] & 0x06 == 0 else "MP3"
    return None


def _fallback_unavailable(name: str, container: str | None) -> AudioError:
    ext = os.path.splitext(os.fsdecode(name))[1].lower() or "this"
    return AudioError(name, f"unsupported format ({container or ext} needs librosa and audioread)")


def _fallback_failure(name: str, container: str | None, detail: str) -> AudioError:
    """The error for a file neither libsndfile nor ffmpeg could decode."""
    if container in _NATIVE_CONTAINERS:
        return AudioError(name, "truncated or corrupt header")
    if container is None:
        return AudioError(name, "not an audio file (unrecognized content)")
    if shutil.which("ffmpeg") is None:
        return AudioError(name, f"unsupported format ({container}; install ffmpeg to decode it)")
    suffix = f": {detail}" if detail else ""
    return AudioError(name, f"unsupported format ({container} that ffmpeg could not decode{suffix})")


def _fallback_load(
    name: str, container: str | None, *, sample_rate: int, max_seconds: float | None
) -> NDArray[np.float32]:
    """Decode ``name`` with ``librosa.load`` (audioread/ffmpeg), mapping every failure.

    librosa's warnings about the soundfile-to-audioread fallback are silenced (note that
    :class:`warnings.catch_warnings` is process-wide state).
    """
    try:
        import audioread
        import librosa
    except ImportError:
        raise _fallback_unavailable(name, container) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signal, _ = librosa.load(
                name, sr=sample_rate, mono=True, duration=max_seconds, res_type="soxr_hq", dtype=np.float32
            )
    except audioread.DecodeError as exc:  # NoBackendError and the backends' errors
        raise _fallback_failure(name, container, _one_line(str(exc), 60)) from None
    except (EOFError, OSError, ValueError, RuntimeError, librosa.util.exceptions.ParameterError) as exc:
        raise _fallback_failure(name, container, _one_line(str(exc), 60)) from None
    if signal.size == 0:
        if container in _NATIVE_CONTAINERS:
            raise AudioError(name, "truncated or corrupt header")
        raise AudioError(name, "no audio samples")
    return np.ascontiguousarray(signal, dtype=np.float32)


def _fallback_info(name: str, container: str | None) -> AudioInfo:
    """Probe ``name`` with audioread (ffmpeg) for :func:`audio_info`."""
    try:
        import audioread
    except ImportError:
        raise _fallback_unavailable(name, container) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with audioread.audio_open(name) as probe:
                rate = int(probe.samplerate)
                channels = int(probe.channels)
                duration = float(probe.duration or 0.0)
    except audioread.DecodeError as exc:
        raise _fallback_failure(name, container, _one_line(str(exc), 60)) from None
    except (EOFError, OSError, ValueError, RuntimeError) as exc:
        raise _fallback_failure(name, container, _one_line(str(exc), 60)) from None
    if rate <= 0 or channels <= 0:
        raise _fallback_failure(name, container, "no audio stream")
    frames = round(duration * rate)
    ext = os.path.splitext(os.fsdecode(name))[1].lstrip(".").upper()
    return AudioInfo(
        sample_rate=rate,
        channels=channels,
        frames=frames,
        duration_seconds=frames / rate,
        format=ext or (container or "UNKNOWN"),
    )

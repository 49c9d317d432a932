"""Tests of speechrnn.audio on tiny files the tests write themselves."""

from __future__ import annotations

import gc
import math
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from speechrnn.audio import AUDIO_EXTENSIONS, AudioInfo, audio_info, iter_audio_blocks, load_audio
from speechrnn.errors import AudioError, SpeechRNNError

TARGET_RATE = 16000
TONE_HZ = 440.0
HAS_FFMPEG = shutil.which("ffmpeg") is not None


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def channel_gains(channels: int) -> np.ndarray:
    """Per-channel amplitudes, shape (channels,): different so the mix-down is checked.

    The 6th channel is silent: in a 5.1 layout it is the LFE channel, which Vorbis low-passes.
    """
    gains = 0.2 + 0.1 * np.arange(channels)
    if channels == 6:
        gains[5] = 0.0
    return gains


def tone(rate: int, seconds: float, channels: int, freq: float = TONE_HZ) -> np.ndarray:
    """A sine of ``freq`` Hz, shape (frames, channels), float32, channel k scaled by its gain."""
    t = np.arange(round(rate * seconds)) / rate
    wave = np.sin(2 * np.pi * freq * t)
    return (wave[:, None] * channel_gains(channels)[None, :]).astype(np.float32)


def expected_mono(n: int, channels: int, freq: float = TONE_HZ) -> np.ndarray:
    """The mono mix of :func:`tone` sampled at TARGET_RATE, shape (n,)."""
    t = np.arange(n) / TARGET_RATE
    return float(channel_gains(channels).mean()) * np.sin(2 * np.pi * freq * t)


def dominant_hz(signal: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin, zero-padded to 0.25 Hz resolution."""
    n_fft = 4 * rate
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.shape[0]), n=n_fft))
    return float(np.argmax(spectrum)) * rate / n_fft


def write_audio(path: Path, data: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> Path:
    """Write ``data`` (frames, channels) as ``fmt``; MP3 through ffmpeg when libsndfile lacks it."""
    if fmt == "MP3" and "MP3" not in sf.available_formats():
        if not HAS_FFMPEG:
            pytest.skip("neither libsndfile >= 1.1 nor ffmpeg can write MP3 here")
        wav = path.with_suffix(".src.wav")
        sf.write(wav, data, rate, subtype="PCM_16")
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", str(path)],
            check=True,
            timeout=60,
        )
        return path
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    return path


def ffmpeg_encode(src: Path, dest: Path, *args: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), *args, str(dest)],
        check=True,
        timeout=60,
    )
    return dest


def assert_tone(signal: np.ndarray, channels: int, *, min_corr: float, gain_tol: float) -> None:
    """The decoded signal is the expected mono 440 Hz sine, away from the edges."""
    assert signal.dtype == np.float32
    assert signal.ndim == 1
    assert abs(dominant_hz(signal, TARGET_RATE) - TONE_HZ) < 1.0
    edge = signal.shape[0] // 10
    got = signal[edge:-edge]
    want = expected_mono(signal.shape[0], channels)[edge:-edge]
    corr = float(np.dot(got, want) / math.sqrt(np.dot(got, got) * np.dot(want, want)))
    assert corr > min_corr
    gain = math.sqrt(np.dot(got, got) / np.dot(want, want))
    assert abs(gain - 1.0) < gain_tol


# --------------------------------------------------------------------------------------------
# formats, rates, channels
# --------------------------------------------------------------------------------------------

FORMATS = {
    # extension: (libsndfile format, subtype, lossless)
    "wav": ("WAV", "PCM_16", True),
    "flac": ("FLAC", "PCM_16", True),
    "ogg": ("OGG", "VORBIS", False),
    "mp3": ("MP3", None, False),
}
CASES = [
    (ext, rate, channels)
    for ext in FORMATS
    for rate in (8000, 22050, 44100, 48000)
    for channels in (1, 2, 6)
    if not (ext == "mp3" and channels > 2)  # MPEG audio holds at most 2 channels
]


@pytest.mark.parametrize(("ext", "rate", "channels"), CASES)
def test_formats_rates_and_channels(tmp_path: Path, ext: str, rate: int, channels: int) -> None:
    fmt, subtype, lossless = FORMATS[ext]
    seconds = 0.5
    path = write_audio(tmp_path / f"tone.{ext}", tone(rate, seconds, channels), rate, fmt, subtype)

    signal = load_audio(path)

    n_expected = math.ceil(round(rate * seconds) * TARGET_RATE / rate)
    if lossless:
        assert signal.shape == (n_expected,)
        assert_tone(signal, channels, min_corr=0.9999, gain_tol=0.01)
    else:
        assert abs(signal.shape[0] - n_expected) <= 0.02 * n_expected
        assert_tone(signal, channels, min_corr=0.98, gain_tol=0.1)
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.format) == (rate, channels, fmt)


@pytest.mark.parametrize(
    ("subtype", "tolerance"),
    [("PCM_U8", 1 / 100), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6), ("FLOAT", 0), ("DOUBLE", 1e-7)],
)
def test_wav_sample_formats(tmp_path: Path, subtype: str, tolerance: float) -> None:
    source = tone(TARGET_RATE, 0.25, 1)[:, 0]
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, source, TARGET_RATE, subtype=subtype)

    signal = load_audio(path)

    assert signal.dtype == np.float32
    assert signal.shape == source.shape
    assert float(np.max(np.abs(signal - source))) <= tolerance


def test_same_rate_mono_wav_is_read_exactly(tmp_path: Path) -> None:
    source = np.random.default_rng(0).uniform(-0.9, 0.9, 16000).astype(np.float32)
    sf.write(tmp_path / "x.wav", source, TARGET_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "x.wav"), source)
    np.testing.assert_array_equal(load_audio(str(tmp_path / "x.wav")), source)


def test_other_target_rate(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", tone(TARGET_RATE, 1.0, 2), TARGET_RATE)
    assert load_audio(tmp_path / "x.wav", sample_rate=8000).shape == (8000,)


def test_opus_in_ogg(tmp_path: Path) -> None:
    if "OPUS" not in sf.available_subtypes("OGG"):
        pytest.skip("this libsndfile has no Opus encoder")
    path = write_audio(tmp_path / "tone.opus", tone(48000, 0.5, 2), 48000, "OGG", "OPUS")
    signal = load_audio(path)
    assert abs(signal.shape[0] - 8000) <= 160
    assert_tone(signal, 2, min_corr=0.98, gain_tol=0.1)


@pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg is not installed (needed to write and read M4A)")
def test_m4a_goes_through_the_ffmpeg_fallback(tmp_path: Path) -> None:
    wav = tmp_path / "src.wav"
    sf.write(wav, tone(44100, 1.0, 2), 44100)
    m4a = ffmpeg_encode(wav, tmp_path / "tone.m4a", "-c:a", "aac", "-b:a", "128k")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa's fallback warnings must not escape
        signal = load_audio(m4a)
        info = audio_info(m4a)
        blocks = list(iter_audio_blocks(m4a, block_seconds=0.25))

    assert abs(signal.shape[0] - TARGET_RATE) <= 2048  # AAC priming/padding
    assert abs(dominant_hz(signal, TARGET_RATE) - TONE_HZ) < 1.0
    assert (info.sample_rate, info.channels, info.format) == (44100, 2, "M4A")
    assert abs(info.duration_seconds - 1.0) < 0.1
    assert all(block.shape == (4000,) for block in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks), signal)


# --------------------------------------------------------------------------------------------
# max_seconds and streaming
# --------------------------------------------------------------------------------------------


def test_max_seconds_reads_only_the_start(tmp_path: Path) -> None:
    source = tone(44100, 3.0, 2)
    source[2 * 44100 :] = np.nan  # reading past 2 s would raise
    path = tmp_path / "x.wav"
    sf.write(path, source, 44100, subtype="FLOAT")

    head = load_audio(path, max_seconds=1.0)
    assert head.shape == (16000,)
    assert_tone(head, 2, min_corr=0.9999, gain_tol=0.01)
    with pytest.raises(AudioError, match="contains NaN or infinite samples"):
        load_audio(path)


def test_max_seconds_same_rate_and_longer_than_file(tmp_path: Path) -> None:
    source = tone(TARGET_RATE, 2.0, 1)[:, 0]
    sf.write(tmp_path / "x.wav", source, TARGET_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "x.wav", max_seconds=0.5), source[:8000])
    assert load_audio(tmp_path / "x.wav", max_seconds=10.0).shape == (32000,)


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (TARGET_RATE, 1)])
def test_iter_audio_blocks_equals_load_audio(tmp_path: Path, rate: int, channels: int) -> None:
    seconds = 60.0
    rng = np.random.default_rng(1)
    data = 0.3 * tone(rate, seconds, channels, freq=330.0)
    data += rng.normal(0, 0.05, data.shape).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, data, rate, subtype="PCM_16")

    whole = load_audio(path)
    blocks = list(iter_audio_blocks(path, block_seconds=7.0))

    assert all(block.dtype == np.float32 and block.ndim == 1 for block in blocks)
    assert all(block.shape == (7 * TARGET_RATE,) for block in blocks[:-1])
    assert 0 < blocks[-1].shape[0] <= 7 * TARGET_RATE
    joined = np.concatenate(blocks)
    assert joined.shape == whole.shape == (60 * TARGET_RATE,)
    assert float(np.max(np.abs(joined - whole))) < 1e-4


def test_iter_audio_blocks_reports_bad_files_when_called(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="file not found"):
        iter_audio_blocks(tmp_path / "missing.wav")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), TARGET_RATE)
    with pytest.raises(AudioError, match="no audio samples"):
        iter_audio_blocks(tmp_path / "empty.wav")


def test_iter_audio_blocks_reports_nan_while_iterating(tmp_path: Path) -> None:
    data = tone(TARGET_RATE, 3.0, 1)
    data[-10] = np.inf
    sf.write(tmp_path / "x.wav", data, TARGET_RATE, subtype="FLOAT")
    blocks = iter_audio_blocks(tmp_path / "x.wav", block_seconds=1.0)
    assert next(blocks).shape == (TARGET_RATE,)
    with pytest.raises(AudioError, match="contains NaN or infinite samples"):
        list(blocks)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to count open files")
@pytest.mark.parametrize("rate", [TARGET_RATE, 22050], ids=["same-rate", "resampled"])
def test_iter_audio_blocks_closes_the_file_however_the_iterator_ends(tmp_path: Path, rate: int) -> None:
    sf.write(tmp_path / "x.wav", tone(rate, 2.0, 1), rate)
    gc.collect()
    before = _open_descriptors()
    for _ in range(50):  # dropped before the first block (the file used to stay open)
        iter_audio_blocks(tmp_path / "x.wav", block_seconds=0.5)
    assert _open_descriptors() == before
    unstarted = [iter_audio_blocks(tmp_path / "x.wav", block_seconds=0.5) for _ in range(20)]
    assert _open_descriptors() == before + 20  # open until closed: each holds its file
    for blocks in unstarted:
        blocks.close()
    assert _open_descriptors() == before
    for _ in range(20):  # dropped part-way, and read to the end
        blocks = iter_audio_blocks(tmp_path / "x.wav", block_seconds=0.5)
        assert next(blocks).shape == (TARGET_RATE // 2,)
        del blocks
        assert len(list(iter_audio_blocks(tmp_path / "x.wav", block_seconds=0.5))) == 4
    gc.collect()
    assert _open_descriptors() == before


# --------------------------------------------------------------------------------------------
# audio_info, constants, arguments, import cost
# --------------------------------------------------------------------------------------------


def test_audio_info(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.flac", tone(22050, 2.0, 2), 22050)
    info = audio_info(tmp_path / "x.flac")
    assert info == AudioInfo(sample_rate=22050, channels=2, frames=44100, duration_seconds=2.0, format="FLAC")
    with pytest.raises(AudioError, match="file not found"):
        audio_info(tmp_path / "missing.flac")


def test_audio_extensions() -> None:
    assert {".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus", ".webm"} <= AUDIO_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in AUDIO_EXTENSIONS)
    assert isinstance(AUDIO_EXTENSIONS, frozenset)


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", tone(TARGET_RATE, 0.1, 1), TARGET_RATE)
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(tmp_path / "x.wav", sample_rate=0)
    with pytest.raises(ValueError, match="max_seconds"):
        load_audio(tmp_path / "x.wav", max_seconds=0)
    with pytest.raises(ValueError, match="block_seconds"):
        iter_audio_blocks(tmp_path / "x.wav", block_seconds=-1)


def test_import_is_cheap() -> None:
    code = "import sys, speechrnn.audio; print(sorted({'librosa', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# bad inputs: one AudioError each, naming the file and the reason
# --------------------------------------------------------------------------------------------


def _valid_wav_bytes(tmp_path: Path) -> bytes:
    sf.write(tmp_path / "valid.wav", tone(TARGET_RATE, 0.1, 1), TARGET_RATE, subtype="PCM_16")
    return (tmp_path / "valid.wav").read_bytes()


def _valid_flac_bytes(tmp_path: Path) -> bytes:
    noise = np.random.default_rng(2).uniform(-0.5, 0.5, (TARGET_RATE, 1)).astype(np.float32)
    sf.write(tmp_path / "valid.flac", noise, TARGET_RATE)
    return (tmp_path / "valid.flac").read_bytes()


def make_missing(tmp_path: Path) -> Path:
    return tmp_path / "missing.wav"


def make_directory(tmp_path: Path) -> Path:
    (tmp_path / "folder.wav").mkdir()
    return tmp_path / "folder.wav"


def make_empty(tmp_path: Path) -> Path:
    (tmp_path / "empty.wav").touch()
    return tmp_path / "empty.wav"


def make_text(tmp_path: Path) -> Path:
    (tmp_path / "notes.wav").write_text("yes\nno\nup\ndown\nthese are labels, not audio\n")
    return tmp_path / "notes.wav"


def make_random_bytes(tmp_path: Path) -> Path:
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(3).bytes(4000))
    return tmp_path / "noise.wav"


def make_wav_cut_to_20_bytes(tmp_path: Path) -> Path:
    (tmp_path / "cut.wav").write_bytes(_valid_wav_bytes(tmp_path)[:20])
    return tmp_path / "cut.wav"


def make_flac_cut_to_30_bytes(tmp_path: Path) -> Path:
    (tmp_path / "cut.flac").write_bytes(_valid_flac_bytes(tmp_path)[:30])
    return tmp_path / "cut.flac"


def make_flac_cut_in_the_middle(tmp_path: Path) -> Path:
    data = _valid_flac_bytes(tmp_path)
    (tmp_path / "half.flac").write_bytes(data[: len(data) // 2])
    return tmp_path / "half.flac"


def make_wav_cut_in_the_middle(tmp_path: Path) -> Path:
    data = _valid_wav_bytes(tmp_path)  # 0.1 s: a 44-byte header and 3,200 bytes of samples
    (tmp_path / "half.wav").write_bytes(data[:1644])
    return tmp_path / "half.wav"


def make_aiff_cut_in_the_middle(tmp_path: Path) -> Path:
    sf.write(tmp_path / "valid.aiff", tone(TARGET_RATE, 0.1, 1), TARGET_RATE, subtype="PCM_16")
    data = (tmp_path / "valid.aiff").read_bytes()
    (tmp_path / "half.aiff").write_bytes(data[: len(data) // 2])
    return tmp_path / "half.aiff"


def make_caf_cut_short(tmp_path: Path) -> Path:
    sf.write(tmp_path / "valid.caf", tone(TARGET_RATE, 0.1, 1), TARGET_RATE, subtype="PCM_16", format="CAF")
    data = (tmp_path / "valid.caf").read_bytes()
    (tmp_path / "cut.caf").write_bytes(data[:-1001])  # the end of its audio data is missing
    return tmp_path / "cut.caf"


def make_header_only_wav(tmp_path: Path) -> Path:
    sf.write(tmp_path / "silence.wav", np.zeros((0, 1), np.float32), TARGET_RATE, subtype="PCM_16")
    return tmp_path / "silence.wav"


def make_nan_wav(tmp_path: Path) -> Path:
    data = tone(TARGET_RATE, 0.1, 1)
    data[100] = np.nan
    sf.write(tmp_path / "nan.wav", data, TARGET_RATE, subtype="FLOAT")
    return tmp_path / "nan.wav"


def make_inf_wav(tmp_path: Path) -> Path:
    data = tone(TARGET_RATE, 0.1, 2)
    data[7, 1] = -np.inf
    sf.write(tmp_path / "inf.wav", data, TARGET_RATE, subtype="DOUBLE")
    return tmp_path / "inf.wav"


def make_broken_m4a(tmp_path: Path) -> Path:
    # an MP4 'ftyp' box followed by garbage: recognizably M4A, but nothing can decode it
    body = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2\x00\x00\x00\x00"
    (tmp_path / "broken.m4a").write_bytes(body + np.random.default_rng(4).bytes(2000))
    return tmp_path / "broken.m4a"


def make_broken_link(tmp_path: Path) -> Path:
    (tmp_path / "clip.wav").symlink_to(tmp_path / "moved-away.wav")
    return tmp_path / "clip.wav"


BAD_INPUTS = [
    (make_missing, "file not found"),
    pytest.param(make_broken_link, "broken link (to ", marks=pytest.mark.skipif(os.name != "posix",
                                                                             reason="symbolic links")),
    (make_directory, "is a directory"),
    (make_empty, "empty file (0 bytes)"),
    (make_text, "not an audio file (looks like text)"),
    (make_random_bytes, "not an audio file"),
    (make_wav_cut_to_20_bytes, "truncated or corrupt header"),
    (make_flac_cut_to_30_bytes, "truncated or corrupt header"),
    (make_flac_cut_in_the_middle, "corrupt audio data"),
    (make_wav_cut_in_the_middle, "truncated file (its header promises 3200 bytes of audio, 1600 are there)"),
    (make_aiff_cut_in_the_middle, "truncated file"),
    (make_caf_cut_short, "truncated file"),
    (make_header_only_wav, "no audio samples"),
    (make_nan_wav, "contains NaN or infinite samples"),
    (make_inf_wav, "contains NaN or infinite samples"),
    pytest.param(
        make_broken_m4a,
        "unsupported format (M4A/MP4",
        marks=pytest.mark.skipif(not HAS_FFMPEG, reason="the M4A fallback needs ffmpeg"),
    ),
]


@pytest.mark.parametrize(("make", "reason"), BAD_INPUTS)
def test_bad_input_raises_audio_error(tmp_path: Path, make: Callable[[Path], Path], reason: str) -> None:
    path = make(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AudioError) as caught:
            load_audio(path)
    message = str(caught.value)
    assert isinstance(caught.value, SpeechRNNError)
    assert path.name in message
    assert reason in message
    assert caught.value.reason.startswith(reason.split(" (")[0])
    assert message == f"{path}: {caught.value.reason}"
    assert "\n" not in message


def test_cut_off_file_is_refused_when_scanned_too(tmp_path: Path) -> None:
    path = make_wav_cut_in_the_middle(tmp_path)
    with pytest.raises(AudioError, match="truncated file"):
        iter_audio_blocks(path)


@pytest.mark.parametrize("placeholder", [0xFFFFFFFF, 0x7FFFF000])
def test_streamed_wav_with_unknown_length_is_read(tmp_path: Path, placeholder: int) -> None:
    """A WAV written to a pipe (ffmpeg: 0xFFFFFFFF, espeak-ng: 0x7FFFF000 as its sizes) is not cut off."""
    data = bytearray(_valid_wav_bytes(tmp_path))
    assert data[36:40] == b"data"
    data[4:8] = (placeholder).to_bytes(4, "little")  # RIFF size
    data[40:44] = (placeholder).to_bytes(4, "little")  # data size
    (tmp_path / "piped.wav").write_bytes(bytes(data))
    expected = load_audio(tmp_path / "valid.wav")
    np.testing.assert_array_equal(load_audio(tmp_path / "piped.wav"), expected)
    np.testing.assert_array_equal(np.concatenate(list(iter_audio_blocks(tmp_path / "piped.wav"))), expected)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root can read any file")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    sf.write(path, tone(TARGET_RATE, 0.1, 1), TARGET_RATE)
    path.chmod(0)
    try:
        with pytest.raises(AudioError, match="permission denied"):
            load_audio(path)
    finally:
        path.chmod(0o644)


@pytest.mark.skipif(sys.platform == "win32", reason="files are opened by libsndfile itself on Windows")
def test_permission_denied_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same as above where tests run as root: the OS refuses to open this one file."""
    import speechrnn.audio as audio_module

    path = tmp_path / "locked.wav"
    sf.write(path, tone(TARGET_RATE, 0.1, 1), TARGET_RATE)
    real_os_open = os.open

    def refuse(file: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    monkeypatch.setattr(audio_module, "open", refuse, raising=False)
    for call in (load_audio, audio_info, iter_audio_blocks):
        with pytest.raises(AudioError, match="permission denied"):
            call(path)

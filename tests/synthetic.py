"""Learnable synthetic "words" for tests: tiny generated audio, no external data.

Classes (each a one-second clip with the sound at a random onset over quiet noise):

- ``rise``: a chirp rising from ~300 Hz to ~2.4 kHz;
- ``fall``: a chirp falling over the same range;
- ``tone``: a steady two-tone chord (~600 Hz + ~1.5 kHz);
- ``buzz``: a 110-150 Hz pulse train (harmonic-rich, like a voiced sound);
- ``hiss``: a burst of band-limited noise (stands in for "other words", ``_unknown_``);
- ``_silence_``: noise only, at levels from digital silence to loud.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
WORDS = ("rise", "fall", "tone", "buzz")
LABELS = ("_silence_", "_unknown_", *WORDS)
UNKNOWN_SOUND = "hiss"


def _noise(rng: np.random.Generator, n: int, level: float) -> np.ndarray:
    return (rng.standard_normal(n) * level).astype(np.float32)


def make_sound(name: str, rng: np.random.Generator, *, sample_rate: int = SAMPLE_RATE,
               seconds: float = 0.5) -> np.ndarray:
    """The bare sound of class ``name`` (no padding, no background), peak about 1.

    Parameters
    ----------
    name : {"rise", "fall", "tone", "buzz", "hiss"}
    rng : np.random.Generator
    sample_rate : int
    seconds : float
        Duration of the sound.

    Returns
    -------
    np.ndarray, shape (round(seconds * sample_rate),), float32
    """
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    jitter = rng.uniform(0.9, 1.1)
    if name in ("rise", "fall"):
        f0, f1 = 300.0 * jitter, 2400.0 * jitter
        if name == "fall":
            f0, f1 = f1, f0
        freq = f0 + (f1 - f0) * t / seconds
        sound = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)
    elif name == "tone":
        sound = 0.5 * np.sin(2 * np.pi * 600 * jitter * t) + 0.5 * np.sin(2 * np.pi * 1500 * jitter * t)
    elif name == "buzz":
        f = rng.uniform(110, 150)
        sound = np.sign(np.sin(2 * np.pi * f * t)) * 0.6
    elif name == UNKNOWN_SOUND:
        noise = rng.standard_normal(n + 64)
        kernel = np.hanning(9)
        sound = np.convolve(noise, kernel / kernel.sum(), mode="same")[:n] * 2.0
    else:
        raise ValueError(f"unknown synthetic sound {name!r}")
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.03)
    return (sound * envelope).astype(np.float32)


def make_class_clip(name: str, rng: np.random.Generator, *, sample_rate: int = SAMPLE_RATE,
                    seconds: float = 1.0) -> np.ndarray:
    """A clip of one synthetic class; see :func:`make_class_clip_with_span`."""
    return make_class_clip_with_span(name, rng, sample_rate=sample_rate, seconds=seconds)[0]


def make_class_clip_with_span(name: str, rng: np.random.Generator, *, sample_rate: int = SAMPLE_RATE,
                              seconds: float = 1.0) -> tuple[np.ndarray, float, float]:
    """A clip of one synthetic class, as a recording of it would be.

    Parameters
    ----------
    name : str
        One of :data:`WORDS`, ``"hiss"`` / ``"_unknown_"`` (the unknown sound) or ``"_silence_"``.
    rng : np.random.Generator
    sample_rate : int
    seconds : float
        Clip length.

    Returns
    -------
    clip : np.ndarray, shape (round(seconds * sample_rate),), float32
        Peak below 1.
    start, end : float
        Where the sound lies in the clip, seconds (0 and ``seconds`` for silence).
    """
    n = round(seconds * sample_rate)
    if name == "_silence_":
        level = 10 ** rng.uniform(-5, -1.3)
        clip = _noise(rng, n, level) if rng.random() > 0.05 else np.zeros(n, dtype=np.float32)
        return clip, 0.0, seconds
    if name == "_unknown_":
        name = UNKNOWN_SOUND
    clip = _noise(rng, n, 10 ** rng.uniform(-4, -2.5))
    length = rng.uniform(0.4, 0.55) * seconds
    sound = make_sound(name, rng, sample_rate=sample_rate, seconds=length) * rng.uniform(0.1, 0.6)
    start = int(rng.uniform(0.05, 0.95 * seconds - length) * sample_rate)
    clip[start:start + sound.shape[0]] += sound
    return clip, start / sample_rate, (start + sound.shape[0]) / sample_rate


def speaker_id(word: str, index: int) -> str:
    """A stable 8-hex-digit speaker id, as Speech Commands names its files."""
    return hashlib.sha1(f"{word}-{index}".encode()).hexdigest()[:8]


def write_speech_commands_tree(
    root: Path,
    *,
    words: Sequence[str] = (*WORDS, UNKNOWN_SOUND),
    per_word: int = 40,
    rng: np.random.Generator,
    validation_fraction: float = 0.15,
    testing_fraction: float = 0.15,
    short_fraction: float = 0.1,
    extension: str = "wav",
    noise_seconds: float = 20.0,
) -> dict[str, list[str]]:
    """Lay out synthetic clips exactly as the Speech Commands archive does.

    Writes ``root/<word>/<speaker>_nohash_<n>.<extension>`` (16 kHz mono 16-bit), two
    ``_background_noise_`` files (white and pink noise), and ``validation_list.txt`` /
    ``testing_list.txt`` splitting by speaker. Some clips are shorter than 1 s (as in v0.01).

    Parameters
    ----------
    root : Path
    words : sequence of str
        Folder names; a name that is not a synthetic sound raises ValueError.
    per_word : int
        Clips per word; each clip has its own speaker, two clips per speaker.
    rng : np.random.Generator
    validation_fraction, testing_fraction : float
        Share of speakers in each list.
    short_fraction : float
        Share of clips trimmed to 0.6-0.95 s.
    extension : {"wav", "flac"}
    noise_seconds : float
        Length of each background-noise file.

    Returns
    -------
    dict
        ``{"training": [...], "validation": [...], "testing": [...]}`` relative paths.
    """
    root = Path(root)
    splits: dict[str, list[str]] = {"training": [], "validation": [], "testing": []}
    for word in words:
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(per_word):
            speaker = speaker_id(word, i // 2)
            clip = make_class_clip(word, rng)
            if rng.random() < short_fraction:
                clip = clip[: int(rng.uniform(0.6, 0.95) * SAMPLE_RATE)]
            relative = f"{word}/{speaker}_nohash_{i % 2}.{extension}"
            sf.write(root / relative, clip, SAMPLE_RATE, subtype="PCM_16")
            bucket = int(speaker, 16) / 16**8
            if bucket < validation_fraction:
                splits["validation"].append(relative)
            elif bucket < validation_fraction + testing_fraction:
                splits["testing"].append(relative)
            else:
                splits["training"].append(relative)
    (root / "validation_list.txt").write_text("".join(f"{p}\n" for p in splits["validation"]))
    (root / "testing_list.txt").write_text("".join(f"{p}\n" for p in splits["testing"]))
    noise_dir = root / "_background_noise_"
    noise_dir.mkdir(exist_ok=True)
    n = int(noise_seconds * SAMPLE_RATE)
    white = rng.standard_normal(n) * 0.005
    pink = np.cumsum(rng.standard_normal(n))
    pink = (pink - np.convolve(pink, np.ones(400) / 400, mode="same")) * 0.002
    sf.write(noise_dir / "white_noise.wav", white.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    sf.write(noise_dir / "pink_noise.wav", pink.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return splits


def place_clips(
    sounds: Sequence[tuple[str, float]], *, seconds: float, rng: np.random.Generator,
    noise_level: float = 0.002,
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A long recording with synthetic class clips placed at known times over quiet noise.

    Parameters
    ----------
    sounds : sequence of (name, start_seconds)
        Each one-second class clip (as :func:`make_class_clip` makes it) starts at ``start_seconds``.
    seconds : float
        Total length.
    rng : np.random.Generator
    noise_level : float
        Standard deviation of the background noise.

    Returns
    -------
    audio : np.ndarray, shape (round(seconds * SAMPLE_RATE),), float32
    spans : list of (name, sound_start, sound_end)
        Where each sound itself lies in the recording, seconds.
    """
    audio = _noise(rng, round(seconds * SAMPLE_RATE), noise_level)
    spans = []
    for name, start in sounds:
        clip, sound_start, sound_end = make_class_clip_with_span(name, rng)
        i = round(start * SAMPLE_RATE)
        audio[i:i + clip.shape[0]] += clip[: audio.shape[0] - i]
        spans.append((name, start + sound_start, start + sound_end))
    return audio, spans

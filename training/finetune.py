"""Teach a model new words from a few recordings, in seconds, without forgetting the old ones.

The recipe ("head-only fine-tuning with exact rehearsal"):

1. Every take is trimmed to the spoken word (:func:`speechrnn.trim.trim_to_speech`, as the app
   does) after :func:`speechrnn.trim.check_recording` has refused silent, clipped, too short and
   too long takes, naming the file.
2. The takes are split *by take* into training and held-out takes. Each training take becomes
   many one-second clips: random placement, speed (tempo and pitch), gain, background from the
   user's room recording (or background-noise-like synthetic noise) at varied levels.
3. The frozen network turns every clip into its pooled vector (``SpeechRNN.embed``). The model
   file of the base model can carry a *rehearsal bank*: pooled vectors of its own training clips
   with their labels (``extras["rehearsal_embeddings"]`` / ``["rehearsal_labels"]``, written by
   :func:`add_rehearsal_bank`), so the old classes are rehearsed exactly, with no audio.
4. A new head (the old head's weights, plus one new output row per new word) is trained on the
   bank, the new words' clips and room-noise clips labelled ``_silence_``: class-balanced cross
   entropy plus distillation of the old head's outputs on the bank. This takes seconds on a CPU.
5. Held-out figures are measured by a first run that never sees the held-out takes (new-word
   accuracy on them, built-in accuracy before/after on held-out built-in clips, false accepts of
   the new words on held-out silence/unknown/room noise); the model that is saved is then
   trained the same way on every take.

``--full`` instead fine-tunes the whole network on rehearsal *audio* (``--rehearsal-data DIR``,
a Speech Commands tree) and the new words' clips; it is slower (minutes) and can adapt the
features themselves.

Command line::

    python -m training.finetune --words DIR --out NEW_MODEL [--base MODEL] [--noise FILE_OR_DIR]
    python -m training.finetune --make-bank DATA_DIR --base MODEL --out MODEL_WITH_BANK

``DIR`` holds ``<word>/*.wav`` (any length, rate or format :func:`speechrnn.audio.load_audio`
reads); a ``DIR/_background_/`` folder, if present, is used as room noise.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from speechrnn.errors import SpeechRNNError
from speechrnn.userdata import BACKGROUND_FOLDER, OTHER_FOLDER  # also the sub-folders of a words folder

__all__ = [
    "FinetuneCancelled",
    "FinetuneConfig",
    "FinetuneError",
    "FinetuneReport",
    "Recording",
    "add_rehearsal_bank",
    "build_rehearsal_bank",
    "finetune",
    "load_recordings",
    "main",
]

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
MIN_TAKES = 3
RECOMMENDED_TAKES = 8
BANK_KEYS = ("rehearsal_embeddings", "rehearsal_labels")
HELDOUT_KEYS = ("heldout_embeddings", "heldout_labels")

#: ``progress(fraction, message)``: fraction in [0, 1] of the whole job done.
ProgressCallback = Callable[[float, str], None]


class FinetuneError(SpeechRNNError):
    """Fine-tuning cannot start (bad recordings, bad word, no base model) or failed."""


class FinetuneCancelled(SpeechRNNError):
    """The caller asked fine-tuning to stop; nothing was written."""


@dataclass(frozen=True)
class FinetuneConfig:
    """How the new words are learned.

    Parameters
    ----------
    epochs : int
        Passes over the embeddings when training the head (each pass is a few milliseconds).
    lr : float
        AdamW learning rate of the head.
    weight_decay : float
    batch_size : int
    variants_per_take : int
        Augmented one-second clips made from each training take.
    noise_examples : int
        Room/synthetic-noise clips labelled ``_silence_`` (negatives for the new words).
    holdout_fraction : float
        Share of each word's takes held out to measure the result (at least one take; 0: none).
    speed : tuple of (float, float)
        Speed (tempo and pitch) factor range.
    gain_db : tuple of (float, float)
        Gain range, dB.
    snr_db : tuple of (float, float)
        Range of the signal-to-noise ratio of extra mixed noise, dB.
    noise_prob : float
        Chance extra noise is mixed into a clip.
    distill_weight : float
        Weight of the distillation loss on the rehearsal bank (old head -> new head, old classes).
    temperature : float
        Distillation temperature.
    label_smoothing : float
    full : bool
        Fine-tune the whole network on rehearsal audio (needs ``rehearsal_data``).
    full_epochs : int
        Epochs of whole-network fine-tuning.
    full_lr : float
        Learning rate of the network body in whole-network fine-tuning (the head uses ``lr``).
    per_class : int
        Rehearsal clips per class drawn from ``rehearsal_data`` when the base has no bank.
    """

    epochs: int = 60
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    variants_per_take: int = 48
    noise_examples: int = 160
    holdout_fraction: float = 0.25
    speed: tuple[float, float] = (0.88, 1.12)
    gain_db: tuple[float, float] = (-10.0, 6.0)
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_prob: float = 0.5
    distill_weight: float = 1.0
    temperature: float = 2.0
    label_smoothing: float = 0.0
    full: bool = False
    full_epochs: int = 4
    full_lr: float = 3e-4
    per_class: int = 200

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.variants_per_take < 1 or self.batch_size < 1:
            raise ValueError("epochs, variants_per_take and batch_size must be positive")
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError("holdout_fraction must be in [0, 1)")
        if not 0 < self.speed[0] <= self.speed[1]:
            raise ValueError("speed must be (low, high) with 0 < low <= high")


@dataclass(frozen=True)
class Recording:
    """One usable take of a word, trimmed to the speech.

    Parameters
    ----------
    word : str
    path : pathlib.Path or None
        Its file (None for audio handed over in memory).
    audio : np.ndarray, shape (n,), float32
        The trimmed take at the model's sample rate.
    """

    word: str
    path: Path | None
    audio: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class FinetuneReport:
    """What fine-tuning did and how well it worked.

    Parameters
    ----------
    out : pathlib.Path
        The new model file.
    base : str
        The base model file.
    labels : tuple of str
        The new model's labels (the base's, then the new words).
    new_words : tuple of str
    takes : dict of str to int
        Takes used per word (all of them train the saved model).
    heldout_takes : dict of str to int
        Takes per word held out for the figures below.
    new_word_accuracy : float or None
        Accuracy on clips of the held-out takes (the new words must win), in [0, 1].
    new_word_per_word : dict of str to float
        The same, per word.
    builtin_accuracy_before, builtin_accuracy_after : float or None
        Accuracy of the base model and of the new model on held-out built-in clips (old labels).
    builtin_examples : int
        Number of held-out built-in clips.
    false_accept_rate : float or None
        Share of held-out silence / unknown / room-noise clips the new model labels as a new word.
    other_false_accept_rate : float or None
        Share of held-out pieces of the user's other speech (``others``) labelled as a new word;
        None when none were given (or in whole-network mode).
    mode : {"head", "frozen-head", "full"}
        ``head``: head trained with rehearsal; ``frozen-head``: no rehearsal, old weights frozen;
        ``full``: whole network.
    seconds : float
        Wall time of the whole job.
    warnings : tuple of str
        Everything the user should know (few takes, no rehearsal, ...).
    """

    out: Path
    base: str
    labels: tuple[str, ...]
    new_words: tuple[str, ...]
    takes: dict[str, int]
    heldout_takes: dict[str, int]
    new_word_accuracy: float | None
    new_word_per_word: dict[str, float]
    builtin_accuracy_before: float | None
    builtin_accuracy_after: float | None
    builtin_examples: int
    false_accept_rate: float | None
    mode: str
    seconds: float
    warnings: tuple[str, ...] = ()
    other_false_accept_rate: float | None = None
    other_pieces: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-compatible form (stored in the model's summary)."""
        data = dataclasses.asdict(self)
        data["out"] = str(self.out)
        data["labels"] = list(self.labels)
        data["new_words"] = list(self.new_words)
        data["warnings"] = list(self.warnings)
        for key in ("new_word_accuracy", "builtin_accuracy_before", "builtin_accuracy_after", "false_accept_rate",
                    "other_false_accept_rate"):
            if data[key] is not None:
                data[key] = round(float(data[key]), 4)
        data["new_word_per_word"] = {k: round(float(v), 4) for k, v in self.new_word_per_word.items()}
        data["seconds"] = round(self.seconds, 2)
        return data

    def describe(self) -> str:
        """A few lines for a terminal or a message box."""

        def pct(value: float | None) -> str:
            return "n/a" if value is None else f"{100 * value:.1f}%"

        takes = ", ".join(f"{w} ({self.takes[w]} takes, {self.heldout_takes.get(w, 0)} held out)"
                          for w in self.new_words)
        lines = [
            f"new model: {self.out}",
            f"learned: {takes}",
            f"new words on held-out takes: {pct(self.new_word_accuracy)}",
            f"built-in words on {self.builtin_examples} held-out clips: {pct(self.builtin_accuracy_before)} before, "
            f"{pct(self.builtin_accuracy_after)} after",
            f"new words firing on held-out silence, other speakers' other words and noise: "
            f"{pct(self.false_accept_rate)}",
            f"new words firing on your other words (held-out pieces of the --others recordings): "
            f"{pct(self.other_false_accept_rate)}" if self.other_false_accept_rate is not None else
            "other words in the takes' own voice were not given (--others, or an _other_ folder): the new words may "
            "fire on them; say a few and check that they stay unknown",
            f"mode: {self.mode}; took {self.seconds:.1f} s",
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ recordings


def _audio_files(folder: Path) -> list[Path]:
    from speechrnn.audio import AUDIO_EXTENSIONS

    # a broken link is kept, so that reading it names it instead of the take vanishing silently
    return sorted(p for p in folder.iterdir() if (p.is_file() or (p.is_symlink() and not p.exists()))
                  and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."))


def load_recordings(
    words: str | os.PathLike[str] | Mapping[str, Sequence[str | os.PathLike[str] | np.ndarray]],
    *,
    sample_rate: int,
    clip_seconds: float,
    existing_labels: Sequence[str] = (),
) -> tuple[list[Recording], list[str]]:
    """Read, check and trim every take; refuse bad input before any training starts.

    Parameters
    ----------
    words : path-like or mapping
        A folder of ``<word>/<take files>`` (``_background_`` and hidden folders are skipped),
        or ``{word: [file or array at sample_rate, ...]}``.
    sample_rate : int
        The model's sample rate, Hz.
    clip_seconds : float
        The model's clip length: the longest word it can learn, seconds.
    existing_labels : sequence of str
        Labels of the base model: a word among them is refused.

    Returns
    -------
    recordings : list of Recording
        Trimmed takes, grouped by word.
    warnings : list of str
        E.g. fewer than 8 takes of a word.

    Raises
    ------
    FinetuneError
        No words, an invalid or existing word, fewer than 3 takes of a word, or unusable takes
        (silent, clipped, too short, too long, unreadable): one line per problem, naming the file.
    """
    from speechrnn.audio import load_audio
    from speechrnn.errors import AudioError
    from speechrnn.trim import check_recording, trim_to_speech
    from speechrnn.userdata import UserDataError, validate_word

    if isinstance(words, Mapping):
        sources: dict[str, list[Any]] = {str(w): list(v) for w, v in words.items()}
        where = "the recordings"
    else:
        root = Path(words).expanduser()
        if root.is_file():
            raise FinetuneError(f"{root}: a file; --words takes a folder of <word>/*.wav recordings")
        if not root.is_dir():
            raise FinetuneError(f"{root}: words folder not found (expected {root}/<word>/*.wav)")
        sources = {}
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name.startswith(".") or folder.name in (BACKGROUND_FOLDER, OTHER_FOLDER):
                continue
            sources[folder.name] = list(_audio_files(folder))
        where = str(root)
    if not sources:
        raise FinetuneError(f"{where}: no word folders found (expected <word>/*.wav, one folder per new word)")
    problems: list[str] = []
    warnings: list[str] = []
    existing = {label.lower() for label in existing_labels}
    recordings: list[Recording] = []
    folder_of: dict[str, str] = {}  # word -> the first folder (or key) that gave it
    for word, items in sources.items():
        try:
            clean = validate_word(word)
        except UserDataError as exc:
            problems.append(str(exc))
            continue
        if clean in folder_of:
            warnings.append(f"{folder_of[clean]!r} and {word!r} are the same word {clean!r}; "
                            "their recordings are learned together")
        folder_of.setdefault(clean, word)
        if clean in existing or clean in (SILENCE, UNKNOWN):
            problems.append(f"{word!r} is already a word of the base model; choose another word")
            continue
        if len(items) < MIN_TAKES:
            problems.append(f"{word!r}: only {len(items)} recording(s); record at least {MIN_TAKES} "
                            f"(about 10 works best)")
            continue
        if len(items) < RECOMMENDED_TAKES:
            warnings.append(f"{word!r}: only {len(items)} recordings; {RECOMMENDED_TAKES} to 10 give a more "
                            "reliable word")
        for index, item in enumerate(items):
            if isinstance(item, np.ndarray):
                name, path = f"{word!r} take {index + 1}", None
                audio = np.asarray(item, dtype=np.float32).reshape(-1)
            else:
                path = Path(item)
                name = str(path)
                try:
                    audio = load_audio(path, sample_rate=sample_rate)
                except AudioError as exc:
                    problems.append(str(exc))
                    continue
            issues = check_recording(audio, sample_rate, max_speech_seconds=clip_seconds)
            if issues:
                problems.extend(f"{name}: {issue}" for issue in issues)
                continue
            recordings.append(Recording(word=clean, path=path, audio=trim_to_speech(audio, sample_rate)))
    if problems:
        count = len(problems)
        raise FinetuneError(f"cannot learn from {where} ({count} problem{'s' if count > 1 else ''}):\n  "
                            + "\n  ".join(problems))
    return recordings, warnings


def _given_and_inside(given: Any, words_dir: Any, folder: str) -> list[Any] | None:
    """The recordings ``given`` (an item or a list), plus the ``folder`` inside a words folder when it holds audio."""
    items: list[Any] = [] if given is None else list(given) if isinstance(given, (list, tuple)) else [given]
    if not isinstance(words_dir, Mapping):
        inside = Path(words_dir).expanduser() / folder
        if inside.is_dir() and _audio_files(inside):
            items.append(inside)
    return items or None


def _read_audio_items(items: Any, sample_rate: int, *, what: str) -> list[tuple[Path | None, bool, np.ndarray]]:
    """Arrays, audio files and folders of them, read at ``sample_rate``: ``(file, in_a_folder, audio)`` each.

    ``what`` names them in the errors (a missing path, an empty folder).
    """
    from speechrnn.audio import load_audio

    if items is None:
        return []
    out: list[tuple[Path | None, bool, np.ndarray]] = []
    for item in list(items) if isinstance(items, (list, tuple)) else [items]:
        if isinstance(item, np.ndarray):
            out.append((None, False, np.asarray(item, dtype=np.float32).reshape(-1)))
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            files = _audio_files(path)
            if not files:
                raise FinetuneError(f"{path}: no audio files in the {what} folder")
        elif path.is_file():
            files = [path]
        else:
            raise FinetuneError(f"{path}: {what} file or folder not found")
        out.extend((file, path.is_dir(), load_audio(file, sample_rate=sample_rate)) for file in files)
    return out


def _load_noise(noise: Any, sample_rate: int) -> list[np.ndarray]:
    """Room-noise recordings: files, folders of files, or arrays; each at least 0.1 s long."""
    out = []
    for file, in_folder, audio in _read_audio_items(noise, sample_rate, what="noise"):
        if file is not None and audio.size < sample_rate // 10 and not in_folder:  # a folder's odd one is skipped
            raise FinetuneError(f"{file}: room recording too short ({audio.size / sample_rate:.2f} s; "
                                "record at least a second of the room; 0.1 s is the least it can use)")
        out.append(audio)
    return [a for a in out if a.size >= sample_rate // 10 and np.all(np.isfinite(a))]


# ------------------------------------------------------------------------------------ augmentation


def _load_others(others: Any, sample_rate: int, clip_samples: int) -> list[np.ndarray]:
    """Other speech in the takes' voice, one piece per stretch of speech (a word, or a phrase up to a clip long).

    The stretches are :func:`speechrnn.trim.speech_stretches`; each is padded by 0.1 s, cut into
    pieces of at most one clip, and kept from 0.1 s up.
    """
    from speechrnn.trim import speech_stretches

    pieces: list[np.ndarray] = []
    pad = round(0.1 * sample_rate)
    for _, _, audio in _read_audio_items(others, sample_rate, what="other words"):
        if not np.all(np.isfinite(audio)):
            continue
        for start, end in speech_stretches(audio, sample_rate):
            begin, end = max(0, start - pad), min(audio.size, end + pad)
            pieces += [audio[at : min(end, at + clip_samples)] for at in range(begin, end, clip_samples)
                       if min(end, at + clip_samples) - at >= sample_rate // 10]
    return pieces


def synthetic_noise(n: int, rng: np.random.Generator, *, rms: float) -> np.ndarray:
    """Background-noise-like noise: white, pink or brown, with a random spectral tilt.

    Parameters
    ----------
    n : int
        Samples.
    rng : np.random.Generator
    rms : float
        RMS of the result (full scale 1.0).

    Returns
    -------
    np.ndarray, shape (n,), float32
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.arange(spectrum.size, dtype=np.float64) + 1.0
    # power spectrum ~ 1 / f**slope: white (0), pink (1), brown (2) or in between
    slope = float(rng.choice([0.0, 1.0, 2.0, rng.uniform(0.0, 2.0)]))
    noise = np.fft.irfft(spectrum / freqs ** (slope / 2.0), n)
    noise = noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12) * rms
    return noise.astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _floor_rms(audio: np.ndarray, sample_rate: int) -> float:
    """RMS of the quietest frames of a take: its background level."""
    from speechrnn.trim import frame_levels_db

    levels, _, _ = frame_levels_db(audio, sample_rate)
    return float(10 ** (np.percentile(levels, 10) / 20))


class _Augmenter:
    """Makes one-second training clips from trimmed takes and noise."""

    def __init__(self, *, sample_rate: int, clip_samples: int, noise: list[np.ndarray], config: FinetuneConfig
                 ) -> None:
        self.sample_rate = sample_rate
        self.n = clip_samples
        self.noise = [np.pad(a, (0, max(0, clip_samples - a.size)), mode="wrap") for a in noise]
        self.config = config
        # background-noise-like synthetic noise at unit RMS: white, pink, brown and in between, 4 s each
        pool_rng = np.random.default_rng(12345)
        self.synthetic = [synthetic_noise(4 * clip_samples, pool_rng, rms=1.0) for _ in range(6)]
        self._floors: dict[int, float] = {}

    def floor(self, take: np.ndarray) -> float:
        """RMS of a take's background (cached per take)."""
        key = id(take)
        if key not in self._floors:
            self._floors[key] = _floor_rms(take, self.sample_rate)
        return self._floors[key]

    def noise_crop(self, rng: np.random.Generator, *, rms: float | None = None) -> np.ndarray:
        """One clip of room noise (or synthetic noise when there is none), at its level or ``rms``."""
        if self.noise and rng.random() < 0.8:
            source = self.noise[int(rng.integers(len(self.noise)))]
            start = int(rng.integers(0, source.size - self.n + 1))
            crop = source[start : start + self.n].copy()
            if rms is not None:
                crop *= rms / max(_rms(crop), 1e-9)
            return crop
        level = rms if rms is not None else float(10 ** rng.uniform(-4.5, -2.0))
        source = self.synthetic[int(rng.integers(len(self.synthetic)))]
        start = int(rng.integers(0, source.size - self.n + 1))
        return source[start : start + self.n] * np.float32(level)

    def word_clip(self, take: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One augmented clip of a take: speed, placement, background, extra noise, gain."""
        cfg = self.config
        floor = self.floor(take)
        speed = rng.uniform(*cfg.speed)
        if abs(speed - 1.0) > 1e-3:
            positions = np.arange(0.0, take.size - 1, speed)
            take = np.interp(positions, np.arange(take.size), take).astype(np.float32)
        if take.size > self.n:
            start = int(rng.integers(0, take.size - self.n + 1))
            take = take[start : start + self.n]
        overhang = int(0.08 * take.size)
        offset = int(rng.integers(-overhang, self.n - take.size + overhang + 1))
        clip = np.zeros(self.n, dtype=np.float32)
        lo, hi = max(0, offset), min(self.n, offset + take.size)
        clip[lo:hi] = take[lo - offset : hi - offset]
        if rng.random() < 0.9:  # background around the word at about its own floor level
            background = self.noise_crop(rng, rms=floor * float(10 ** rng.uniform(-0.3, 0.15)))
            outside = np.ones(self.n, dtype=np.float32)
            outside[lo:hi] = 0.0
            clip += background * outside
        if rng.random() < cfg.noise_prob:
            snr = rng.uniform(*cfg.snr_db)
            clip += self.noise_crop(rng, rms=max(_rms(take), 1e-6) / 10 ** (snr / 20))
        gain = 10 ** (rng.uniform(*cfg.gain_db) / 20)
        return np.clip(clip * gain, -1.0, 1.0)

    def placed(self, take: np.ndarray, position: float, rng: np.random.Generator) -> np.ndarray:
        """An evaluation clip: the take as recorded at ``position`` (0 = start, 1 = end) over its floor."""
        floor = self.floor(take)
        take = take[: self.n]
        offset = round(position * (self.n - take.size))
        clip = self.noise_crop(rng, rms=floor)
        clip[offset : offset + take.size] = take
        return np.clip(clip, -1.0, 1.0)

    def silence_clip(self, rng: np.random.Generator) -> np.ndarray:
        """A clip with no word: room noise at its own level +-12 dB, or synthetic noise."""
        crop = self.noise_crop(rng)
        return np.clip(crop * 10 ** (rng.uniform(-12.0, 12.0) / 20), -1.0, 1.0)


# ------------------------------------------------------------------------------------ embeddings


def _embed_clips(model: nn.Module, log_mel: Any, clips: np.ndarray, *, device: torch.device,
                 batch_size: int = 256, tick: Callable[[int], None] | None = None) -> torch.Tensor:
    """Pooled vectors of one-second clips, float32 ``(n, output_size)`` on the CPU."""
    out = []
    with torch.inference_mode():
        for start in range(0, clips.shape[0], batch_size):
            audio = torch.from_numpy(np.ascontiguousarray(clips[start : start + batch_size])).to(device)
            out.append(model.embed(log_mel(audio)).float().cpu())
            if tick is not None:
                tick(audio.shape[0])
    if not out:
        return torch.empty(0, model.config.output_size)
    return torch.cat(out)


def _data_config(summary: Mapping[str, Any], labels: Sequence[str], data_root: str | os.PathLike[str],
                 per_class: int) -> Any:
    """The DataConfig that rebuilds the base model's classes from a Speech Commands tree."""
    from training.config import DataConfig

    recipe = summary.get("recipe") if isinstance(summary, Mapping) else None
    data = dict(recipe.get("data", {})) if isinstance(recipe, Mapping) else {}
    known = {f.name for f in dataclasses.fields(DataConfig)}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
    words = tuple(label for label in labels if label not in (SILENCE, UNKNOWN))
    kwargs.update(
        data_dir=str(Path(data_root).expanduser()), task="custom", words=words,
        fillers=SILENCE in labels or UNKNOWN in labels, max_per_word=max(per_class, 1),
        extra_unknown_dirs=(), cache_dir=kwargs.get("cache_dir", ""),
    )
    kwargs.pop("reversed_unknown_share", None)
    return DataConfig(**kwargs)


def _bank_from_model(model: nn.Module, *, feature_config: Any, labels: Sequence[str],
                     summary: Mapping[str, Any], data_root: str | os.PathLike[str], split: str,
                     per_class: int, seed: int, augmented_share: float, device: torch.device,
                     progress: bool = True) -> dict[str, torch.Tensor]:
    """Embed ``per_class`` clips of every label from one split of a Speech Commands tree."""
    from speechrnn.features import LogMel
    from training.config import AugmentConfig
    from training.data import KIND_CLIP, KIND_SILENCE, EpochItems, SpeechCommandsData

    data_config = _data_config(summary, labels, data_root, per_class)
    if tuple(data_config.labels) != tuple(labels):
        raise FinetuneError(f"cannot rebuild the classes {list(labels)} from {data_root} "
                            f"(they would be {list(data_config.labels)})")
    data = SpeechCommandsData(data_config, feature_config, seed=seed, progress=progress)
    recipe = summary.get("recipe") if isinstance(summary, Mapping) else None
    aug_known = {f.name for f in dataclasses.fields(AugmentConfig)}
    aug_data = dict(recipe.get("augment", {})) if isinstance(recipe, Mapping) else {}
    augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug_data.items()
                               if k in aug_known})
    dataset = data.split(split, augment=augment, training=True)
    rng = np.random.default_rng([seed, 11])
    kinds, sources, targets = [], [], []
    for index, label in enumerate(labels):
        if label == SILENCE:
            kinds.append(np.full(per_class, KIND_SILENCE))
            sources.append(np.full(per_class, -1))
            targets.append(np.full(per_class, index))
            continue
        if label == UNKNOWN:
            pool = dataset.unknown_rows
        else:
            pool = dataset.word_rows[data.clip_label[dataset.word_rows] == index]
        if pool.size == 0:
            print(f"warning: no {split} clips of {label!r} in {data_root}; the bank lacks it", file=sys.stderr)
            continue
        chosen = rng.choice(pool, size=min(per_class, pool.size), replace=False)
        kinds.append(np.full(chosen.size, KIND_CLIP))
        sources.append(chosen)
        targets.append(np.full(chosen.size, index))
    items = EpochItems(kind=np.concatenate(kinds).astype(np.int64), source=np.concatenate(sources).astype(np.int64),
                       label=np.concatenate(targets).astype(np.int64))
    log_mel = LogMel(feature_config, device=device)
    parts = []
    with torch.inference_mode():
        for start in range(0, len(items), 256):
            chunk = items.take(slice(start, start + 256))
            audio = dataset.waveforms(chunk, rng=rng)
            augmented = np.flatnonzero(rng.random(len(chunk)) < augmented_share)
            if augmented.size:
                audio[augmented] = dataset.augment_waveforms(audio[augmented].clone(), chunk.take(augmented), rng)
            parts.append(model.embed(log_mel(audio.to(device))).float().cpu())
    return {"rehearsal_embeddings": torch.cat(parts).half(), "rehearsal_labels": torch.from_numpy(items.label)}


def build_rehearsal_bank(model_path: str | os.PathLike[str], data_root: str | os.PathLike[str], *,
                         task_split: str = "training", per_class: int = 200, augmented_share: float = 0.5,
                         seed: int = 0, device: str = "cpu", progress: bool = True) -> dict[str, torch.Tensor]:
    """Pooled vectors of a model's own training clips, for exact rehearsal when fine-tuning.

    The classes are rebuilt from the model's labels (and, when its summary holds the training
    recipe, the same held-out words and silence levels): each word from its folder, ``_unknown_``
    from the other folders, ``_silence_`` from ``_background_noise_`` crops at varied levels. A
    share of the clips gets the training augmentation (shift, speed, gain, noise).

    Parameters
    ----------
    model_path : path-like
        The model whose ``embed`` computes the vectors.
    data_root : path-like
        A Speech Commands tree (the one the model was trained on).
    task_split : {"training", "validation", "testing"}
        Which split's clips to use.
    per_class : int
        Clips per class (fewer when a class has fewer).
    augmented_share : float
        Share of the clips given the training augmentation (the rest stay clean).
    seed : int
    device : {"cpu", "cuda", "auto"}
    progress : bool
        Show decoding progress on stderr.

    Returns
    -------
    dict
        ``"rehearsal_embeddings"``: float16 tensor ``(n, output_size)``;
        ``"rehearsal_labels"``: int64 tensor ``(n,)`` of indices into the model's labels.
    """
    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.inference import resolve_device

    checkpoint = load_checkpoint(model_path)
    torch_device = resolve_device(device)
    model = checkpoint.build_model(device=torch_device)
    return _bank_from_model(model, feature_config=checkpoint.feature_config, labels=checkpoint.labels,
                            summary=checkpoint.summary, data_root=data_root, split=task_split,
                            per_class=per_class, seed=seed, augmented_share=augmented_share, device=torch_device,
                            progress=progress)


def add_rehearsal_bank(model_path: str | os.PathLike[str], data_root: str | os.PathLike[str],
                       out_path: str | os.PathLike[str], *, per_class: int = 200, heldout_per_class: int = 100,
                       heldout_split: str = "testing", seed: int = 0, device: str = "cpu",
                       overwrite: bool = False, progress: bool = True) -> Path:
    """Write a copy of a model file that carries a rehearsal bank (and a held-out bank).

    Parameters
    ----------
    model_path : path-like
    data_root : path-like
        The Speech Commands tree the model was trained on.
    out_path : path-like
        The new model file (may be ``model_path`` itself, with ``overwrite=True``).
    per_class : int
        Training-split clips per class in ``extras["rehearsal_*"]``.
    heldout_per_class : int
        Clean (unaugmented) clips per class of ``heldout_split`` in ``extras["heldout_*"]`` (0:
        none); fine-tuning measures built-in accuracy before/after on them.
    heldout_split : {"validation", "testing"}
    seed : int
    device : str
    overwrite : bool
        Replace an existing ``out_path``.
    progress : bool

    Returns
    -------
    pathlib.Path
    """
    from speechrnn.checkpoint import load_checkpoint, save_checkpoint

    out = Path(out_path)
    if out.exists() and not overwrite:
        raise FinetuneError(f"{out}: file already exists (pass --force / overwrite=True to replace it)")
    checkpoint = load_checkpoint(model_path)
    extras = dict(checkpoint.extras)
    extras.update(build_rehearsal_bank(model_path, data_root, task_split="training", per_class=per_class,
                                       seed=seed, device=device, progress=progress))
    if heldout_per_class > 0:
        heldout = build_rehearsal_bank(model_path, data_root, task_split=heldout_split,
                                       per_class=heldout_per_class, augmented_share=0.0, seed=seed + 1, device=device,
                                       progress=progress)
        extras[HELDOUT_KEYS[0]] = heldout["rehearsal_embeddings"]
        extras[HELDOUT_KEYS[1]] = heldout["rehearsal_labels"]
    summary = dict(checkpoint.summary)
    summary["rehearsal_bank"] = {
        "data": str(Path(data_root).expanduser().resolve()), "per_class": per_class,
        "examples": int(extras[BANK_KEYS[1]].numel()),
        "heldout_split": heldout_split if heldout_per_class > 0 else None,
        "heldout_examples": int(extras[HELDOUT_KEYS[1]].numel()) if HELDOUT_KEYS[1] in extras else 0,
    }
    model = checkpoint.build_model()
    return save_checkpoint(out, model=model, feature_config=checkpoint.feature_config, labels=checkpoint.labels,
                           summary=summary, extras=extras, weights_dtype=checkpoint.weights_dtype)


# ------------------------------------------------------------------------------------ the head


class _SplitHead(nn.Module):
    """The old head with extra output rows, trainable as a whole or with the old part frozen."""

    def __init__(self, head: nn.Sequential, n_new: int, *, freeze_old: bool, generator: torch.Generator) -> None:
        super().__init__()
        old = copy.deepcopy(head)
        self.body = nn.Sequential(*list(old.children())[:-1])  # Dropout, Linear, ReLU, Dropout
        self.old_out: nn.Linear = list(old.children())[-1]
        self.new_out = nn.Linear(self.old_out.in_features, n_new)
        with torch.no_grad():
            scale = float(self.old_out.weight.std()) or 0.05
            self.new_out.weight.copy_(torch.randn(self.new_out.weight.shape, generator=generator) * scale)
            self.new_out.bias.fill_(float(self.old_out.bias.min()))
        if freeze_old:
            for p in [*self.body.parameters(), *self.old_out.parameters()]:
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(x)
        return self.old_out(hidden), self.new_out(hidden)

    def merged(self) -> nn.Sequential:
        """One ``nn.Sequential`` shaped like :attr:`SpeechRNN.head`, with ``n_old + n_new`` outputs."""
        old, new = self.old_out, self.new_out
        final = nn.Linear(old.in_features, old.out_features + new.out_features)
        with torch.no_grad():
            final.weight.copy_(torch.cat([old.weight, new.weight]))
            final.bias.copy_(torch.cat([old.bias, new.bias]))
        return nn.Sequential(*[copy.deepcopy(m) for m in self.body.children()], final)


def _train_head(head: nn.Sequential, n_new: int, x: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor | None,
                *, config: FinetuneConfig, freeze_old: bool, seed: int,
                tick: Callable[[float], None] | None = None, should_stop: Callable[[], bool] | None = None,
                ) -> nn.Sequential:
    """Train the extended head on embeddings ``x`` (n, D) with labels ``y`` (n,).

    ``teacher`` holds the old head's logits (n, n_old) for rows to distil (NaN rows are skipped).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead (and contend with the app)
    try:
        return _train_head_steps(head, n_new, x, y, teacher, config=config, freeze_old=freeze_old, seed=seed,
                                 tick=tick, should_stop=should_stop)
    finally:
        torch.set_num_threads(threads)


def _train_head_steps(head: nn.Sequential, n_new: int, x: torch.Tensor, y: torch.Tensor,
                      teacher: torch.Tensor | None, *, config: FinetuneConfig, freeze_old: bool, seed: int,
                      tick: Callable[[float], None] | None, should_stop: Callable[[], bool] | None) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    model = _SplitHead(head, n_new, freeze_old=freeze_old, generator=generator)
    n_classes = model.old_out.out_features + n_new
    counts = torch.bincount(y, minlength=n_classes).float()
    present = counts > 0
    weights = torch.zeros(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0 if freeze_old else config.weight_decay)
    steps_per_epoch = max(1, math.ceil(x.shape[0] / config.batch_size))
    total = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.1)
    has_teacher = None if teacher is None else ~torch.isnan(teacher[:, 0])
    temperature = config.temperature
    soft_targets = None if teacher is None else torch.softmax(teacher / temperature, dim=1)
    model.train()
    for epoch in range(config.epochs):
        if should_stop is not None and should_stop():
            raise FinetuneCancelled("fine-tuning cancelled")
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], config.batch_size):
            index = order[start : start + config.batch_size]
            old_logits, new_logits = model(x[index])
            logits = torch.cat([old_logits, new_logits], dim=1)
            loss = nn.functional.cross_entropy(logits, y[index], weight=weights,
                                               label_smoothing=config.label_smoothing)
            if teacher is not None and config.distill_weight > 0 and not freeze_old:
                rows = has_teacher[index]
                if rows.any():
                    target = soft_targets[index][rows]
                    log_student = torch.log_softmax(old_logits[rows] / temperature, dim=1)
                    kd = nn.functional.kl_div(log_student, target, reduction="batchmean") * temperature**2
                    loss = loss + config.distill_weight * kd
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        if tick is not None:
            tick((epoch + 1) / config.epochs)
    model.eval()
    return model.merged().eval()


def _accuracy(head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float | None:
    if x.shape[0] == 0:
        return None
    with torch.inference_mode():
        return float((head(x).argmax(dim=1) == y).float().mean())


# ------------------------------------------------------------------------------------ fine-tuning


def _split_takes(recordings: list[Recording], fraction: float, rng: np.random.Generator
                 ) -> tuple[list[int], list[int]]:
    """Indices of training and held-out takes, split by take within each word."""
    train, held = [], []
    words = dict.fromkeys(r.word for r in recordings)
    for word in words:
        index = [i for i, r in enumerate(recordings) if r.word == word]
        n_held = max(1, round(len(index) * fraction)) if fraction > 0 else 0
        n_held = min(n_held, len(index) - 2)
        order = rng.permutation(len(index))
        held += [index[i] for i in order[:n_held]]
        train += [index[i] for i in order[n_held:]]
    return sorted(train), sorted(held)


class _Progress:
    """Maps stage-relative progress to the caller's callback and a tqdm bar (shown once work starts)."""

    def __init__(self, callback: ProgressCallback | None, show: bool) -> None:
        self.callback = callback
        self.show = show
        self.bar: Any = None
        self.done = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(1.0, max(self.done, fraction))
        if self.show and self.bar is None and fraction > 0:
            from tqdm import tqdm

            self.bar = tqdm(total=100, desc="teaching", unit="%", file=sys.stderr, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")
        if self.bar is not None:
            self.bar.update(round(100 * fraction) - self.bar.n)
            self.bar.set_postfix_str(message)
        self.done = fraction
        if self.callback is not None:
            self.callback(fraction, message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def finetune(
    *,
    base: str | os.PathLike[str] | None = None,
    words_dir: str | os.PathLike[str] | Mapping[str, Sequence[str | os.PathLike[str] | np.ndarray]],
    out: str | os.PathLike[str],
    noise: str | os.PathLike[str] | np.ndarray | Sequence[Any] | None = None,
    others: str | os.PathLike[str] | np.ndarray | Sequence[Any] | None = None,
    rehearsal_data: str | os.PathLike[str] | None = None,
    config: FinetuneConfig | None = None,
    epochs: int | None = None,
    full: bool | None = None,
    seed: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    show_progress: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> FinetuneReport:
    """Teach a model new words from a few recordings each; write the extended model.

    Parameters
    ----------
    base : path-like, optional
        The model to extend (default: the shipped default model).
    words_dir : path-like or mapping
        ``<word>/*.wav`` folders (``_background_/`` inside is used as room noise), or
        ``{word: [files or arrays at the model's rate]}``; see :func:`load_recordings`.
    out : path-like
        The new model file; an existing file is refused unless ``overwrite``.
    noise : path-like, array or sequence, optional
        Recordings of the user's room (files, folders, arrays): background for the new words'
        clips and ``_silence_`` negatives. Synthetic background-like noise is used besides.
    others : path-like, array or sequence, optional
        Recordings of other speech in the takes' own voice (files, folders, arrays; any length: cut
        into word-sized pieces): ``_unknown_`` examples, so that the new words do not fire on
        anything said in that voice. An ``_other_`` folder inside ``words_dir`` is used too. A
        quarter of the pieces is held out to measure it (``other_false_accept_rate``).
    rehearsal_data : path-like, optional
        A Speech Commands tree with the base model's words, for a base model without a
        rehearsal bank, or for ``full``.
    config : FinetuneConfig, optional
    epochs : int, optional
        Overrides ``config.epochs`` (or ``config.full_epochs`` with ``full``).
    full : bool, optional
        Overrides ``config.full``: fine-tune the whole network (needs ``rehearsal_data``).
    seed : int
    device : {"cpu", "cuda", "auto"}
    overwrite : bool
    progress : callable, optional
        ``progress(fraction, message)``, called from this thread as work advances.
    show_progress : bool
        Show a tqdm bar on stderr.
    should_stop : callable, optional
        Polled between steps; when it returns True the job stops with :class:`FinetuneCancelled`
        and nothing is written.

    Returns
    -------
    FinetuneReport

    Raises
    ------
    FinetuneError
        Bad input, reported before any training: no base model, bad or existing words, too few,
        silent, clipped, too short or too long takes (naming each file), ``out`` exists.
    speechrnn.errors.CheckpointError
        The base model file is unreadable.
    """
    from speechrnn import default_model_path
    from speechrnn.checkpoint import load_checkpoint, save_checkpoint
    from speechrnn.features import LogMel
    from speechrnn.inference import resolve_device

    started = time.perf_counter()
    config = config or FinetuneConfig()
    if full is not None:
        config = dataclasses.replace(config, full=full)
    if epochs is not None:
        config = dataclasses.replace(config, **({"full_epochs": epochs} if config.full else {"epochs": epochs}))
    base_path = Path(base).expanduser() if base is not None else default_model_path()
    if not base_path.is_file():
        hint = "pass --base MODEL" if base is None else "check the path"
        raise FinetuneError(f"{base_path}: no base model to extend ({hint}; train one with speechrnn-train)")
    out = Path(out).expanduser()
    if out.is_dir():
        raise FinetuneError(f"{out}: is a folder; give the new model's file name, e.g. {out / 'my_model.pt'}")
    if out.exists() and not overwrite:
        raise FinetuneError(f"{out}: file already exists (not overwritten; choose another name or pass --force)")
    if config.full and rehearsal_data is None:
        raise FinetuneError("--full needs --rehearsal-data DIR (the base model's Speech Commands tree)")
    report_progress = _Progress(progress, show_progress)
    try:
        return _finetune(
            base_path=base_path, words_dir=words_dir, out=out, noise=noise, others=others,
            rehearsal_data=rehearsal_data,
            config=config, seed=seed, device=resolve_device(device), report=report_progress,
            should_stop=should_stop, started=started, load_checkpoint=load_checkpoint,
            save_checkpoint=save_checkpoint, log_mel_class=LogMel,
        )
    finally:
        report_progress.close()


def _finetune(*, base_path: Path, words_dir: Any, out: Path, noise: Any, others: Any, rehearsal_data: Any,
              config: FinetuneConfig, seed: int, device: torch.device, report: _Progress,
              should_stop: Callable[[], bool] | None, started: float, load_checkpoint: Any, save_checkpoint: Any,
              log_mel_class: Any) -> FinetuneReport:
    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise FinetuneCancelled("fine-tuning cancelled; nothing was written")

    report(0.0, "reading the recordings")
    checkpoint = load_checkpoint(base_path)
    features = checkpoint.feature_config
    sr, n = features.sample_rate, features.clip_samples
    old_labels = tuple(checkpoint.labels)
    recordings, warnings = load_recordings(words_dir, sample_rate=sr, clip_seconds=features.clip_seconds,
                                           existing_labels=old_labels)
    new_words = tuple(dict.fromkeys(r.word for r in recordings))
    labels = old_labels + new_words
    room = _load_noise(_given_and_inside(noise, words_dir, BACKGROUND_FOLDER), sr)
    if not room:
        warnings.append("no recording of the room was given: synthetic background noise was used instead")
    other_items = _given_and_inside(others, words_dir, OTHER_FOLDER)
    other_pieces = _load_others(other_items, sr, n)
    unknown_label = old_labels.index(UNKNOWN) if UNKNOWN in old_labels else -1
    if other_pieces and unknown_label < 0:
        warnings.append("the recordings of other words were not used: the base model has no _unknown_ class")
        other_pieces = []
    elif other_items and not other_pieces:
        warnings.append("the recordings of other words hold no speech loud enough to use")
    has_bank = all(k in checkpoint.extras for k in BANK_KEYS)
    if not has_bank and rehearsal_data is None:
        mode = "frozen-head"
        warnings.append(
            "the base model carries no rehearsal bank and no --rehearsal-data was given: the built-in words' "
            "weights were frozen so they are not forgotten, but the new words were never contrasted with them "
            "and may be confused with built-in words; pass --rehearsal-data DIR for a reliable model"
        )
    else:
        mode = "full" if config.full else "head"
    check_stop()
    report(0.05, "loading the model")
    model = checkpoint.build_model(device=device)
    log_mel = log_mel_class(features, device=device)
    rng = np.random.default_rng([seed, 1])
    train_idx, held_idx = _split_takes(recordings, config.holdout_fraction, rng)
    n_old = len(old_labels)
    word_label = {w: n_old + i for i, w in enumerate(new_words)}
    silence_label = old_labels.index(SILENCE) if SILENCE in old_labels else (
        old_labels.index(UNKNOWN) if UNKNOWN in old_labels else -1)
    # room noise: the first 75% of each recording for training, the rest for measuring false accepts
    room_train = [a[: max(n, int(0.75 * a.size))] for a in room]
    room_held = [a[int(0.75 * a.size):] if a.size - int(0.75 * a.size) >= n else a for a in room]
    augmenter = _Augmenter(sample_rate=sr, clip_samples=n, noise=room_train, config=config)
    held_augmenter = _Augmenter(sample_rate=sr, clip_samples=n, noise=room_held, config=config)

    # ---- clips
    report(0.08, "making training clips")
    take_clips = np.stack([augmenter.word_clip(recordings[i].audio, rng)
                           for i in range(len(recordings)) for _ in range(config.variants_per_take)])
    take_of_clip = np.repeat(np.arange(len(recordings)), config.variants_per_take)
    take_targets = torch.tensor([word_label[recordings[i].word] for i in take_of_clip], dtype=torch.long)
    negatives = np.stack([augmenter.silence_clip(rng) for _ in range(config.noise_examples)]) \
        if silence_label >= 0 and config.noise_examples > 0 else np.zeros((0, n), dtype=np.float32)
    # the user's other words: _unknown_ in the takes' own voice; a quarter of the pieces is held out
    # from the measuring run to say how often the new words fire on them
    variants = config.variants_per_take
    other_clips = np.stack([augmenter.word_clip(p, rng) for p in other_pieces for _ in range(variants)]) \
        if other_pieces else np.zeros((0, n), dtype=np.float32)
    other_of_clip = np.repeat(np.arange(len(other_pieces)), variants)
    other_order = rng.permutation(len(other_pieces))
    other_held = sorted(other_order[: len(other_pieces) // 4].tolist()) if len(other_pieces) >= 4 else []
    other_train = [i for i in range(len(other_pieces)) if i not in other_held]
    positions = (0.1, 0.5, 0.9)
    held_other_clips = np.stack([held_augmenter.placed(other_pieces[i], p, rng) for i in other_held
                                 for p in positions]) if other_held else np.zeros((0, n), dtype=np.float32)
    held_clips = np.stack([held_augmenter.placed(recordings[i].audio, p, rng) for i in held_idx for p in positions]) \
        if held_idx else np.zeros((0, n), dtype=np.float32)
    held_targets = torch.tensor([word_label[recordings[i].word] for i in held_idx for _ in positions],
                                dtype=torch.long)
    held_noise = np.stack([held_augmenter.silence_clip(rng) for _ in range(max(20, config.noise_examples // 4))])

    if mode == "full":
        return _finetune_full(
            checkpoint=checkpoint, model=model, log_mel=log_mel, labels=labels, new_words=new_words,
            recordings=recordings, train_idx=train_idx, held_idx=held_idx, take_clips=take_clips,
            take_of_clip=take_of_clip, take_targets=take_targets,
            negatives=np.concatenate([negatives, other_clips]),
            negative_labels=np.concatenate([np.full(negatives.shape[0], silence_label),
                                            np.full(other_clips.shape[0], unknown_label)]).astype(np.int64),
            held_clips=held_clips, held_targets=held_targets, held_noise=held_noise, rehearsal_data=rehearsal_data,
            config=config, seed=seed, device=device, report=report, check_stop=check_stop, warnings=warnings,
            base_path=base_path, out=out, started=started, save_checkpoint=save_checkpoint,
        )

    # ---- embeddings (the body is frozen: computed once)
    total_clips = (take_clips.shape[0] + negatives.shape[0] + held_clips.shape[0] + held_noise.shape[0]
                   + other_clips.shape[0] + held_other_clips.shape[0])
    done = [0]

    def tick(k: int) -> None:
        done[0] += k
        report(0.1 + 0.5 * done[0] / total_clips, "listening to the takes")
        check_stop()

    take_emb = _embed_clips(model, log_mel, take_clips, device=device, tick=tick)
    neg_emb = _embed_clips(model, log_mel, negatives, device=device, tick=tick)
    held_emb = _embed_clips(model, log_mel, held_clips, device=device, tick=tick)
    held_noise_emb = _embed_clips(model, log_mel, held_noise, device=device, tick=tick)
    other_emb = _embed_clips(model, log_mel, other_clips, device=device, tick=tick)
    held_other_emb = _embed_clips(model, log_mel, held_other_clips, device=device, tick=tick)
    neg_targets = torch.full((neg_emb.shape[0],), silence_label, dtype=torch.long)
    other_targets = torch.full((other_emb.shape[0],), unknown_label, dtype=torch.long)

    # ---- rehearsal bank
    if has_bank:
        bank_x = checkpoint.extras[BANK_KEYS[0]].float()
        bank_y = checkpoint.extras[BANK_KEYS[1]].long()
    elif rehearsal_data is not None:
        report(0.6, "reading the rehearsal data")
        bank = _bank_from_model(model, feature_config=features, labels=old_labels, summary=checkpoint.summary,
                                data_root=rehearsal_data, split="training", per_class=config.per_class,
                                seed=seed, augmented_share=0.5, device=device, progress=report.show)
        bank_x, bank_y = bank["rehearsal_embeddings"].float(), bank["rehearsal_labels"].long()
    else:
        bank_x, bank_y = torch.empty(0, model.config.output_size), torch.empty(0, dtype=torch.long)
    eval_mask: torch.Tensor | None = None  # rows of the bank kept out of the measuring run
    if all(k in checkpoint.extras for k in HELDOUT_KEYS):
        eval_x = checkpoint.extras[HELDOUT_KEYS[0]].float()
        eval_y = checkpoint.extras[HELDOUT_KEYS[1]].long()
    elif bank_x.shape[0]:
        # no separate held-out bank: keep a stratified fifth of the bank out of the measuring run
        perm = torch.from_numpy(np.random.default_rng([seed, 3]).permutation(bank_x.shape[0]))
        eval_mask = torch.zeros(bank_x.shape[0], dtype=torch.bool)
        for label in bank_y.unique():
            rows = perm[bank_y[perm] == label]
            eval_mask[rows[: max(1, rows.numel() // 5)]] = True
        eval_x, eval_y = bank_x[eval_mask], bank_y[eval_mask]
    else:
        eval_x, eval_y = torch.empty(0, model.config.output_size), torch.empty(0, dtype=torch.long)
    old_head = copy.deepcopy(model.head).cpu().eval()
    with torch.inference_mode():
        bank_teacher = old_head(bank_x) if bank_x.shape[0] else torch.empty(0, n_old)
    freeze_old = mode == "frozen-head"

    def assemble(use_takes: list[int], bank_rows: torch.Tensor | None,
                 use_others: list[int]) -> tuple[torch.Tensor, ...]:
        keep = torch.from_numpy(np.isin(take_of_clip, use_takes))
        keep_other = torch.from_numpy(np.isin(other_of_clip, use_others))
        bx, by, bt = bank_x, bank_y, bank_teacher
        if bank_rows is not None:
            bx, by, bt = bx[bank_rows], by[bank_rows], bt[bank_rows]
        x = torch.cat([bx, take_emb[keep], neg_emb, other_emb[keep_other]])
        y = torch.cat([by, take_targets[keep], neg_targets, other_targets[keep_other]])
        nan = torch.full((x.shape[0] - bx.shape[0], n_old), float("nan"))
        teacher = torch.cat([bt, nan]) if bx.shape[0] else None
        return x, y, teacher

    # ---- measuring run: never sees the held-out takes (nor the held-out part of the bank)
    heldout_figures: dict[str, Any] = {"new": None, "per_word": {}, "before": None, "after": None, "fa": None}
    if held_idx:
        report(0.62, "measuring on held-out takes")
        x, y, teacher = assemble(train_idx, None if eval_mask is None else ~eval_mask, other_train)
        head = _train_head(old_head, len(new_words), x, y, teacher, config=config, freeze_old=freeze_old,
                           seed=seed, tick=lambda f: report(0.62 + 0.16 * f, "measuring on held-out takes"),
                           should_stop=should_stop)
        heldout_figures = _measure(head, old_head, held_emb=held_emb, held_targets=held_targets, eval_x=eval_x,
                                   eval_y=eval_y, held_noise_emb=held_noise_emb, new_words=new_words, n_old=n_old,
                                   old_labels=old_labels)
        if held_other_emb.shape[0]:
            with torch.inference_mode():
                heldout_figures["other_fa"] = float((head(held_other_emb).argmax(dim=1) >= n_old).float().mean())

    # ---- the model that is saved: every take, the whole bank
    report(0.8, "learning the new words")
    x, y, teacher = assemble(list(range(len(recordings))), None, list(range(len(other_pieces))))
    head = _train_head(old_head, len(new_words), x, y, teacher, config=config, freeze_old=freeze_old,
                       seed=seed + 1, tick=lambda f: report(0.8 + 0.17 * f, "learning the new words"),
                       should_stop=should_stop)
    check_stop()
    report(0.97, "saving the model")
    new_model = _extended_model(model, head, len(labels))
    extras = _extended_extras(checkpoint.extras, has_bank=has_bank, bank_x=bank_x, bank_y=bank_y,
                              take_emb=take_emb, take_targets=take_targets, config=config, seed=seed)
    takes = {w: sum(r.word == w for r in recordings) for w in new_words}
    held_counts = {w: sum(recordings[i].word == w for i in held_idx) for w in new_words}
    result = FinetuneReport(
        out=out, base=str(base_path), labels=labels, new_words=new_words, takes=takes, heldout_takes=held_counts,
        new_word_accuracy=heldout_figures["new"], new_word_per_word=heldout_figures["per_word"],
        builtin_accuracy_before=heldout_figures["before"], builtin_accuracy_after=heldout_figures["after"],
        builtin_examples=int(eval_y.numel()) if held_idx else 0, false_accept_rate=heldout_figures["fa"],
        mode=mode, seconds=time.perf_counter() - started, warnings=tuple(warnings),
        other_false_accept_rate=heldout_figures.get("other_fa"), other_pieces=len(other_pieces),
    )
    _save(save_checkpoint, out=out, model=new_model, features=features, labels=labels, checkpoint=checkpoint,
          extras=extras, result=result, recordings=recordings, config=config)
    report(1.0, "done")
    return dataclasses.replace(result, seconds=time.perf_counter() - started)


def _measure(head: nn.Module, old_head: nn.Module, *, held_emb: torch.Tensor, held_targets: torch.Tensor,
             eval_x: torch.Tensor, eval_y: torch.Tensor, held_noise_emb: torch.Tensor, new_words: Sequence[str],
             n_old: int, old_labels: Sequence[str]) -> dict[str, Any]:
    """Held-out figures of a head trained without the held-out takes."""
    with torch.inference_mode():
        predicted = head(held_emb).argmax(dim=1) if held_emb.shape[0] else torch.empty(0, dtype=torch.long)
        per_word = {w: float((predicted[held_targets == n_old + i] == n_old + i).float().mean())
                    for i, w in enumerate(new_words) if (held_targets == n_old + i).any()}
        new_acc = float((predicted == held_targets).float().mean()) if held_emb.shape[0] else None
        before = _accuracy(old_head, eval_x, eval_y)
        after = _accuracy(head, eval_x, eval_y)
        fillers = [i for i, label in enumerate(old_labels) if label in (SILENCE, UNKNOWN)]
        negative_x = torch.cat([eval_x[torch.isin(eval_y, torch.tensor(fillers, dtype=torch.long))], held_noise_emb]) \
            if fillers else held_noise_emb
        fa = float((head(negative_x).argmax(dim=1) >= n_old).float().mean()) if negative_x.shape[0] else None
    return {"new": new_acc, "per_word": per_word, "before": before, "after": after, "fa": fa}


def _extended_model(model: nn.Module, head: nn.Sequential, n_classes: int) -> nn.Module:
    """A copy of ``model`` (on the CPU) with ``head`` and ``n_classes`` outputs."""
    from speechrnn.model import SpeechRNN

    config = dataclasses.replace(model.config, n_classes=n_classes)
    new = SpeechRNN(config)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("head.")}
    state.update({f"head.{k}": v.detach().cpu() for k, v in head.state_dict().items()})
    new.load_state_dict(state)
    return new.eval()


def _extended_extras(extras: Mapping[str, torch.Tensor], *, has_bank: bool, bank_x: torch.Tensor,
                     bank_y: torch.Tensor, take_emb: torch.Tensor, take_targets: torch.Tensor,
                     config: FinetuneConfig, seed: int) -> dict[str, torch.Tensor]:
    """The new model's extras: the bank extended with the new words, so a later word keeps them too."""
    out = dict(extras)
    if bank_x.shape[0] == 0:
        return out
    counts = torch.bincount(bank_y)
    per_class = int(counts[counts > 0].float().median()) if counts.numel() else config.per_class
    rng = np.random.default_rng([seed, 5])
    xs, ys = [bank_x], [bank_y]
    for label in take_targets.unique():
        rows = torch.nonzero(take_targets == label).flatten().numpy()
        chosen = rng.choice(rows, size=min(per_class, rows.size), replace=False)
        xs.append(take_emb[chosen])
        ys.append(take_targets[chosen])
    out[BANK_KEYS[0]] = torch.cat(xs).half()
    out[BANK_KEYS[1]] = torch.cat(ys).long()
    return out


def _save(save_checkpoint: Any, *, out: Path, model: nn.Module, features: Any, labels: tuple[str, ...],
          checkpoint: Any, extras: Mapping[str, torch.Tensor], result: FinetuneReport,
          recordings: Sequence[Recording], config: FinetuneConfig) -> None:
    base_summary = dict(checkpoint.summary)
    summary = {
        "task": f"{base_summary.get('task', 'custom')}+taught",
        "labels": list(labels),
        "finetune": {
            **result.as_dict(),
            "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()},
            # the takes by word and file name: a shared model file carries no one's folder layout
            "files": [f"{r.word}/{r.path.name}" for r in recordings if r.path is not None],
            "other_pieces": result.other_pieces,
        },
        "base_model": {
            "path": str(result.base), "labels": list(checkpoint.labels),
            **{k: base_summary[k] for k in ("task", "val_accuracy", "test_accuracy", "trained", "data")
               if k in base_summary},
        },
        # the trained model at the root of a chain of taught words (its figures are the built-in words')
        **({"original_model": base_summary.get("original_model") or base_summary["base_model"]}
           if "base_model" in base_summary else {}),
        "metrics": {
            k: v for k, v in {
                "new_word_accuracy": result.new_word_accuracy,
                "builtin_accuracy_before": result.builtin_accuracy_before,
                "builtin_accuracy_after": result.builtin_accuracy_after,
                "new_word_false_accept_rate": result.false_accept_rate,
                "new_word_other_words_false_accept_rate": result.other_false_accept_rate,
            }.items() if v is not None
        },
        "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if "recipe" in base_summary:
        summary["recipe"] = base_summary["recipe"]
    save_checkpoint(out, model=model, feature_config=features, labels=labels, summary=summary, extras=extras,
                    weights_dtype=checkpoint.weights_dtype)


# ------------------------------------------------------------------------------------ whole network


def _finetune_full(*, checkpoint: Any, model: nn.Module, log_mel: Any, labels: tuple[str, ...],
                   new_words: tuple[str, ...], recordings: list[Recording], train_idx: list[int],
                   held_idx: list[int], take_clips: np.ndarray, take_of_clip: np.ndarray, take_targets: torch.Tensor,
                   negatives: np.ndarray, negative_labels: np.ndarray, held_clips: np.ndarray,
                   held_targets: torch.Tensor,
                   held_noise: np.ndarray, rehearsal_data: Any, config: FinetuneConfig, seed: int,
                   device: torch.device, report: _Progress, check_stop: Callable[[], None], warnings: list[str],
                   base_path: Path, out: Path, started: float, save_checkpoint: Any) -> FinetuneReport:
    """Whole-network fine-tuning on rehearsal audio plus the new words' clips.

    One run only: the held-out takes stay out of training, so the saved model is the measured one.
    """
    from training.config import AugmentConfig
    from training.data import SpeechCommandsData

    features = checkpoint.feature_config
    old_labels = tuple(checkpoint.labels)
    n_old = len(old_labels)
    report(0.1, "reading the rehearsal data")
    data_config = _data_config(checkpoint.summary, old_labels, rehearsal_data, per_class=0)
    data_config = dataclasses.replace(data_config, max_per_word=0)
    data = SpeechCommandsData(data_config, features, seed=seed, progress=report.show)
    recipe = checkpoint.summary.get("recipe") if isinstance(checkpoint.summary, Mapping) else None
    aug_known = {f.name for f in dataclasses.fields(AugmentConfig)}
    aug_data = dict(recipe.get("augment", {})) if isinstance(recipe, Mapping) else {}
    augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in aug_data.items()
                               if k in aug_known})
    train_set = data.split("training", augment=augment, training=True)
    train_set.set_fill(model.feature_mean.detach().cpu())
    eval_set = data.split("testing" if data.clip_split.tolist().count("testing") else "validation", training=False)

    # the extended network: old weights, new output rows
    generator = torch.Generator().manual_seed(seed)
    split_head = _SplitHead(model.head.cpu(), len(new_words), freeze_old=False, generator=generator)
    net = _extended_model(model.cpu(), split_head.merged(), len(labels)).to(device)
    teacher = checkpoint.build_model(device=device).eval()
    keep = np.isin(take_of_clip, train_idx)
    word_clips = torch.from_numpy(take_clips[keep])
    word_targets = take_targets[torch.from_numpy(keep)]
    neg_clips = torch.from_numpy(negatives)
    neg_labels = torch.from_numpy(negative_labels)  # _silence_ for room noise, _unknown_ for the user's other words
    batch = min(config.batch_size, 128)
    share_new = 0.25  # of each batch: new-word clips (and room noise)
    n_rehearsal = int(batch * (1 - share_new))
    body_params = [p for name, p in net.named_parameters() if not name.startswith("head.")]
    optimizer = torch.optim.AdamW([{"params": body_params, "lr": config.full_lr},
                                   {"params": net.head.parameters(), "lr": config.lr}],
                                  weight_decay=config.weight_decay)
    steps_per_epoch = train_set.n_batches(n_rehearsal)
    total = config.full_epochs * steps_per_epoch
    rng = np.random.default_rng([seed, 9])
    step = 0
    for epoch in range(config.full_epochs):
        net.train()
        for frames, targets in train_set.batches(epoch, batch_size=n_rehearsal):
            check_stop()
            pick = rng.integers(0, word_clips.shape[0], batch - n_rehearsal)
            extra_audio = word_clips[pick]
            extra_targets = word_targets[pick]
            if neg_clips.shape[0]:
                k = max(1, (batch - n_rehearsal) // 5)
                rows = torch.from_numpy(rng.integers(0, neg_clips.shape[0], k))
                extra_audio = torch.cat([extra_audio, neg_clips[rows]])
                extra_targets = torch.cat([extra_targets, neg_labels[rows]])
            with torch.no_grad():
                extra_frames = train_set.spec_augment(log_mel(extra_audio.to(device)).cpu(), rng)
            x = torch.cat([frames, extra_frames]).to(device)
            y = torch.cat([targets, extra_targets]).to(device)
            logits = net(x)
            loss = nn.functional.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            if config.distill_weight > 0:
                with torch.no_grad():
                    target = torch.softmax(teacher(x[: frames.shape[0]]) / config.temperature, dim=1)
                log_student = torch.log_softmax(logits[: frames.shape[0], :n_old] / config.temperature, dim=1)
                loss = loss + config.distill_weight * config.temperature**2 * nn.functional.kl_div(
                    log_student, target, reduction="batchmean")
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            step += 1
            report(0.15 + 0.75 * step / max(total, 1), f"fine-tuning the network (epoch {epoch + 1})")
    net.eval()
    report(0.9, "measuring on held-out takes")
    with torch.inference_mode():
        frames, targets = eval_set.all_features()
        before = float((teacher(frames.to(device)).argmax(1).cpu() == targets).float().mean())
        after_logits = net(frames.to(device)).cpu()
        after = float((after_logits.argmax(1) == targets).float().mean())
        fillers = torch.tensor([i for i, label in enumerate(old_labels) if label in (SILENCE, UNKNOWN)],
                               dtype=torch.long)
        fa_parts = [after_logits[torch.isin(targets, fillers)].argmax(1)]
        if held_noise.shape[0]:
            fa_parts.append(net(log_mel(torch.from_numpy(held_noise).to(device))).argmax(1).cpu())
        fa_pred = torch.cat(fa_parts)
        fa = float((fa_pred >= n_old).float().mean()) if fa_pred.numel() else None
        new_acc, per_word = None, {}
        if held_clips.shape[0]:
            predicted = net(log_mel(torch.from_numpy(held_clips).to(device))).argmax(1).cpu()
            new_acc = float((predicted == held_targets).float().mean())
            per_word = {w: float((predicted[held_targets == n_old + i] == n_old + i).float().mean())
                        for i, w in enumerate(new_words) if (held_targets == n_old + i).any()}
    # a fresh bank: the body changed, so old vectors no longer match it
    report(0.94, "updating the rehearsal bank")
    bank = _bank_from_model(net, feature_config=features, labels=old_labels, summary=checkpoint.summary,
                            data_root=rehearsal_data, split="training", per_class=config.per_class, seed=seed,
                            augmented_share=0.5, device=device, progress=False)
    take_emb = _embed_clips(net, log_mel, take_clips, device=device)
    extras = {k: v for k, v in checkpoint.extras.items() if k not in (*BANK_KEYS, *HELDOUT_KEYS)}
    extras = _extended_extras(extras, has_bank=True, bank_x=bank["rehearsal_embeddings"].float(),
                              bank_y=bank["rehearsal_labels"], take_emb=take_emb, take_targets=take_targets,
                              config=config, seed=seed)
    if held_idx:
        warnings.append("whole-network mode: the held-out takes were not used for training")
    takes = {w: sum(recordings[i].word == w for i in train_idx) for w in new_words}
    held_counts = {w: sum(recordings[i].word == w for i in held_idx) for w in new_words}
    result = FinetuneReport(
        out=out, base=str(base_path), labels=labels, new_words=new_words, takes=takes, heldout_takes=held_counts,
        new_word_accuracy=new_acc, new_word_per_word=per_word, builtin_accuracy_before=before,
        builtin_accuracy_after=after, builtin_examples=int(targets.numel()), false_accept_rate=fa, mode="full",
        seconds=time.perf_counter() - started, warnings=tuple(warnings),
    )
    _save(save_checkpoint, out=out, model=net.cpu().eval(), features=features, labels=labels,
          checkpoint=checkpoint, extras=extras, result=result, recordings=recordings, config=config)
    report(1.0, "done")
    return dataclasses.replace(result, seconds=time.perf_counter() - started)


# ------------------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m training.finetune`` argument parser."""
    from training.evaluate import positive_int

    parser = argparse.ArgumentParser(
        prog="python -m training.finetune",
        description="Teach a speechrnn model new words from a few recordings each (seconds on a CPU).",
    )
    parser.add_argument("--base", type=Path, help="model to extend (default: the shipped default model)")
    parser.add_argument("--words", type=Path, help="folder of <word>/*.wav recordings, one folder per new word")
    parser.add_argument("--out", type=Path, required=True,
                        help="the new model file (never overwritten without --force)")
    parser.add_argument("--noise", type=Path, action="append",
                        help="recording(s) of the room, file or folder (repeatable)")
    parser.add_argument("--others", type=Path, action="append",
                        help="recording(s) of other words or speech in the takes' voice, file or folder, any "
                             "length (repeatable; also WORDS/_other_/): the new words learn not to fire on them")
    parser.add_argument("--rehearsal-data", type=Path,
                        help="Speech Commands tree of the base model's words (needed if the base has no "
                             "rehearsal bank)")
    parser.add_argument("--full", action="store_true", help="fine-tune the whole network (needs --rehearsal-data)")
    defaults = FinetuneConfig()
    parser.add_argument("--epochs", type=positive_int, help=f"training epochs (head: default {defaults.epochs}; "
                                                   f"--full: default {defaults.full_epochs})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--make-bank", type=Path, metavar="DATA_DIR",
                        help="instead of learning words: write --base with a rehearsal bank from this "
                             "Speech Commands tree to --out")
    parser.add_argument("--per-class", type=positive_int, default=200,
                        help="rehearsal clips per class (--make-bank)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m training.finetune``; returns the exit status."""
    import json

    args = build_parser().parse_args(argv)
    try:
        if args.make_bank is not None:
            if args.base is None:
                raise FinetuneError("--make-bank needs --base MODEL")
            path = add_rehearsal_bank(args.base, args.make_bank, args.out, per_class=args.per_class, seed=args.seed,
                                      device=args.device, overwrite=args.force, progress=not args.quiet)
            print(f"wrote {path}")
            return 0
        if args.words is None:
            raise FinetuneError("--words DIR is required (a folder of <word>/*.wav recordings)")
        report = finetune(base=args.base, words_dir=args.words, out=args.out, noise=args.noise, others=args.others,
                          rehearsal_data=args.rehearsal_data, epochs=args.epochs, full=args.full or None,
                          seed=args.seed, device=args.device, overwrite=args.force,
                          show_progress=not args.quiet and sys.stderr.isatty())  # a bar in a log is noise
    except (SpeechRNNError, ValueError) as exc:
        print(f"finetune: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("finetune: interrupted; nothing was written", file=sys.stderr)
        return 130
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())

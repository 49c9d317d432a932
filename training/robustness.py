"""Honest out-of-vocabulary and silence figures for any model file.

Accuracy on a test split says little about the two mistakes users notice most: a word the
model never learned fired as a command, and background noise fired as a command. This module
builds two evaluation sets that no training run may touch, and scores a model on them:

- **OOV words** (:func:`build_oov_set`): espeak-ng renderings of :data:`~training.synth.OOV_EVAL_WORDS`
  in :data:`~training.synth.EVAL_VOICES` (words, voices, speeds and pitches that training never
  uses), plus the real recordings of :data:`HELD_OUT_REAL_WORDS` from a Speech Commands folder.
  Every one should be called ``_unknown_``. The training pipeline must leave those real words
  out of every split (``DataConfig.holdout_words = HELD_OUT_REAL_WORDS``).
- **Silence** (:func:`build_silence_set`): one-second noise crops at RMS levels spread
  log-uniformly from about -90 dBFS (plus exact digital zeros and 1-LSB dither) to about
  -10 dBFS, never clipped: crops from the *last* :data:`NOISE_HOLDOUT_FRACTION` of each
  ``_background_noise_`` recording (training must cut its silence and noise only from the rest:
  ``DataConfig.noise_holdout = NOISE_HOLDOUT_FRACTION``) and synthetic white, pink and brown
  noise and mains hum. Every one should be called ``_silence_``.

As a control, :func:`build_command_set` renders the model's own command words in the
evaluation voices: a model that calls *every* synthetic voice ``_unknown_`` (having learned
"synthetic speech is a negative" instead of the words) scores well on synthetic OOV words but
fails this control, so the report shows both.

Run ``python -m training.robustness MODEL --data DIR --out report.json``; the generated sets are
cached under ``~/.cache/speechrnn/robustness/seed-<seed>/`` (``$SPEECHRNN_CACHE`` moves it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import types
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.synth import (
    EVAL_PITCHES,
    EVAL_SPEEDS,
    EVAL_VOICES,
    HELD_OUT_REAL_WORDS,
    NEGATIVE_WORDS,
    OOV_EVAL_WORDS,
    TRAIN_VOICES,
    EspeakError,
    synthesize,
)

if TYPE_CHECKING:
    from speechrnn.inference import Classifier

__all__ = [
    "HELD_OUT_REAL_WORDS",
    "NOISE_HOLDOUT_FRACTION",
    "OOV_PER_WORD",
    "SILENCE_KINDS",
    "SILENCE_LEVEL_RANGE_DB",
    "RobustnessReport",
    "build_command_set",
    "build_oov_set",
    "build_silence_set",
    "default_cache_dir",
    "evaluate_robustness",
    "level_bucket",
    "main",
    "rms_dbfs",
    "run_robustness",
]

#: Fraction at the end of every ``_background_noise_`` recording reserved for evaluation. The
#: training pipeline cuts ``_silence_`` examples and mixing noise only from the first
#: ``1 - NOISE_HOLDOUT_FRACTION`` of each file.
NOISE_HOLDOUT_FRACTION = 0.2
#: RMS range of the silence set's noise crops, in dB relative to full scale (1.0).
SILENCE_LEVEL_RANGE_DB: tuple[float, float] = (-90.0, -10.0)
#: Synthetic renderings per OOV evaluation word (44 words: 660 clips).
OOV_PER_WORD = 15
#: At most this many real recordings of each held-out word (all of them in speech_commands_mini).
REAL_PER_WORD = 100
#: Renderings per command word in the synthetic-voice control set.
COMMAND_PER_WORD = 8
#: Kinds of synthetic silence clip.
SILENCE_KINDS: tuple[str, ...] = ("white", "pink", "brown", "hum", "zeros", "dither")

SYNTHETIC = "synthetic"
REAL = "real"
_AUDIO_SUFFIXES = frozenset({".wav", ".flac"})
_MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1
_PEAK_LIMIT = 0.999
_LSB = 1.0 / 32768.0
_BUCKET_EDGES_DB = (-90, -80, -70, -60, -50, -40, -30, -20, -10)
#: Targets the default model is held to.
TARGETS: Mapping[str, float] = types.MappingProxyType({"oov_unknown_share": 0.90, "silence_share": 0.97})


def default_cache_dir() -> Path:
    """Where the CLI caches the evaluation sets.

    ``$SPEECHRNN_CACHE/robustness``, else ``$XDG_CACHE_HOME/speechrnn/robustness``, else
    ``~/.cache/speechrnn/robustness``: outside the repository.
    """
    if os.environ.get("SPEECHRNN_CACHE"):
        return Path(os.environ["SPEECHRNN_CACHE"]).expanduser() / "robustness"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "speechrnn" / "robustness"


# --------------------------------------------------------------------------------------------
# evaluation sets
# --------------------------------------------------------------------------------------------


def _check_data_root(data_root: str | os.PathLike[str]) -> Path:
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found")
    return root


def _real_word_clips(root: Path, words: Sequence[str], *, per_word: int, seed: int) -> list[Path]:
    """Up to ``per_word`` recordings of each word folder of ``root`` (a seeded sample when more)."""
    out: list[Path] = []
    for word in words:
        folder = root / word
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _AUDIO_SUFFIXES and p.is_file())
        if len(files) > per_word:
            rng = np.random.default_rng([seed, len(word), *word.encode()])
            files = [files[i] for i in np.sort(rng.choice(len(files), size=per_word, replace=False))]
        out.extend(files)
    return out


def build_oov_set(
    out_dir: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None,
    seed: int = 0,
    progress: bool = True,
    words: Sequence[str] = OOV_EVAL_WORDS,
    voices: Sequence[str] = EVAL_VOICES,
    per_word: int = OOV_PER_WORD,
    real_per_word: int = REAL_PER_WORD,
) -> list[tuple[Path, str]]:
    """The held-out out-of-vocabulary evaluation clips.

    Parameters
    ----------
    out_dir : path-like
        Where the synthetic clips are rendered (``out_dir/synthetic/<word>/...``); clips already
        there are reused.
    data_root : path-like or None
        A Speech Commands folder: its recordings of :data:`HELD_OUT_REAL_WORDS` are added (read
        in place, never copied). None: synthetic clips only.
    seed : int
    progress : bool
        Progress bar on stderr while rendering.
    words : sequence of str
        Words to render (default :data:`~training.synth.OOV_EVAL_WORDS`, 44 words); none may
        be a training negative.
    voices : sequence of str
        espeak-ng voices (default :data:`~training.synth.EVAL_VOICES`); none may be a training voice.
    per_word : int
        Renderings per word (default 15: 660 clips).
    real_per_word : int
        At most this many real recordings per held-out word.

    Returns
    -------
    list of (pathlib.Path, str)
        ``(clip, source)``, source ``"synthetic"`` or ``"real"``; the word is the clip's folder name.

    Raises
    ------
    ValueError
        A word is a training negative or a voice a training voice.
    FileNotFoundError
        ``data_root`` is given but is not a folder.
    training.synth.EspeakError
        espeak-ng is missing or failed.
    """
    leaked = sorted(set(words) & set(NEGATIVE_WORDS))
    if leaked:
        raise ValueError(f"OOV evaluation words must never be training negatives: {', '.join(leaked)}")
    leaked = sorted(set(voices) & set(TRAIN_VOICES))
    if leaked:
        raise ValueError(f"OOV evaluation voices must never be training voices: {', '.join(leaked)}")
    out_dir = Path(out_dir).expanduser()
    clips: list[tuple[Path, str]] = []
    if words:
        rendered = synthesize(
            words,
            out_dir / SYNTHETIC,
            voices=voices,
            speeds=EVAL_SPEEDS,
            pitches=EVAL_PITCHES,
            per_word=per_word,
            seed=seed,
            progress=progress,
        )
        clips.extend((path, SYNTHETIC) for path in rendered)
    if data_root is not None:
        root = _check_data_root(data_root)
        real = _real_word_clips(root, HELD_OUT_REAL_WORDS, per_word=real_per_word, seed=seed)
        if not real:
            print(
                f"warning: {root} holds none of the held-out words ({', '.join(HELD_OUT_REAL_WORDS)}); "
                "the OOV set has no real speech",
                file=sys.stderr,
            )
        clips.extend((path, REAL) for path in real)
    return clips


def build_command_set(
    out_dir: str | os.PathLike[str],
    *,
    words: Sequence[str],
    seed: int = 0,
    per_word: int = COMMAND_PER_WORD,
    progress: bool = True,
) -> list[tuple[Path, str]]:
    """The synthetic-voice control: the model's own command words in the evaluation voices.

    Parameters
    ----------
    out_dir : path-like
        Where the clips are rendered (``out_dir/<word>/...``); clips already there are reused.
    words : sequence of str
        The model's command words (labels other than ``_silence_``/``_unknown_``).
    seed : int
    per_word : int
        Renderings per word.
    progress : bool

    Returns
    -------
    list of (pathlib.Path, str)
        ``(clip, expected_label)``.
    """
    rendered = synthesize(
        words,
        Path(out_dir).expanduser(),
        voices=EVAL_VOICES,
        speeds=EVAL_SPEEDS,
        pitches=EVAL_PITCHES,
        per_word=per_word,
        seed=seed,
        progress=progress,
    )
    return [(path, path.parent.name) for path in rendered]


def _stratified_levels(n: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` levels covering [low, high] evenly (one per equal slice, at a random point in it), shuffled."""
    if n == 0:
        return np.zeros(0)
    slots = (np.arange(n) + rng.uniform(0.0, 1.0, size=n)) / n
    return rng.permutation(low + (high - low) * slots)


def _shaped_noise(rng: np.random.Generator, n: int, exponent: float, *, sample_rate: int) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent above 20 Hz (0: white, 1: pink, 2: brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate)
    gain = np.zeros_like(freqs)
    audible = freqs >= 20.0
    gain[audible] = freqs[audible] ** (-exponent / 2.0)
    return np.fft.irfft(spectrum * gain, n=n)


def _hum(rng: np.random.Generator, n: int, *, sample_rate: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz (+-1%) with random harmonics, over a faint white-noise floor."""
    f0 = float(rng.choice([50.0, 60.0])) * rng.uniform(0.99, 1.01)
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    for k in range(1, 8):
        out += rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    out /= np.sqrt(np.mean(out**2))
    return out + 0.03 * rng.standard_normal(n)


def _at_level(audio: np.ndarray, level_db: float) -> np.ndarray:
    """Scale to RMS ``level_db`` dBFS, or lower where that would push a peak past 0.999."""
    audio = audio.astype(np.float64)
    rms = math.sqrt(float(np.mean(audio**2)))
    peak = float(np.max(np.abs(audio)))
    if rms <= 0 or peak <= 0:
        return np.zeros(audio.shape[0], dtype=np.float32)
    gain = min(10.0 ** (level_db / 20.0) / rms, _PEAK_LIMIT / peak)
    return (audio * gain).astype(np.float32)


def _noise_tail(audio: np.ndarray, clip_samples: int) -> np.ndarray | None:
    """The held-out last :data:`NOISE_HOLDOUT_FRACTION` of a recording; None when under one clip."""
    start = round(audio.shape[0] * (1.0 - NOISE_HOLDOUT_FRACTION))  # the cut training uses
    tail = audio[start:]
    return tail if tail.shape[0] >= clip_samples else None


def _manifest_matches(out_dir: Path, params: dict[str, Any]) -> list[Path] | None:
    try:
        manifest = json.loads((out_dir / _MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("params") != params:
        return None
    files = [out_dir / name for name in manifest.get("files", [])]
    return files if files and all(p.is_file() for p in files) else None


def build_silence_set(
    out_dir: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None,
    seed: int = 0,
    count: int = 600,
    level_range_db: tuple[float, float] = SILENCE_LEVEL_RANGE_DB,
    sample_rate: int = 16000,
    clip_seconds: float = 1.0,
) -> list[Path]:
    """One-second noise clips at levels from digital silence to loud background.

    About 2% of the clips are exact zeros and 3% 1-LSB (16-bit) dither; the rest have RMS
    levels spread evenly in dB over ``level_range_db`` (stratified per noise kind, so every
    kind spans the range), scaled down where a peak would pass 0.999, so nothing clips. With
    ``data_root``, half of them are crops of its ``_background_noise_`` recordings taken only
    from the last :data:`NOISE_HOLDOUT_FRACTION` of each; the rest are synthetic white, pink
    and brown noise and mains hum. Files are 32-bit float WAV (levels exact), written to
    ``out_dir/real/<recording>_<i>.wav`` and ``out_dir/synthetic/<kind>_<i>.wav``. A manifest
    makes a repeated call with the same arguments return the existing files.

    Parameters
    ----------
    out_dir : path-like
    data_root : path-like or None
        A Speech Commands folder with ``_background_noise_/``; None: synthetic noise only.
    seed : int
    count : int
        Number of clips (at least 4).
    level_range_db : (float, float)
        RMS range in dBFS.
    sample_rate : int
        In Hz.
    clip_seconds : float

    Returns
    -------
    list of pathlib.Path
        ``count`` clips.

    Raises
    ------
    FileNotFoundError
        ``data_root`` is not a folder.
    ValueError
        ``count`` < 4 or a bad level range.
    speechrnn.errors.AudioError
        A background-noise recording cannot be read.
    """
    import soundfile as sf

    if count < 4:
        raise ValueError(f"count must be at least 4, got {count}")
    low, high = (float(v) for v in level_range_db)
    if not low <= high < 0:
        raise ValueError(f"level_range_db must be (low, high) with low <= high < 0 dBFS, got {level_range_db}")
    out_dir = Path(out_dir).expanduser()
    clip_samples = round(clip_seconds * sample_rate)
    noise_files: list[Path] = []
    if data_root is not None:
        noise_dir = _check_data_root(data_root) / "_background_noise_"
        if noise_dir.is_dir():
            noise_files = sorted(p for p in noise_dir.iterdir() if p.suffix.lower() in _AUDIO_SUFFIXES)
        if not noise_files:
            print(f"warning: {noise_dir} holds no noise recordings; the silence set is synthetic", file=sys.stderr)
    params = {
        "version": _MANIFEST_VERSION,
        "seed": seed,
        "count": count,
        "level_range_db": [low, high],
        "sample_rate": sample_rate,
        "clip_samples": clip_samples,
        "holdout": NOISE_HOLDOUT_FRACTION,
        "noise": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in noise_files],
    }
    cached = _manifest_matches(out_dir, params)
    if cached is not None:
        return cached

    from speechrnn.audio import load_audio

    rng = np.random.default_rng([seed, 5])
    tails: list[tuple[str, np.ndarray]] = []
    for path in noise_files:
        tail = _noise_tail(load_audio(path, sample_rate=sample_rate), clip_samples)
        if tail is None:
            print(f"warning: {path}: shorter than {clip_seconds:g} s after the held-out cut; skipped", file=sys.stderr)
        else:
            tails.append((path.stem, tail))
    n_zero = max(1, round(0.02 * count))
    n_dither = max(1, round(0.03 * count))
    rest = count - n_zero - n_dither
    n_real = rest // 2 if tails else 0
    n_synth = rest - n_real

    clips: list[tuple[str, str, np.ndarray]] = []  # (folder, name prefix, audio)
    for i in range(n_real):  # spread crops evenly over the recordings, then stratify levels per recording
        stem, tail = tails[i % len(tails)]
        for _ in range(20):  # avoid a digitally silent stretch
            start = int(rng.integers(0, tail.shape[0] - clip_samples + 1))
            crop = tail[start : start + clip_samples]
            if np.any(crop != 0):
                break
        clips.append((REAL, stem, crop))
    synth_kinds = SILENCE_KINDS[:4]
    for i in range(n_synth):
        kind = synth_kinds[i % len(synth_kinds)]
        if kind == "hum":
            audio = _hum(rng, clip_samples, sample_rate=sample_rate)
        else:
            exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
            audio = _shaped_noise(rng, clip_samples, exponent, sample_rate=sample_rate)
        clips.append((SYNTHETIC, kind, audio))
    levels: dict[int, float] = {}
    for group in sorted({(folder, prefix) for folder, prefix, _ in clips}):
        members = [i for i, (folder, prefix, _) in enumerate(clips) if (folder, prefix) == group]
        for i, level in zip(members, _stratified_levels(len(members), low, high, rng), strict=True):
            levels[i] = float(level)
    scaled = [(folder, prefix, _at_level(audio, levels[i])) for i, (folder, prefix, audio) in enumerate(clips)]
    scaled += [(SYNTHETIC, "zeros", np.zeros(clip_samples, dtype=np.float32)) for _ in range(n_zero)]
    for _ in range(n_dither):
        lsb = rng.choice(np.array([-1.0, 0.0, 1.0]), size=clip_samples, p=[0.25, 0.5, 0.25])
        scaled.append((SYNTHETIC, "dither", (lsb * _LSB).astype(np.float32)))

    for folder in (REAL, SYNTHETIC):  # remove a previous set's clips (only ours: *.wav in our folders)
        for old in (out_dir / folder).glob("*.wav") if (out_dir / folder).is_dir() else ():
            old.unlink()
    (out_dir / _MANIFEST).unlink(missing_ok=True)
    names: list[str] = []
    for i, (folder, prefix, audio) in enumerate(scaled):
        name = f"{folder}/{prefix}_{i:04d}.wav"
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        sf.write(out_dir / name, audio, sample_rate, subtype="FLOAT")
        names.append(name)
    tmp = out_dir / f".{_MANIFEST}.tmp"
    tmp.write_text(json.dumps({"params": params, "files": names}, indent=1))
    os.replace(tmp, out_dir / _MANIFEST)
    return [out_dir / name for name in names]


# --------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level in dB relative to full scale (1.0); ``-inf`` for all zeros."""
    rms = math.sqrt(float(np.mean(np.asarray(audio, dtype=np.float64) ** 2))) if audio.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def level_bucket(level_db: float) -> str:
    """The 10 dB bucket name of an RMS level: "digital zero", "< -90 dBFS", "-90 to -80 dBFS", ..., ">= -10 dBFS"."""
    if level_db == -math.inf:
        return "digital zero"
    if level_db < _BUCKET_EDGES_DB[0]:
        return f"< {_BUCKET_EDGES_DB[0]} dBFS"
    for lo, hi in pairwise(_BUCKET_EDGES_DB):
        if level_db < hi:
            return f"{lo} to {hi} dBFS"
    return f">= {_BUCKET_EDGES_DB[-1]} dBFS"


def _bucket_order() -> list[str]:
    names = ["digital zero", f"< {_BUCKET_EDGES_DB[0]} dBFS"]
    names += [f"{lo} to {hi} dBFS" for lo, hi in pairwise(_BUCKET_EDGES_DB)]
    return [*names, f">= {_BUCKET_EDGES_DB[-1]} dBFS"]


@dataclass(frozen=True)
class RobustnessReport:
    """How a model treats words it was never taught, and background noise.

    Shares are fractions in [0, 1] (NaN where there were no clips). Breakdowns map a group to
    the share of its clips handled correctly; the matching ``*_totals`` give the clip counts.

    Parameters
    ----------
    model : str
        The model file.
    labels : tuple of str
    oov_total : int
        OOV clips scored.
    oov_unknown_share : float
        Share of them the model called ``_unknown_``.
    oov_confusions : dict of str to int
        What the other OOV clips were taken for: predicted label -> count, most frequent first.
    oov_by_source, oov_source_totals : dict
        Per source (``synthetic``: espeak-ng eval voices; ``real``: held-out recordings).
    oov_by_word : dict of str to float
        ``_unknown_`` share per word, worst first.
    silence_total : int
    silence_share : float
        Share of the silence clips called ``_silence_``.
    silence_confusions : dict of str to int
        What the other silence clips were taken for.
    silence_by_level, silence_level_totals : dict
        Per 10 dB RMS bucket (see :func:`level_bucket`), quietest first.
    silence_by_source, silence_source_totals : dict
        Per source (``real`` background-noise crops, ``synthetic`` noise).
    silence_by_kind : dict of str to float
        Per kind (recording name, or white/pink/brown/hum/zeros/dither).
    command_total : int
        Clips of the synthetic-voice command control (0: not run).
    command_accuracy : float
        Share of them recognised as their command.
    command_confusions : dict of str to int
        What the misrecognised ones were taken for.
    backend : str
        What ran the model (``torch``, ``onnx`` or ``int8``).
    """

    model: str
    labels: tuple[str, ...]
    oov_total: int
    oov_unknown_share: float
    oov_confusions: Mapping[str, int]
    oov_by_source: Mapping[str, float]
    oov_source_totals: Mapping[str, int]
    oov_by_word: Mapping[str, float]
    silence_total: int
    silence_share: float
    silence_confusions: Mapping[str, int]
    silence_by_level: Mapping[str, float]
    silence_level_totals: Mapping[str, int]
    silence_by_source: Mapping[str, float]
    silence_source_totals: Mapping[str, int]
    silence_by_kind: Mapping[str, float]
    command_total: int = 0
    command_accuracy: float = math.nan
    command_confusions: Mapping[str, int] = field(default_factory=dict)
    backend: str = "torch"

    def meets_targets(
        self,
        *,
        oov_target: float = TARGETS["oov_unknown_share"],
        silence_target: float = TARGETS["silence_share"],
    ) -> bool:
        """Whether both shares reach their targets (a set with no clips does not)."""
        return bool(self.oov_unknown_share >= oov_target and self.silence_share >= silence_target)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (NaN becomes None), with the targets and whether they are met."""
        data = _json_safe(asdict(self))
        data["targets"] = dict(TARGETS)
        data["meets_targets"] = self.meets_targets()
        return data

    def format_table(self) -> str:
        """A short human-readable summary."""
        lines = [f"model: {self.model}"]
        lines.append(
            f"OOV words -> _unknown_   {_pct(self.oov_unknown_share)} of {self.oov_total}"
            f"   (target >= {TARGETS['oov_unknown_share']:.0%})"
        )
        for source, share in self.oov_by_source.items():
            lines.append(f"  {source:<22} {_pct(share)} of {self.oov_source_totals[source]}")
        if self.oov_confusions:
            lines.append("  taken for: " + ", ".join(f"{k} {v}" for k, v in list(self.oov_confusions.items())[:8]))
        worst = [(w, s) for w, s in self.oov_by_word.items() if s < 1.0][:6]
        if worst:
            lines.append("  worst words: " + ", ".join(f"{w} {_pct(s)}" for w, s in worst))
        lines.append(
            f"silence -> _silence_     {_pct(self.silence_share)} of {self.silence_total}"
            f"   (target >= {TARGETS['silence_share']:.0%})"
        )
        for bucket, share in self.silence_by_level.items():
            lines.append(f"  {bucket:<22} {_pct(share)} of {self.silence_level_totals[bucket]}")
        for source, share in self.silence_by_source.items():
            lines.append(f"  {source + ' noise':<22} {_pct(share)} of {self.silence_source_totals[source]}")
        weak = sorted(((s, k) for k, s in self.silence_by_kind.items() if s < 1.0))
        if weak:
            lines.append("  weakest kinds: " + ", ".join(f"{k} {_pct(s)}" for s, k in weak))
        if self.silence_confusions:
            lines.append("  taken for: " + ", ".join(f"{k} {v}" for k, v in list(self.silence_confusions.items())[:8]))
        if self.command_total:
            lines.append(
                f"control: synthetic-voice commands recognised {_pct(self.command_accuracy)} of {self.command_total}"
                " (low: the model may reject synthetic speech as such, inflating the synthetic OOV share)"
            )
        lines.append("targets met" if self.meets_targets() else "targets NOT met")
        return "\n".join(lines)


def _pct(share: float) -> str:
    return "   n/a" if math.isnan(share) else f"{share:6.1%}"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _share(hits: int, total: int) -> float:
    return hits / total if total else math.nan


def _grouped(keys: Sequence[str], correct: Sequence[bool], order: Sequence[str] | None = None) -> tuple[dict, dict]:
    totals: Counter[str] = Counter(keys)
    hits: Counter[str] = Counter(k for k, ok in zip(keys, correct, strict=True) if ok)
    names = [k for k in order if k in totals] if order is not None else sorted(totals)
    return {k: hits[k] / totals[k] for k in names}, {k: totals[k] for k in names}


def _predict(
    classifier: Classifier, paths: Sequence[Path], *, batch_size: int, progress: bool, desc: str
) -> tuple[list[str], list[float]]:
    """Predicted label and RMS level (dBFS) of every clip."""
    from tqdm import tqdm

    from speechrnn.audio import load_audio

    cfg = classifier.feature_config
    n = cfg.clip_samples
    labels: list[str] = []
    levels: list[float] = []
    with tqdm(total=len(paths), desc=desc, unit="clip", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(paths), batch_size):
            batch = np.zeros((min(batch_size, len(paths) - start), n), dtype=np.float32)
            for row, path in enumerate(paths[start : start + batch_size]):
                audio = load_audio(path, sample_rate=cfg.sample_rate)
                if audio.shape[0] > n:  # centre-crop an over-long clip, as the training data reader does
                    offset = (audio.shape[0] - n) // 2
                    audio = audio[offset : offset + n]
                batch[row, : audio.shape[0]] = audio
                levels.append(rms_dbfs(audio))
            best = classifier.probabilities(batch).argmax(axis=1)
            labels.extend(classifier.labels[int(i)] for i in best)
            bar.update(batch.shape[0])
    return labels, levels


def _as_pairs(items: Iterable[Path | str | tuple[Path | str, str]], default: str) -> list[tuple[Path, str]]:
    out = []
    for item in items:
        if isinstance(item, tuple):
            out.append((Path(item[0]), str(item[1])))
        else:
            path = Path(item)
            out.append((path, path.parent.name if path.parent.name in (REAL, SYNTHETIC) else default))
    return out


def evaluate_robustness(
    model_path: str | os.PathLike[str] | Classifier,
    *,
    oov_clips: Sequence[tuple[Path, str]] | Sequence[Path],
    silence_clips: Sequence[Path] | Sequence[tuple[Path, str]],
    command_clips: Sequence[tuple[Path, str]] = (),
    device: str = "cpu",
    batch_size: int = 256,
    progress: bool = False,
    name: str | None = None,
) -> RobustnessReport:
    """Score a model on OOV words, silence, and (optionally) the synthetic-voice command control.

    Parameters
    ----------
    model_path : path-like or speechrnn.inference.Classifier
        A model file (or an already loaded classifier).
    oov_clips : sequence of (path, source) or of path
        From :func:`build_oov_set`; a plain path counts as source ``"all"``. The word of a clip
        is its folder name.
    silence_clips : sequence of path or of (path, source)
        From :func:`build_silence_set`; a plain path's source is its folder name (``real`` or
        ``synthetic``), its kind the file name before the last ``_``.
    command_clips : sequence of (path, expected label)
        From :func:`build_command_set` (empty: no control).
    device : {"cpu", "cuda", "auto"}
    batch_size : int
    progress : bool
    name : str, optional
        What messages and the report call the model (default: the file path, or
        ``<loaded model>`` for a classifier).

    Returns
    -------
    RobustnessReport

    Raises
    ------
    ValueError
        The model lacks ``_unknown_`` (with OOV clips) or ``_silence_`` (with silence clips).
    speechrnn.errors.CheckpointError, speechrnn.errors.AudioError
        Unreadable model or clip.
    """
    from speechrnn.inference import SILENCE, UNKNOWN, Classifier

    if isinstance(model_path, Classifier):
        classifier, name = model_path, name or "<loaded model>"
    else:
        classifier, name = Classifier.from_file(model_path, device=device), name or str(model_path)
    labels = tuple(classifier.labels)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    oov = _as_pairs(oov_clips, "all")
    silence = _as_pairs(silence_clips, "all")
    if oov and UNKNOWN not in labels:
        raise ValueError(f"{name}: the model has no {UNKNOWN} class, so OOV rejection cannot be measured")
    if silence and SILENCE not in labels:
        raise ValueError(f"{name}: the model has no {SILENCE} class, so silence cannot be measured")

    oov_pred, _ = _predict(classifier, [p for p, _ in oov], batch_size=batch_size, progress=progress, desc="OOV")
    oov_ok = [label == UNKNOWN for label in oov_pred]
    oov_by_source, oov_source_totals = _grouped([s for _, s in oov], oov_ok)
    by_word, _ = _grouped([p.parent.name for p, _ in oov], oov_ok)
    oov_by_word = dict(sorted(by_word.items(), key=lambda kv: (kv[1], kv[0])))

    sil_pred, sil_levels = _predict(
        classifier, [p for p, _ in silence], batch_size=batch_size, progress=progress, desc="silence"
    )
    sil_ok = [label == SILENCE for label in sil_pred]
    buckets = [level_bucket(level) for level in sil_levels]
    silence_by_level, silence_level_totals = _grouped(buckets, sil_ok, order=_bucket_order())
    silence_by_source, silence_source_totals = _grouped([s for _, s in silence], sil_ok)
    silence_by_kind, _ = _grouped([p.stem.rsplit("_", 1)[0] for p, _ in silence], sil_ok)

    commands = [(Path(p), str(w)) for p, w in command_clips]
    cmd_pred, _ = _predict(
        classifier, [p for p, _ in commands], batch_size=batch_size, progress=progress, desc="commands"
    )
    cmd_ok = [pred == want for pred, (_, want) in zip(cmd_pred, commands, strict=True)]

    return RobustnessReport(
        model=name,
        backend=classifier.backend,
        labels=labels,
        oov_total=len(oov),
        oov_unknown_share=_share(sum(oov_ok), len(oov)),
        oov_confusions=dict(Counter(p for p in oov_pred if p != UNKNOWN).most_common()),
        oov_by_source=oov_by_source,
        oov_source_totals=oov_source_totals,
        oov_by_word=oov_by_word,
        silence_total=len(silence),
        silence_share=_share(sum(sil_ok), len(silence)),
        silence_confusions=dict(Counter(p for p in sil_pred if p != SILENCE).most_common()),
        silence_by_level=silence_by_level,
        silence_level_totals=silence_level_totals,
        silence_by_source=silence_by_source,
        silence_source_totals=silence_source_totals,
        silence_by_kind=silence_by_kind,
        command_total=len(commands),
        command_accuracy=_share(sum(cmd_ok), len(commands)),
        command_confusions=dict(Counter(p for p, ok in zip(cmd_pred, cmd_ok, strict=True) if not ok).most_common()),
    )


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def run_robustness(
    model: str | os.PathLike[str],
    *,
    data_root: str | os.PathLike[str] | None,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    device: str = "cpu",
    backend: str = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
    per_word: int = OOV_PER_WORD,
    silence_count: int = 600,
    command_check: bool = True,
    batch_size: int = 256,
    progress: bool = True,
) -> RobustnessReport:
    """Build (or reuse) the evaluation sets, score ``model`` and optionally write a JSON report.

    Parameters
    ----------
    model : path-like
        Model file.
    data_root : path-like or None
        Speech Commands folder for the real held-out words and background noise.
    out : path-like, optional
        JSON report path (written atomically).
    seed : int
        Keys the cached sets: ``<cache_dir>/seed-<seed>/{oov,silence,commands}``.
    device : str
    backend : {"auto", "torch", "onnx", "int8"}
        What runs the model (see :class:`~speechrnn.inference.Classifier`).
    cache_dir : path-like, optional
        Default :func:`default_cache_dir`.
    per_word : int
        Synthetic renderings per OOV word.
    silence_count : int
    command_check : bool
        Also run the synthetic-voice command control.
    batch_size : int
    progress : bool

    Returns
    -------
    RobustnessReport
    """
    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.inference import SILENCE, UNKNOWN, Classifier

    classifier = Classifier(load_checkpoint(model), device=device, backend=backend)
    # the silence set always has clips, the OOV set whenever words are rendered: say at once,
    # naming the file, when the model cannot be scored on them (before any set is built)
    if SILENCE not in classifier.labels:
        raise ValueError(f"{model}: the model has no {SILENCE} class, so silence cannot be measured")
    if UNKNOWN not in classifier.labels and per_word > 0:
        raise ValueError(f"{model}: the model has no {UNKNOWN} class, so OOV rejection cannot be measured")
    base = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / f"seed-{seed}"
    oov = build_oov_set(base / "oov", data_root=data_root, seed=seed, progress=progress, per_word=per_word)
    silence = build_silence_set(base / "silence", data_root=data_root, seed=seed, count=silence_count)
    commands: list[tuple[Path, str]] = []
    if command_check:
        words = [w for w in classifier.labels if w not in (SILENCE, UNKNOWN) and w.isalpha() and w.islower()]
        if words:
            commands = build_command_set(base / "commands", words=words, seed=seed, progress=progress)
    report = evaluate_robustness(
        classifier,
        oov_clips=oov,
        silence_clips=silence,
        command_clips=commands,
        batch_size=batch_size,
        progress=progress,
        name=str(model),
    )
    if out is not None:
        out = Path(out).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        os.replace(tmp, out)
    return report


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m training.robustness`` argument parser."""
    from speechrnn.onnx_backend import BACKENDS

    parser = argparse.ArgumentParser(
        prog="python -m training.robustness",
        description="Measure how a model rejects words it never learned (-> _unknown_) and background "
        "noise at every level (-> _silence_).",
    )
    parser.add_argument("model", help="model file (.pt)")
    parser.add_argument("--data", help="Speech Commands folder (held-out real words and background noise)")
    parser.add_argument("--out", help="write the report as JSON here")
    parser.add_argument("--seed", type=int, default=0, help="evaluation-set seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="what runs the model (default auto)")
    parser.add_argument("--cache-dir", help=f"where the generated sets are cached (default {default_cache_dir()})")
    parser.add_argument("--per-word", type=int, default=OOV_PER_WORD, help="synthetic renderings per OOV word")
    parser.add_argument("--silence-count", type=int, default=600, help="number of silence clips")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-command-check", action="store_true", help="skip the synthetic-voice command control")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 failure with a one-line message)."""
    from speechrnn.errors import SpeechRNNError

    args = build_parser().parse_args(argv)
    try:
        report = run_robustness(
            args.model,
            data_root=args.data,
            out=args.out,
            seed=args.seed,
            device=args.device,
            backend=args.backend,
            cache_dir=args.cache_dir,
            per_word=args.per_word,
            silence_count=args.silence_count,
            command_check=not args.no_command_check,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
    except (SpeechRNNError, EspeakError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.format_table())
    if args.out:
        print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

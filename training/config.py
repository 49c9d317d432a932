"""The training configuration: frozen dataclasses filled from a TOML file and ``--set`` overrides.

A config file has up to six tables, each optional::

    seed = 0                 # top-level TrainConfig fields
    device = "auto"
    [data]                   # DataConfig: where the clips are and which task
    [augment]                # AugmentConfig: training-only waveform and spectrogram augmentation
    [optim]                  # OptimConfig: epochs, batch size, AdamW, schedule, early stopping
    [model]                  # speechrnn.model.ModelConfig (n_mels and n_classes are filled in)
    [features]               # speechrnn.features.FeatureConfig

Overrides use dotted keys and TOML values: ``--set optim.lr=1e-3 --set model.cell='"lstm"'`` (a
bare word that is not valid TOML is taken as a string, so ``--set model.cell=lstm`` works too, and
a list of words may be written ``--set data.words=yes,no``).

Every value is checked against its field's type (a whole number, a finite number, true/false, a
string, a list of strings, a (low, high) pair): a wrong one is a one-line error naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TASKS: tuple[str, ...] = ("v2-35", "v2-12", "mini", "custom")

#: The words of each built-in task (``custom`` takes ``DataConfig.words``).
TASK_WORDS: Mapping[str, tuple[str, ...]] = types.MappingProxyType({
    "v2-35": (
        "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
        "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
        "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
    ),
    "v2-12": ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"),
    "mini": ("yes", "no", "up", "down", "left", "right", "go", "stop"),
})  # fmt: skip

#: Whether a task adds ``_silence_`` and ``_unknown_`` classes.
TASK_FILLERS: Mapping[str, bool] = types.MappingProxyType(
    {"v2-35": False, "v2-12": True, "mini": True, "custom": True}
)


@dataclass(frozen=True)
class DataConfig:
    """Where the clips come from and how the classes are built.

    Parameters
    ----------
    data_dir : str
        Root of a Speech Commands tree (``<word>/<speaker>_nohash_<n>.wav|flac``, ...).
    task : {"v2-35", "v2-12", "mini", "custom"}
    words : tuple of str
        The command words of a ``custom`` task (only allowed with ``task = "custom"``; the other
        tasks have their own words).
    fillers : bool or None
        Add ``_silence_`` and ``_unknown_`` classes; None uses the task's default.
    holdout_words : tuple of str
        Words left out of every split entirely (kept for out-of-vocabulary evaluation).
    unknown_fraction : float
        Share of each split's examples that are ``_unknown_`` (other words), at most.
    silence_fraction : float
        Share of each split's examples that are ``_silence_`` (background-noise crops).
    silence_rms : tuple of (float, float)
        RMS range of the ``_silence_`` crops, drawn log-uniformly (full scale is 1.0). The noise
        files are stored at RMS 0.002-0.006; real rooms are often much louder.
    silence_zero_prob : float
        Chance that a ``_silence_`` example is digital silence (all zeros).
    synthetic_noise_share : float
        Share of the noise crops (``_silence_`` examples and noise mixed into words) that are
        synthetic coloured noise or mains hum (:func:`training.data.synthetic_noise`) rather
        than crops of the ``_background_noise_`` recordings.
    noise_holdout : float
        Fraction at the end of every background-noise file kept for the validation and testing
        splits; training crops and noise mixing use only the rest.
    extra_unknown_dirs : tuple of str
        Folders of extra ``_unknown_`` audio (e.g. synthetic negatives), used in training only.
    extra_unknown_share : float
        Share of the ``_unknown_`` examples drawn from the extra folders each epoch (when present).
    made_unknown_share : float
        Share of the training ``_unknown_`` examples made from command clips each epoch:
        time-reversed clips, edge fragments and cross-word splices (:func:`training.synth.splice_and_reverse`).
    made_reverse_share : float
        Of those, the share that are reversals.
    made_fragment_share : float
        Of those, the share that are word fragments at the clip's edges (the first or last
        15-40% of a command against the end or the start of the clip, as a live stream's
        window sees a word coming in or going out); the rest are splices.
    synth_per_word : int
        When positive, render this many espeak-ng clips of each training negative word
        (:data:`training.synth.NEGATIVE_WORDS` minus the task's words, with :data:`training.synth.TRAIN_VOICES`)
        into the cache folder on first use and add them to the extra ``_unknown_`` material.
    synth_commands_per_word : int
        When positive, also render this many espeak-ng clips of each command word (training
        voices) as extra training examples of that command, so synthetic speech is not simply
        "unknown" to the model.
    synth_seed : int
        Seed of those renderings.
    max_per_word : int
        Keep at most this many clips of each word per split (0: all); for quick experiments.
    train_on_validation : bool
        Also train on the validation clips: a final refit once every choice has been made on
        validation. The validation split is still scored each epoch but is no longer held out,
        so ``best.pt`` holds the last epoch's weights instead of the best-scoring ones.
    cache_dir : str
        Where decoded audio is cached; empty means ``$SPEECHRNN_CACHE`` or ``~/.cache/speechrnn``.
    """

    data_dir: str = ""
    task: str = "mini"
    words: tuple[str, ...] = ()
    fillers: bool | None = None
    holdout_words: tuple[str, ...] = ()
    unknown_fraction: float = 0.1
    silence_fraction: float = 0.1
    silence_rms: tuple[float, float] = (1e-5, 0.3)
    silence_zero_prob: float = 0.05
    synthetic_noise_share: float = 0.0
    noise_holdout: float = 0.2
    extra_unknown_dirs: tuple[str, ...] = ()
    extra_unknown_share: float = 0.3
    made_unknown_share: float = 0.0
    made_reverse_share: float = 0.5
    made_fragment_share: float = 0.0
    synth_per_word: int = 0
    synth_commands_per_word: int = 0
    synth_seed: int = 0
    max_per_word: int = 0
    train_on_validation: bool = False
    cache_dir: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"data.task must be one of {TASKS}, not {self.task!r}")
        if self.task == "custom" and not self.words:
            raise ValueError("data.task 'custom' needs data.words, the list of command words")
        if self.task != "custom" and self.words:
            raise ValueError(
                f"data.words is only used with data.task = \"custom\" (task {self.task!r} has its own words); "
                "add --set data.task=custom"
            )
        repeated = sorted({w for w in self.words if self.words.count(w) > 1})
        if repeated:
            raise ValueError(f"data.words lists {', '.join(repeated)} more than once")
        fillers = [w for w in self.words if w in ("_silence_", "_unknown_")]
        if fillers:
            raise ValueError(f"data.words must not hold {', '.join(fillers)}: it is added by data.fillers")
        both = [w for w in self.command_words if w in self.holdout_words]
        if both:
            raise ValueError(f"{', '.join(both)}: both a command word and in data.holdout_words (held out of training)")
        if not 0 <= self.unknown_fraction < 1 or not 0 <= self.silence_fraction < 1:
            raise ValueError("data.unknown_fraction and data.silence_fraction must be in [0, 1)")
        if self.unknown_fraction + self.silence_fraction >= 1:
            raise ValueError("data.unknown_fraction + data.silence_fraction must be below 1")
        if not 0 < self.silence_rms[0] <= self.silence_rms[1]:
            raise ValueError("data.silence_rms must be (low, high) with 0 < low <= high")
        if not 0 <= self.noise_holdout < 1:
            raise ValueError("data.noise_holdout must be in [0, 1)")
        for name in (
            "extra_unknown_share",
            "made_unknown_share",
            "made_reverse_share",
            "made_fragment_share",
            "silence_zero_prob",
            "synthetic_noise_share",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"data.{name} must be in [0, 1]")
        if self.made_reverse_share + self.made_fragment_share > 1:
            raise ValueError("data.made_reverse_share + data.made_fragment_share must be at most 1")
        if self.extra_unknown_share + self.made_unknown_share > 1:
            raise ValueError("data.extra_unknown_share + data.made_unknown_share must be at most 1")
        if min(self.synth_per_word, self.synth_commands_per_word, self.max_per_word) < 0:
            raise ValueError("data.synth_per_word, synth_commands_per_word and max_per_word must not be negative")

    @property
    def command_words(self) -> tuple[str, ...]:
        """The command words of the task, in label order."""
        return tuple(self.words) if self.task == "custom" else TASK_WORDS[self.task]

    @property
    def training_splits(self) -> tuple[str, ...]:
        """The splits whose clips the training split draws from (with ``train_on_validation``, two)."""
        return ("training", "validation") if self.train_on_validation else ("training",)

    @property
    def validation_held_out(self) -> bool:
        """Whether the validation split is unseen in training (False for a refit on it)."""
        return "validation" not in self.training_splits

    @property
    def has_fillers(self) -> bool:
        """Whether ``_silence_`` and ``_unknown_`` are classes."""
        return TASK_FILLERS[self.task] if self.fillers is None else bool(self.fillers)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in output order: ``_silence_``, ``_unknown_`` (when used), then the words."""
        fillers = ("_silence_", "_unknown_") if self.has_fillers else ()
        return fillers + self.command_words


@dataclass(frozen=True)
class AugmentConfig:
    """Training-only augmentation; evaluation never applies any of it.

    Parameters
    ----------
    enabled : bool
        Master switch.
    shift_seconds : float
        Largest random time shift either way, in seconds (the gap is zero-filled).
    speed : tuple of (float, float)
        Range of the speed (tempo and pitch) factor, drawn uniformly.
    speed_prob : float
        Chance an example is speed-perturbed.
    gain_db : tuple of (float, float)
        Range of the random gain in dB, drawn uniformly.
    noise_prob : float
        Chance background noise is mixed into a word example.
    noise_snr_db : tuple of (float, float)
        Signal-to-noise ratio range of the mixed noise, in dB, drawn uniformly.
    time_masks, time_mask_frames : int
        SpecAugment: number of time masks and their largest width in frames.
    freq_masks, freq_mask_bands : int
        SpecAugment: number of frequency masks and their largest width in mel bands.
    reverb_prob : float
        Chance a word example is played through a synthetic room (:mod:`training.reverb`) before
        noise is mixed in; 0 (the default) turns room reverberation off.
    reverb_rt60 : tuple of (float, float)
        Range of the room's reverberation time, in seconds, drawn uniformly.
    reverb_drr_db : tuple of (float, float)
        Range of the direct-to-reverberant energy ratio, in dB, drawn uniformly (lower: farther away).
    """

    enabled: bool = True
    shift_seconds: float = 0.1
    speed: tuple[float, float] = (0.9, 1.1)
    speed_prob: float = 0.5
    gain_db: tuple[float, float] = (-10.0, 10.0)
    noise_prob: float = 0.8
    noise_snr_db: tuple[float, float] = (0.0, 30.0)
    time_masks: int = 2
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bands: int = 5
    reverb_prob: float = 0.0
    reverb_rt60: tuple[float, float] = (0.2, 1.0)
    reverb_drr_db: tuple[float, float] = (-3.0, 12.0)

    def __post_init__(self) -> None:
        if not 0 < self.speed[0] <= self.speed[1]:
            raise ValueError("augment.speed must be (low, high) with 0 < low <= high")
        if self.gain_db[0] > self.gain_db[1] or self.noise_snr_db[0] > self.noise_snr_db[1]:
            raise ValueError("augment ranges must be (low, high) with low <= high")
        if self.shift_seconds < 0 or min(self.time_masks, self.freq_masks, self.time_mask_frames,
                                         self.freq_mask_bands) < 0:
            raise ValueError("augment sizes must not be negative")
        if not (0 <= self.speed_prob <= 1 and 0 <= self.noise_prob <= 1 and 0 <= self.reverb_prob <= 1):
            raise ValueError("augment.speed_prob, augment.noise_prob and augment.reverb_prob must be in [0, 1]")
        if not 0 < self.reverb_rt60[0] <= self.reverb_rt60[1] or self.reverb_drr_db[0] > self.reverb_drr_db[1]:
            raise ValueError("augment.reverb_rt60 must be (low, high) seconds with 0 < low <= high, and "
                             "augment.reverb_drr_db (low, high) with low <= high")  # fmt: skip


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation: AdamW with linear warm-up and cosine decay, clipping, early stopping.

    Parameters
    ----------
    epochs : int
    batch_size : int
        Examples per step over all processes (each of ``world`` processes takes ``batch_size // world``).
    lr : float
        Peak learning rate.
    weight_decay : float
    warmup_epochs : float
        Linear warm-up length in epochs.
    min_lr_ratio : float
        The cosine decays to ``lr * min_lr_ratio``.
    grad_clip : float
        Gradient-norm clip; 0 disables it.
    label_smoothing : float
    patience : int
        Stop after this many epochs without a better validation accuracy; 0 disables early stopping.
    amp : {"auto", "bf16", "fp16", "off"}
        Mixed precision. On CUDA ``auto`` is bf16 where supported, else fp16. On the CPU only
        ``bf16`` turns it on (about 1.6x faster training where the CPU has AVX-512 BF16 or AMX,
        slower where it has neither); the other values train in float32 there.
    ema_decay : float
        Exponential moving average of the weights (and normalisation statistics) per step; the
        averaged model is what validation measures and ``best.pt`` holds. 0 disables it. The decay
        ramps up as ``min(ema_decay, (1 + step) / (10 + step))``.
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    patience: int = 0
    amp: str = "auto"
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.ema_decay < 1:
            raise ValueError("optim.ema_decay must be in [0, 1)")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("optim.epochs and optim.batch_size must be at least 1")
        if not self.lr > 0:
            raise ValueError("optim.lr must be positive")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise ValueError("optim.amp must be auto, bf16, fp16 or off")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("optim.label_smoothing must be in [0, 1)")
        if self.patience < 0:
            raise ValueError("optim.patience must be >= 0 (0: no early stopping)")
        if min(self.weight_decay, self.warmup_epochs, self.grad_clip) < 0:
            raise ValueError("optim.weight_decay, optim.warmup_epochs and optim.grad_clip must not be negative")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError("optim.min_lr_ratio must be in [0, 1]")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on.

    Parameters
    ----------
    data, augment, optim : DataConfig, AugmentConfig, OptimConfig
    model : ModelConfig
        ``n_mels`` and ``n_classes`` are replaced by the feature and task values (see :meth:`resolved`).
    features : FeatureConfig
    seed : int
        Seeds python, numpy and torch, and every epoch's data order and augmentation.
    device : {"auto", "cpu", "cuda"}
    threads : int
        torch intra-op threads (0: leave torch's default).
    eval_batch_size : int
    prefetch : int
        Training batches prepared ahead in a background thread (0: prepare them in the loop).
    init_from : str
        A model file (e.g. a finished run's ``best.pt``) whose weights and feature normalisation
        the run starts from instead of a random initialisation: fine-tuning with another recipe.
        Its model and feature settings and labels must equal this run's. Empty: start from scratch.
    """

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    eval_batch_size: int = 512
    prefetch: int = 2
    init_from: str = ""

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, not {self.device!r}")
        if self.eval_batch_size < 1:
            raise ValueError("eval_batch_size must be at least 1")
        if self.threads < 0 or self.prefetch < 0:
            raise ValueError("threads and prefetch must not be negative")

    def resolved(self) -> TrainConfig:
        """This config with ``model.n_mels`` and ``model.n_classes`` set from the features and task."""
        model = dataclasses.replace(self.model, n_mels=self.features.n_mels, n_classes=len(self.data.labels))
        return dataclasses.replace(self, model=model)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (TOML/JSON/checkpoint friendly; tuples become lists)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a nested dict; unknown keys are an error naming the key."""
        return _build(cls, data, "")


_SECTIONS: Mapping[str, type] = types.MappingProxyType({
    "data": DataConfig,
    "augment": AugmentConfig,
    "optim": OptimConfig,
    "model": ModelConfig,
    "features": FeatureConfig,
})


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"config section {prefix.rstrip('.') or '(top level)'} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ValueError(f"unknown config key '{prefix}{key}' (known: {known})")
        if cls is TrainConfig and key in _SECTIONS:
            kwargs[key] = _build(_SECTIONS[key], value, f"{key}.")
        else:
            kwargs[key] = _check_type(f"{prefix}{key}", value, hints[key])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad config {prefix.rstrip('.') or 'value'}: {exc}") from None
    except ValueError as exc:  # the section's own checks: name the section ("model.hidden_size must ...")
        message = str(exc)
        if not prefix or message.startswith(prefix):
            raise
        named = message.split(" ", 1)[0] in fields
        raise ValueError(f"{prefix}{message}" if named else f"{prefix.rstrip('.')}: {message}") from None


def _check_type(key: str, value: Any, hint: Any) -> Any:
    """``value`` as a value of type ``hint`` for config key ``key``; ValueError naming the key if it is not one.

    Whole floats are taken for ints (``1e3``), ints for floats; a string is taken for a list of
    strings when written ``a,b`` or ``[a,b]``.
    """
    shown = repr(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false, not {shown}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise ValueError(f"{key} must be a whole number, not {shown}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"{key} must be a finite number, not {shown}")
            return float(value)
        raise ValueError(f"{key} must be a number, not {shown}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key} must be a string, not {shown}")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        return _check_type(key, value, others[0]) if len(others) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[str, ...]: a list of any length
            if isinstance(value, str) and args[0] is str:
                inner = value.strip()
                if inner.startswith("[") and inner.endswith("]"):
                    inner = inner[1:-1]
                value = [part.strip().strip("\"'") for part in inner.split(",") if part.strip()]
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{key} must be a list, not {shown}")
            return tuple(_check_type(f"{key}[{i}]", item, args[0]) for i, item in enumerate(value))
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{key} must be a list of {len(args)} values, e.g. [low, high], not {shown}")
        return tuple(_check_type(f"{key}[{i}]", item, a) for i, (item, a) in enumerate(zip(value, args, strict=True)))
    return value


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``"x"``), else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted keys, e.g. ``optim.lr=1e-3``) to a nested config dict."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not key=value (e.g. optim.lr=1e-3)")
        parts = key.strip().split(".")
        if len(parts) > 2:
            raise ValueError(f"override key {key!r} has too many dots (section.key at most)")
        if len(parts) == 2:
            section = out.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ValueError(f"cannot set {key.strip()}: '{parts[0]}' is {section!r}, not a table")
            section[parts[1]] = parse_value(value.strip())
        else:
            out[parts[0]] = parse_value(value.strip())
    return out


def shipped_config(name: str) -> Path | None:
    """The path of a config shipped in the package (``training/configs/<name>.toml``), or None.

    Parameters
    ----------
    name : str
        ``"default"``, ``"mini"``, ``"v2-12"``, ... (with or without ``.toml``), or its path in the
        source tree, ``training/configs/mini.toml``; a path into any other folder names no shipped
        config (a mistyped path of the user's must not silently read ours).
    """
    given = Path(name)
    if given.parent.parts not in ((), ("training", "configs")):
        return None
    stem = given.name.removesuffix(".toml")
    path = Path(__file__).resolve().parent / "configs" / f"{stem}.toml"
    return path if stem and path.is_file() else None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a TOML config (defaults when ``path`` is None) and apply ``key=value`` overrides.

    Parameters
    ----------
    path : str or path-like, optional
        A TOML file; a path that does not exist but names a shipped config (``default``, ``mini``,
        ``v2-12``, ``training/configs/v2-35.toml``, ...) reads that one, so the README's commands
        also work from an installed package outside the source tree.
    overrides : sequence of str
        ``key=value`` settings applied on top (``optim.epochs=5``).

    Raises
    ------
    ValueError
        With a one-line message naming the file and the problem.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists() and (shipped := shipped_config(str(path))) is not None:
            path = shipped
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        data.pop("description", None)
        data.pop("command", None)
    try:
        return TrainConfig.from_dict(apply_overrides(data, overrides))
    except ValueError as exc:
        raise ValueError(f"{path or 'config'}: {exc}") from None

"""Speech Commands data for training: the reader, the task's classes, and batched augmentation.

The pipeline, built for speed on a couple of CPU cores:

1. :func:`scan_speech_commands` reads the official layout (``<word>/<speaker>_nohash_<n>.wav|flac``,
   ``_background_noise_/``, ``validation_list.txt``, ``testing_list.txt``; every other clip is
   training data). Without the two lists the data set's own SHA-1 speaker-hash rule splits it.
2. :func:`decode_clips` decodes every clip once into one in-memory int16 array ``(n, clip_samples)``
   (clips under a clip length are zero-padded at the end, as :func:`speechrnn.features.fit_clip`
   does), cached on disk under ``~/.cache/speechrnn`` keyed by a hash of the file list (paths,
   sizes, modification times) and the sample rate. Speech Commands is 16-bit, so int16 is lossless.
3. :class:`ClipDataset` builds one split's examples: the command words, ``_unknown_`` drawn from
   the other words (capped at a share of the examples, re-drawn every training epoch) and
   ``_silence_`` cut from the background-noise files at widely varying levels. A training split
   augments whole batches at once in torch (time shift, speed, room reverberation when the recipe
   asks for it, noise mixing, gain, then SpecAugment time and frequency masks on the log-mel
   frames); validation and testing splits never augment and are drawn once, so they give
   identical features every time.

Features are computed per batch with :class:`speechrnn.features.LogMel`, the function inference uses.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from speechrnn.errors import AudioError, SpeechRNNError
from speechrnn.features import FeatureConfig, LogMel
from training.config import AugmentConfig, DataConfig
from training.reverb import play_in_rooms

SPLITS: tuple[str, ...] = ("training", "validation", "testing")
BACKGROUND_DIR = "_background_noise_"
CLIP_EXTENSIONS: frozenset[str] = frozenset({".wav", ".flac"})
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
_CACHE_VERSION = 1
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1

# Kinds of example.
KIND_CLIP = 0
KIND_SILENCE = 1
KIND_MADE = 2  # made from command clips: reversed or spliced


class DataError(SpeechRNNError):
    """A data folder is missing, empty, or not laid out as Speech Commands."""


@dataclass(frozen=True)
class Clip:
    """One clip of a Speech Commands tree.

    Parameters
    ----------
    path : str
        Relative POSIX path, ``<word>/<name>``.
    word : str
    speaker : str
        The part of the file name before ``_nohash_``.
    split : {"training", "validation", "testing"}
    """

    path: str
    word: str
    speaker: str
    split: str


@dataclass(frozen=True)
class SpeechCommandsTree:
    """A scanned Speech Commands folder.

    Parameters
    ----------
    root : pathlib.Path
    clips : tuple of Clip
        Sorted by path.
    noise_files : tuple of pathlib.Path
        The ``_background_noise_`` recordings, sorted.
    """

    root: Path
    clips: tuple[Clip, ...]
    noise_files: tuple[Path, ...]

    @property
    def words(self) -> tuple[str, ...]:
        """Every word folder that holds clips, sorted."""
        return tuple(sorted({clip.word for clip in self.clips}))

    def counts(self) -> dict[str, dict[str, int]]:
        """Clips per word per split."""
        out: dict[str, dict[str, int]] = {}
        for clip in self.clips:
            out.setdefault(clip.word, dict.fromkeys(SPLITS, 0))[clip.split] += 1
        return out


def hash_split(name: str, *, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """The data set's own split rule: the SHA-1 of the speaker part of a file name.

    Parameters
    ----------
    name : str
        A clip file name (``<speaker>_nohash_<n>.wav``) or path.
    validation_percentage, testing_percentage : float
        Percent of speakers in each held-out split (10 and 10 in the official lists).

    Returns
    -------
    {"training", "validation", "testing"}
    """
    base = os.path.basename(name)
    speaker = re.sub(r"_nohash_.*$", "", base)
    digest = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    percentage = (digest % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def _list_keys(path: Path) -> set[str] | None:
    """Entries of a split list as ``word/stem`` (extension-free, so WAV lists match FLAC trees)."""
    if not path.is_file():
        return None
    keys = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip().replace("\\", "/")
        if line:
            line = posixpath.normpath(line)  # "./yes/a.wav" and "yes//a.wav" name "yes/a.wav"
            keys.add(line.rsplit(".", 1)[0] if "." in line.rsplit("/", 1)[-1] else line)
    return keys


def _warn_unmatched(list_path: Path, keys: set[str] | None, found: set[str]) -> None:
    """Say how many entries of a split list name no clip of the tree (their clips would not be held out)."""
    if not keys:
        return
    missing = sorted(keys - found)
    if missing:
        print(f"warning: {len(missing)} of {len(keys)} entries of {list_path} name no clip in {list_path.parent} "
              f"(first: {missing[0]})", file=sys.stderr)


def scan_speech_commands(root: str | os.PathLike[str]) -> SpeechCommandsTree:
    """Read a Speech Commands folder (v0.01, v0.02 or a subset such as speech_commands_mini).

    Parameters
    ----------
    root : path-like

    Returns
    -------
    SpeechCommandsTree

    Raises
    ------
    DataError
        The folder is missing or holds no ``<word>/*.wav|flac`` clips.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found (expected a Speech Commands tree; see `speechrnn download`)")
    validation = _list_keys(root / "validation_list.txt")
    testing = _list_keys(root / "testing_list.txt")
    if validation is None and testing is None:
        print(f"warning: {root} has no validation_list.txt or testing_list.txt: the splits follow the data set's "
              "hash rule on speaker names", file=sys.stderr)
    elif validation is None or testing is None:
        missing = "validation_list.txt" if validation is None else "testing_list.txt"
        print(f"warning: {root / missing} not found: that split follows the data set's hash rule on speaker names",
              file=sys.stderr)
    clips = []
    found: set[str] = set()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith((".", "_")):
            continue
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in CLIP_EXTENSIONS or not file.is_file():
                continue
            rel = f"{folder.name}/{file.name}"
            key = f"{folder.name}/{file.stem}"
            found.add(key)
            if validation is None and testing is None:
                split = hash_split(file.name)
            elif validation is not None and key in validation:
                split = "validation"
            elif testing is not None and key in testing:
                split = "testing"
            elif validation is None or testing is None:  # one list: the hash rule picks the other split
                hashed = hash_split(file.name)
                split = hashed if hashed == ("validation" if validation is None else "testing") else "training"
            else:
                split = "training"
            speaker = file.name.split("_nohash_")[0]
            clips.append(Clip(path=rel, word=folder.name, speaker=speaker, split=split))
    if not clips:
        raise DataError(f"{root}: no clips found (expected <word>/<speaker>_nohash_<n>.wav or .flac)")
    _warn_unmatched(root / "validation_list.txt", validation, found)
    _warn_unmatched(root / "testing_list.txt", testing, found)
    noise_dir = root / BACKGROUND_DIR
    noise = ()
    if noise_dir.is_dir():
        noise = tuple(sorted(p for p in noise_dir.iterdir() if p.suffix.lower() in CLIP_EXTENSIONS))
    return SpeechCommandsTree(root=root, clips=tuple(clips), noise_files=noise)


def default_cache_dir() -> Path:
    """``$SPEECHRNN_CACHE``, else ``$XDG_CACHE_HOME/speechrnn``, else ``~/.cache/speechrnn``."""
    if os.environ.get("SPEECHRNN_CACHE"):
        return Path(os.environ["SPEECHRNN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "speechrnn"


def _decode_one(path: Path, sample_rate: int, clip_samples: int) -> np.ndarray | str:
    from speechrnn.audio import load_audio

    try:
        audio = load_audio(path, sample_rate=sample_rate)
    except AudioError as exc:
        return str(exc)
    if audio.shape[0] > clip_samples:  # centre-crop the rare over-long clip
        start = (audio.shape[0] - clip_samples) // 2
        audio = audio[start : start + clip_samples]
    out = np.zeros(clip_samples, dtype=np.int16)
    out[: audio.shape[0]] = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    return out


def decode_clips(
    paths: Sequence[Path],
    *,
    sample_rate: int,
    clip_samples: int,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    workers: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode clips once into one int16 array, using (and filling) the on-disk cache.

    Parameters
    ----------
    paths : sequence of pathlib.Path
        Audio files; each at most ``clip_samples`` long (longer ones are centre-cropped).
    sample_rate : int
        Hz; files at other rates are resampled.
    clip_samples : int
        Samples per row; shorter clips are zero-padded at the end.
    cache_dir : path-like, optional
        Cache folder (default :func:`default_cache_dir`); ``""`` also means the default.
    progress : bool
        Show a tqdm bar on stderr while decoding.
    workers : int
        Decoding threads.

    Returns
    -------
    audio : np.ndarray, shape (n, clip_samples), int16
        Full scale is 32767.
    ok : np.ndarray, shape (n,), bool
        False for files that could not be read (their rows are zeros; a warning names them).
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    digest = hashlib.sha1(f"v{_CACHE_VERSION}|{sample_rate}|{clip_samples}".encode())
    for path in paths:
        try:
            st = path.stat()
            digest.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}|missing\n".encode())
    key = digest.hexdigest()[:20]
    audio_file = cache / f"clips-{key}.npy"
    ok_file = cache / f"clips-{key}.ok.npy"
    if audio_file.is_file() and ok_file.is_file():
        try:
            audio = np.load(audio_file)
            ok = np.load(ok_file)
            if audio.shape == (len(paths), clip_samples) and ok.shape == (len(paths),):
                return audio, ok
        except (OSError, ValueError):
            pass  # unreadable cache: decode again
    from tqdm import tqdm

    audio = np.zeros((len(paths), clip_samples), dtype=np.int16)
    ok = np.ones(len(paths), dtype=bool)
    errors = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda p: _decode_one(p, sample_rate, clip_samples), paths, chunksize=32)
        for i, result in enumerate(
            tqdm(results, total=len(paths), desc="decoding clips", unit="clip", disable=not progress, file=sys.stderr)
        ):
            if isinstance(result, str):
                ok[i] = False
                errors.append(result)
            else:
                audio[i] = result
    if errors:
        print(f"warning: skipped {len(errors)} unreadable clip(s), e.g. {errors[0]}", file=sys.stderr)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for target, array in ((audio_file, audio), (ok_file, ok)):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                np.save(handle, array)
            os.replace(tmp, target)
    except OSError as exc:
        print(f"warning: could not write the audio cache in {cache} ({exc})", file=sys.stderr)
    return audio, ok


def find_audio_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Every ``.wav``/``.flac`` file under ``folder`` (recursively), sorted."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in CLIP_EXTENSIONS and p.is_file())


@dataclass(frozen=True)
class EpochItems:
    """The examples of one epoch (or of an evaluation split), index-aligned.

    Parameters
    ----------
    kind : np.ndarray of int, shape (n,)
        ``KIND_CLIP``, ``KIND_SILENCE`` or ``KIND_MADE``.
    source : np.ndarray of int, shape (n,)
        Row of the clip store (clips), of the epoch's bank of made negatives, or of the fixed
        silence bank (evaluation splits); -1 for silence drawn on the fly.
    label : np.ndarray of int, shape (n,)
    """

    kind: np.ndarray
    source: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, index: np.ndarray | slice) -> EpochItems:
        """A subset, by index array or slice."""
        return EpochItems(self.kind[index], self.source[index], self.label[index])


class SpeechCommandsData:
    """A Speech Commands folder decoded for one task: the source of every split's examples.

    Parameters
    ----------
    config : DataConfig
    features : FeatureConfig
    seed : int
        Seeds ``max_per_word`` sampling and the fixed evaluation draws.
    progress : bool
        Show decoding progress.

    Attributes
    ----------
    labels : tuple of str
    tree : SpeechCommandsTree
    audio : np.ndarray, shape (n, clip_samples), int16
        Every decoded clip (command words, unknown words, extra unknown material).
    noise : list of np.ndarray
        The background-noise recordings, float32.
    """

    def __init__(self, config: DataConfig, features: FeatureConfig, *, seed: int = 0, progress: bool = True) -> None:
        if not config.data_dir:
            raise DataError("no data folder given (set data.data_dir or pass --data DIR)")
        self.config = config
        self.features = features
        self.seed = seed
        self.labels = config.labels
        self.tree = scan_speech_commands(config.data_dir)
        words = config.command_words
        present = set(self.tree.words)
        missing = [w for w in words if w not in present]
        if len(missing) == len(words):
            raise DataError(f"{self.tree.root}: none of the task's words ({', '.join(words)}) has a folder")
        if missing:
            raise DataError(
                f"{self.tree.root}: no clips of {', '.join(missing)} (every command word needs a folder of clips; "
                "check data.words or data.task)"
            )
        label_of = {w: i for i, w in enumerate(self.labels)}
        unknown_label = label_of.get(UNKNOWN, -1)
        holdout = set(config.holdout_words)
        rng = np.random.default_rng([seed, 7])
        rows: list[Clip] = []
        row_label: list[int] = []
        by_group: dict[tuple[str, str], list[Clip]] = {}
        for clip in self.tree.clips:
            if clip.word in holdout:
                continue
            if clip.word in label_of or (config.has_fillers and unknown_label >= 0):
                by_group.setdefault((clip.word, clip.split), []).append(clip)
        for (word, _split), clips in sorted(by_group.items()):
            if config.max_per_word and len(clips) > config.max_per_word:
                keep = np.sort(rng.choice(len(clips), size=config.max_per_word, replace=False))
                clips = [clips[i] for i in keep]
            rows.extend(clips)
            row_label.extend([label_of.get(word, unknown_label)] * len(clips))
        extra: list[Path] = []
        if config.synth_per_word and config.has_fillers:
            extra.extend(self._synthesize(progress=progress))
        for folder in config.extra_unknown_dirs:
            extra.extend(find_audio_files(folder))
        spoken = self._synthesize(progress=progress, commands=True) if config.synth_commands_per_word else []
        spoken_label = [label_of[p.parent.name] for p in spoken]
        paths = [self.tree.root / clip.path for clip in rows] + extra + spoken
        audio, ok = decode_clips(
            paths,
            sample_rate=features.sample_rate,
            clip_samples=features.clip_samples,
            cache_dir=config.cache_dir or None,
            progress=progress,
        )
        self.audio = audio
        self.clips = tuple(rows)
        self.clip_label = np.asarray(row_label + [unknown_label] * len(extra) + spoken_label, dtype=np.int64)
        # extra _unknown_ material and synthetic commands are training-only
        self.clip_split = np.asarray([c.split for c in rows] + ["extra"] * len(extra) + ["training"] * len(spoken))
        self.clip_is_word = np.asarray([c.word in label_of for c in rows] + [False] * len(extra) + [True] * len(spoken))
        self.ok = ok
        self.extra_paths = tuple(extra)
        self.noise = [self._load_noise(p) for p in self.tree.noise_files]
        if config.has_fillers and config.silence_fraction > 0 and not self.noise:
            print(
                f"warning: {self.tree.root} has no {BACKGROUND_DIR}/; _silence_ examples will be digital silence",
                file=sys.stderr,
            )

    def _synthesize(self, *, progress: bool, commands: bool = False) -> list[Path]:
        """Render (or reuse from the cache) espeak-ng clips: the task's negatives, or its commands."""
        from training import synth

        cfg = self.config
        if commands:
            words = cfg.command_words
            per_word, folder = cfg.synth_commands_per_word, "espeak-commands"
        else:
            words = synth.negative_words_for(cfg.command_words)
            words = tuple(w for w in words if w not in set(cfg.holdout_words))
            per_word, folder = cfg.synth_per_word, "espeak-negatives"
        cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
        try:
            return synth.synthesize(
                words,
                cache / f"{folder}-{self.features.sample_rate}",
                per_word=per_word,
                seed=cfg.synth_seed,
                sample_rate=self.features.sample_rate,
                clip_seconds=self.features.clip_seconds,
                progress=progress,
            )
        except synth.EspeakError as exc:
            print(f"warning: no synthetic {'command' if commands else 'negative'} clips ({exc})", file=sys.stderr)
            return []

    def _load_noise(self, path: Path) -> np.ndarray:
        from speechrnn.audio import load_audio

        audio = load_audio(path, sample_rate=self.features.sample_rate)
        if audio.shape[0] < self.features.clip_samples:
            audio = np.pad(audio, (0, self.features.clip_samples - audio.shape[0]), mode="wrap")
        return audio.astype(np.float32)

    def noise_segments(self, split: str) -> list[np.ndarray]:
        """The parts of the noise recordings a split may use (training: the head; others: the tail)."""
        n = self.features.clip_samples
        out = []
        for audio in self.noise:
            cut = round(audio.shape[0] * (1.0 - self.config.noise_holdout))
            if self.config.noise_holdout <= 0:
                segment = audio
            else:
                segment = audio[:cut] if split == "training" else audio[cut:]
            if segment.shape[0] < n:  # a short file: fall back to the whole recording
                segment = audio
            out.append(segment)
        return out

    def split(self, name: str, *, augment: AugmentConfig | None = None, training: bool | None = None) -> ClipDataset:
        """One split's examples.

        Parameters
        ----------
        name : {"training", "validation", "testing"}
        augment : AugmentConfig, optional
            Augmentation for a training split (None: none).
        training : bool, optional
            Re-draw ``_unknown_`` every epoch and augment; default: ``name == "training"``.
        """
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {name!r}")
        return ClipDataset(self, name, augment=augment, training=name == "training" if training is None else training)


class ClipDataset:
    """One split of a task: its examples, and batches of features made from them.

    Parameters
    ----------
    data : SpeechCommandsData
    split : {"training", "validation", "testing"}
    augment : AugmentConfig, optional
        Used only when ``training``.
    training : bool
        Training mode: ``_unknown_`` (and silence crops) re-drawn every epoch, augmentation on.
        Otherwise one fixed draw and no augmentation: identical features on every call.
    """

    def __init__(self, data: SpeechCommandsData, split: str, *, augment: AugmentConfig | None, training: bool) -> None:
        self.data = data
        self.split = split
        self.training = training
        self.augment = augment if (training and augment is not None and augment.enabled) else None
        self.labels = data.labels
        self.features = data.features
        cfg = data.config
        in_split = np.isin(data.clip_split, cfg.training_splits if split == "training" else [split]) & data.ok
        self.word_rows = np.flatnonzero(in_split & data.clip_is_word)
        self.unknown_rows = np.flatnonzero(in_split & ~data.clip_is_word)
        extra = np.flatnonzero((data.clip_split == "extra") & data.ok)
        self.extra_rows = extra if training else np.empty(0, dtype=np.int64)
        self.noise = [torch.from_numpy(s) for s in data.noise_segments(split)]
        self.silence_label = self.labels.index(SILENCE) if SILENCE in self.labels else -1
        self.unknown_label = self.labels.index(UNKNOWN) if UNKNOWN in self.labels else -1
        n_words = len(self.word_rows)
        share = 1.0 - cfg.unknown_fraction - cfg.silence_fraction
        if cfg.has_fillers and n_words:
            total = n_words / share
            self.n_silence = round(total * cfg.silence_fraction)
            pool = len(self.unknown_rows) + len(self.extra_rows) + (n_words if training else 0)
            self.n_unknown = min(round(total * cfg.unknown_fraction), pool)
        else:
            self.n_silence = self.n_unknown = 0
        self.n_made = 0
        if training and cfg.made_unknown_share > 0 and len(self.word_rows) >= 2:
            self.n_made = round(self.n_unknown * cfg.made_unknown_share)
        self.n_extra = min(len(self.extra_rows), round(self.n_unknown * cfg.extra_unknown_share))
        self.n_extra = min(self.n_extra, self.n_unknown - self.n_made)
        self.n_real_unknown = min(len(self.unknown_rows), self.n_unknown - self.n_made - self.n_extra)
        # a short real pool is topped up from the extra material
        self.n_extra = min(len(self.extra_rows), self.n_unknown - self.n_made - self.n_real_unknown)
        self.n_unknown = self.n_real_unknown + self.n_extra + self.n_made
        self._made_epoch: int | None = None
        self._made_bank = torch.zeros(0, self.features.clip_samples)
        self.log_mel = LogMel(self.features)
        self.fill = torch.zeros(self.features.n_mels)
        self.rng = np.random.default_rng([data.seed, SPLITS.index(split), 0])
        self._fixed_items: EpochItems | None = None
        self._silence_bank: torch.Tensor | None = None
        self._cache: dict[tuple[object, ...], torch.Tensor] = {}
        if not training:
            rng = np.random.default_rng([data.seed, SPLITS.index(split), 1])
            self._fixed_items = self._draw(rng)
            silence = self._fixed_items.kind == KIND_SILENCE
            self._fixed_items.source[silence] = np.arange(int(silence.sum()))
            self._silence_bank = self._silence(int(silence.sum()), rng)

    def __len__(self) -> int:
        return len(self.word_rows) + self.n_unknown + self.n_silence

    def set_fill(self, fill: torch.Tensor) -> None:
        """The per-band value SpecAugment masks write (the model's feature mean, so masked = 0 after
        normalisation); shape ``(n_mels,)``."""
        self.fill = fill.detach().float().cpu()

    # -- the examples ------------------------------------------------------------------------

    def _draw(self, rng: np.random.Generator) -> EpochItems:
        words = self.word_rows
        kinds = [np.full(len(words), KIND_CLIP)]
        sources = [words]
        labels = [self.data.clip_label[words]]
        if self.n_unknown:
            real = rng.choice(self.unknown_rows, size=self.n_real_unknown, replace=False)
            extra = rng.choice(self.extra_rows, size=self.n_extra, replace=False)
            made = np.arange(self.n_made)
            kinds += [np.full(len(real) + len(extra), KIND_CLIP), np.full(len(made), KIND_MADE)]
            sources += [real, extra, made]
            labels.append(np.full(self.n_unknown, self.unknown_label))
        if self.n_silence:
            kinds.append(np.full(self.n_silence, KIND_SILENCE))
            sources.append(np.full(self.n_silence, -1))
            labels.append(np.full(self.n_silence, self.silence_label))
        return EpochItems(
            kind=np.concatenate(kinds).astype(np.int64),
            source=np.concatenate(sources).astype(np.int64),
            label=np.concatenate(labels).astype(np.int64),
        )

    def items(self, epoch: int = 0) -> EpochItems:
        """The examples of ``epoch`` in a fixed order (training: ``_unknown_`` re-drawn per epoch)."""
        if self._fixed_items is not None:
            return self._fixed_items
        return self._draw(np.random.default_rng([self.data.seed, SPLITS.index(self.split), 2, epoch]))

    def prepare_epoch(self, epoch: int) -> None:
        """Make this epoch's negatives from command clips (reversals, fragments, splices), if configured.

        Deterministic in (seed, epoch); called by :meth:`batches` and, lazily, by :meth:`waveforms`.
        """
        if self._made_epoch == epoch or self.n_made == 0:
            self._made_epoch = epoch
            return
        from training.synth import splice_and_reverse

        rng = np.random.default_rng([self.data.seed, SPLITS.index(self.split), 6, epoch])
        n_source = min(len(self.word_rows), max(2 * self.n_made, 64))
        rows = np.sort(rng.choice(self.word_rows, size=n_source, replace=False))
        clips = self.data.audio[rows].astype(np.float32) / 32767.0
        words = [self.labels[i] for i in self.data.clip_label[rows]]
        cfg = self.data.config
        fragments = cfg.made_fragment_share
        try:
            made = splice_and_reverse(clips, rng, count=self.n_made, labels=words,
                                      reverse_share=cfg.made_reverse_share, fragment_share=fragments)  # fmt: skip
        except ValueError:  # e.g. a single command word: no splices, the rest reversals
            made = splice_and_reverse(clips, rng, count=self.n_made, reverse_share=1.0 - fragments,
                                      fragment_share=fragments)  # fmt: skip
        self._made_bank = torch.from_numpy(np.ascontiguousarray(made, dtype=np.float32))
        self._made_epoch = epoch

    def class_counts(self, epoch: int = 0) -> dict[str, int]:
        """Examples per label."""
        counts = np.bincount(self.items(epoch).label, minlength=len(self.labels))
        return {label: int(n) for label, n in zip(self.labels, counts, strict=True)}

    # -- audio -------------------------------------------------------------------------------

    def _silence(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``n`` background-noise crops at log-uniform RMS levels (some digital silence), (n, N)."""
        cfg = self.data.config
        length = self.features.clip_samples
        out = torch.zeros(n, length)
        if n == 0 or not self.noise:
            return out
        crops = self._noise_crops(n, rng)
        rms = crops.square().mean(dim=1).sqrt().clamp_min(1e-8)
        low, high = np.log(cfg.silence_rms[0]), np.log(cfg.silence_rms[1])
        target = torch.from_numpy(np.exp(rng.uniform(low, high, size=n))).float()
        out = crops * (target / rms)[:, None]
        zero = torch.from_numpy(rng.random(n) < cfg.silence_zero_prob)
        out[zero] = 0.0
        return out.clamp(-1.0, 1.0)

    def _noise_crops(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``n`` one-clip noise crops, ``(n, clip_samples)``: from the split's part of the recordings,
        or (a ``data.synthetic_noise_share`` of them, and all when there are no recordings)
        synthetic noise from :func:`synthetic_noise`."""
        length = self.features.clip_samples
        out = torch.empty(n, length)
        share = self.data.config.synthetic_noise_share if self.noise else 1.0
        synthetic = rng.random(n) < share
        if synthetic.any():
            out[torch.from_numpy(synthetic)] = synthetic_noise(
                int(synthetic.sum()), length, rng, sample_rate=self.features.sample_rate
            )
        recorded = np.flatnonzero(~synthetic)
        if recorded.size:
            sizes = np.array([segment.shape[0] for segment in self.noise], dtype=np.float64)
            which = rng.choice(len(self.noise), size=recorded.size, p=sizes / sizes.sum())
            for i, w in zip(recorded, which, strict=True):
                start = int(rng.integers(0, self.noise[w].shape[0] - length + 1))
                out[i] = self.noise[w][start : start + length]
        return out

    def waveforms(self, items: EpochItems, *, rng: np.random.Generator | None = None) -> torch.Tensor:
        """The (clean) audio of ``items``, float32 ``(batch, clip_samples)``, before augmentation."""
        rng = self.rng if rng is None else rng
        store = self.data.audio
        out = torch.from_numpy(store[np.maximum(items.source, 0)].astype(np.float32) / 32767.0)
        made = np.flatnonzero(items.kind == KIND_MADE)
        if made.size:
            if self._made_epoch is None:
                self.prepare_epoch(0)
            out[made] = self._made_bank[items.source[made]]
        silence = np.flatnonzero(items.kind == KIND_SILENCE)
        if silence.size:
            if self._silence_bank is not None:
                out[silence] = self._silence_bank[items.source[silence]]
            else:
                out[silence] = self._silence(silence.size, rng)
        return out

    def augment_waveforms(self, audio: torch.Tensor, items: EpochItems, rng: np.random.Generator) -> torch.Tensor:
        """Batched waveform augmentation: speed and shift (one interpolation), room reverberation, noise, gain.

        Parameters
        ----------
        audio : torch.Tensor, shape (batch, n)
        items : EpochItems
            Which examples are silence (no noise is mixed into those).
        rng : np.random.Generator

        Returns
        -------
        torch.Tensor, shape (batch, n)
        """
        aug = self.augment
        if aug is None:
            return audio
        batch, n = audio.shape
        sr = self.features.sample_rate
        rate = np.where(rng.random(batch) < aug.speed_prob, rng.uniform(aug.speed[0], aug.speed[1], batch), 1.0)
        max_shift = aug.shift_seconds * sr
        shift = rng.uniform(-max_shift, max_shift, batch)
        if np.any(rate != 1.0) or np.any(shift != 0.0):
            # output[t] = input[(t - c) * rate + c - shift], linear interpolation, zeros outside
            t = torch.arange(n, dtype=torch.float32)
            centre = (n - 1) / 2.0
            rate_t = torch.from_numpy(rate).float()[:, None]
            offset = torch.from_numpy(centre - shift).float()[:, None]
            pos = ((t[None, :] - centre) * rate_t + offset) * (2.0 / (n - 1)) - 1.0
            grid = torch.stack([pos, torch.zeros_like(pos)], dim=-1)[:, None]  # (batch, 1, n, 2)
            audio = F.grid_sample(
                audio[:, None, None, :], grid, mode="bilinear", padding_mode="zeros", align_corners=True
            )[:, 0, 0]
        words = items.kind != KIND_SILENCE
        if aug.reverb_prob > 0:  # no draws when off: recipes without reverberation stay as they were
            wet = np.flatnonzero(words & (rng.random(batch) < aug.reverb_prob))
            if wet.size:
                rt60 = rng.uniform(aug.reverb_rt60[0], aug.reverb_rt60[1], wet.size)
                drr_db = rng.uniform(aug.reverb_drr_db[0], aug.reverb_drr_db[1], wet.size)
                play_in_rooms(audio, wet, rt60, drr_db, sample_rate=sr, rng=rng)
        mix = np.flatnonzero(words & (rng.random(batch) < aug.noise_prob))
        if mix.size and self.noise:
            noise = self._noise_crops(mix.size, rng)
            speech_rms = audio[mix].square().mean(dim=1).sqrt()
            noise_rms = noise.square().mean(dim=1).sqrt().clamp_min(1e-8)
            snr = torch.from_numpy(rng.uniform(aug.noise_snr_db[0], aug.noise_snr_db[1], mix.size)).float()
            scale = speech_rms / noise_rms / torch.pow(10.0, snr / 20.0)
            audio[mix] = audio[mix] + noise * scale[:, None]
        gain = torch.from_numpy(np.power(10.0, rng.uniform(aug.gain_db[0], aug.gain_db[1], batch) / 20.0)).float()
        return (audio * gain[:, None]).clamp(-1.0, 1.0)

    def spec_augment(self, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """SpecAugment time and frequency masks, filled with :meth:`set_fill`'s per-band value.

        Parameters
        ----------
        frames : torch.Tensor, shape (batch, time, n_mels)
        rng : np.random.Generator

        Returns
        -------
        torch.Tensor, shape (batch, time, n_mels)
        """
        aug = self.augment
        if aug is None:
            return frames
        batch, time, bands = frames.shape
        mask = torch.zeros(batch, time, bands, dtype=torch.bool)
        steps = torch.arange(time)[None, :]
        for _ in range(aug.time_masks):
            width = rng.integers(0, aug.time_mask_frames + 1, batch)
            start = rng.integers(0, np.maximum(time - width, 0) + 1)
            w, s = torch.from_numpy(width)[:, None], torch.from_numpy(start)[:, None]
            mask |= ((steps >= s) & (steps < s + w))[:, :, None]
        mels = torch.arange(bands)[None, :]
        for _ in range(aug.freq_masks):
            width = rng.integers(0, aug.freq_mask_bands + 1, batch)
            start = rng.integers(0, np.maximum(bands - width, 0) + 1)
            w, s = torch.from_numpy(width)[:, None], torch.from_numpy(start)[:, None]
            mask |= ((mels >= s) & (mels < s + w))[:, None, :]
        return torch.where(mask, self.fill.to(frames.dtype), frames)

    def features_for(
        self, items: EpochItems, *, rng: np.random.Generator | None = None, gain_db: float = 0.0,
        room: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """Log-mel frames of ``items``: waveforms (scaled by ``gain_db``, played through ``room``),
        augmentation (training only), LogMel, SpecAugment.

        Parameters
        ----------
        items : EpochItems
        rng : np.random.Generator, optional
            Draws the augmentation and the room's impulse responses (default: the split's own).
        gain_db : float
            Scale every clip by this many decibels first.
        room : tuple of (float, float), optional
            ``(rt60 seconds, direct-to-reverberant ratio dB)``: every word clip (not silence) is
            convolved with its own random impulse response of that room (:mod:`training.reverb`).

        Returns
        -------
        torch.Tensor, shape (batch, n_frames, n_mels), float32, on the CPU
        """
        rng = self.rng if rng is None else rng
        with torch.no_grad():
            audio = self.waveforms(items, rng=rng)
            if gain_db:
                audio = audio * 10.0 ** (gain_db / 20.0)
            if room is not None:
                words = np.flatnonzero(items.kind != KIND_SILENCE)
                play_in_rooms(audio, words, room[0], room[1], sample_rate=self.features.sample_rate, rng=rng)
            audio = self.augment_waveforms(audio, items, rng)
            frames = self.log_mel(audio)
            return self.spec_augment(frames, rng)

    def batches(
        self,
        epoch: int,
        *,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
        shuffle: bool | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of ``(frames (B, T, n_mels), labels (B,))`` for one epoch.

        Every process draws the same epoch order (seeded by seed and epoch) and takes its own
        shard, ``order[rank::world]``, padded by wrapping so each has the same number of batches.
        A training split's augmentation is seeded by (seed, epoch, rank), so a resumed run
        repeats the same epoch exactly.

        Parameters
        ----------
        epoch : int
        batch_size : int
            Examples per batch in this process.
        rank, world : int
            This process's index and the number of processes.
        shuffle : bool, optional
            Default: shuffle training splits only.
        """
        items = self.items(epoch)
        shuffle = self.training if shuffle is None else shuffle
        order = np.arange(len(items))
        if shuffle:
            order = np.random.default_rng([self.data.seed, 3, epoch]).permutation(len(items))
        if world > 1:
            per_rank = -(-len(order) // world)
            order = np.resize(order, per_rank * world)[rank::world]
        if self.training:
            self.rng = np.random.default_rng([self.data.seed, SPLITS.index(self.split), 4, epoch, rank])
            self.prepare_epoch(epoch)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            chunk = items.take(index)
            yield self.features_for(chunk), torch.from_numpy(chunk.label)

    def n_batches(self, batch_size: int, *, world: int = 1) -> int:
        """Batches per epoch in each process."""
        per_rank = -(-len(self) // world)
        return -(-per_rank // batch_size)

    def all_features(
        self, *, batch_size: int = 512, gain_db: float = 0.0, room: tuple[float, float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every example's frames and labels at once (evaluation splits; computed once per gain and
        room, then cached).

        Parameters
        ----------
        batch_size : int
        gain_db : float
            Scale every clip by this many decibels first (e.g. -35: a quiet talker).
        room : tuple of (float, float), optional
            ``(rt60 seconds, direct-to-reverberant ratio dB)``: play every word clip through that
            room (see :meth:`features_for`); the impulse responses are seeded by the data's seed.

        Returns
        -------
        frames : torch.Tensor, shape (n, n_frames, n_mels)
        labels : torch.Tensor, shape (n,)
        """
        key = (0, float(gain_db), room)
        if self.training or key not in self._cache:
            parts = list(self.feature_batches(batch_size=batch_size, gain_db=gain_db, room=room))
            frames = torch.cat(parts) if parts else torch.empty(0, self.features.n_frames, self.features.n_mels)
            if self.training:
                return frames, torch.from_numpy(self.items(0).label)
            self._cache[key] = frames
        return self._cache[key], torch.from_numpy(self.items(0).label)

    def feature_batches(
        self, *, batch_size: int = 512, gain_db: float = 0.0, room: tuple[float, float] | None = None
    ) -> Iterator[torch.Tensor]:
        """Every example's frames, in order, one batch at a time (what :meth:`all_features` joins).

        Parameters
        ----------
        batch_size : int
        gain_db : float
            Scale every clip by this many decibels first.
        room : tuple of (float, float), optional
            ``(rt60 seconds, direct-to-reverberant ratio dB)`` (see :meth:`features_for`); the
            impulse responses are drawn from one generator seeded by the data's seed, so the
            same split, room and batch size give the same frames every time.

        Yields
        ------
        torch.Tensor, shape (batch, n_frames, n_mels)
        """
        items = self.items(0)
        rooms = np.random.default_rng([self.data.seed, 5]) if room is not None else None
        for start in range(0, len(items), batch_size):
            chunk = items.take(slice(start, start + batch_size))
            yield self.features_for(chunk, gain_db=gain_db, room=room, rng=rooms)

    def describe(self) -> dict[str, object]:
        """A JSON-compatible description: counts per label and sources."""
        return {
            "split": self.split,
            "examples": len(self),
            "words": len(self.word_rows),
            "unknown": self.n_unknown,
            "unknown_pool": len(self.unknown_rows) + len(self.extra_rows),
            "silence": self.n_silence,
            "class_counts": self.class_counts(0),
        }


def synthetic_noise(n: int, length: int, rng: np.random.Generator, *, sample_rate: int = 16000) -> torch.Tensor:
    """Synthetic background noise: coloured noise and mains hum, at unit RMS.

    Three in four rows are Gaussian noise with a ``1 / f**beta`` power spectrum, ``beta`` drawn
    uniformly in [0, 2] (white to brown); the rest are 50 or 60 Hz hum with random harmonics over
    a little white noise.

    Parameters
    ----------
    n, length : int
        Rows and samples per row.
    rng : np.random.Generator
    sample_rate : int
        Hz.

    Returns
    -------
    torch.Tensor, shape (n, length), float32
        Each row has RMS 1.
    """
    white = torch.from_numpy(rng.standard_normal((n, length)).astype(np.float32))
    freqs = torch.fft.rfftfreq(length, d=1.0 / sample_rate)
    freqs[0] = freqs[1]
    beta = torch.from_numpy(rng.uniform(0.0, 2.0, n).astype(np.float32))[:, None]
    shaped = torch.fft.irfft(torch.fft.rfft(white) * freqs[None, :].pow(-beta / 2.0), n=length)
    hum = rng.random(n) < 0.25
    if hum.any():
        rows = np.flatnonzero(hum)
        t = torch.arange(length, dtype=torch.float32) / sample_rate
        base = torch.from_numpy(rng.choice([50.0, 60.0], rows.size).astype(np.float32))[:, None]
        tone = torch.zeros(rows.size, length)
        for k in range(1, 6):
            amp = torch.from_numpy(rng.uniform(0.0, 1.0 / k, rows.size).astype(np.float32))[:, None]
            phase = torch.from_numpy(rng.uniform(0, 2 * np.pi, rows.size).astype(np.float32))[:, None]
            tone += amp * torch.sin(2 * np.pi * k * base * t[None, :] + phase)
        tone[:, :] += 0.05 * white[rows] * tone.square().mean(dim=1, keepdim=True).sqrt()
        shaped[torch.from_numpy(rows)] = tone
    return shaped / shaped.square().mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)


def feature_statistics(dataset: ClipDataset, *, max_examples: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band mean and standard deviation of clean (unaugmented) features of a split.

    Parameters
    ----------
    dataset : ClipDataset
    max_examples : int
        A fixed random subset of at most this many examples is used.

    Returns
    -------
    mean, std : torch.Tensor, shape (n_mels,) each
    """
    items = dataset.items(0)
    rng = np.random.default_rng([dataset.data.seed, 5])
    if len(items) > max_examples:
        items = items.take(np.sort(rng.choice(len(items), size=max_examples, replace=False)))
    total = torch.zeros(dataset.features.n_mels, dtype=torch.float64)
    square = torch.zeros_like(total)
    count = 0
    with torch.no_grad():
        for start in range(0, len(items), 512):
            chunk = items.take(slice(start, start + 512))
            frames = dataset.log_mel(dataset.waveforms(chunk, rng=rng)).double()
            total += frames.sum(dim=(0, 1))
            square += frames.square().sum(dim=(0, 1))
            count += frames.shape[0] * frames.shape[1]
    mean = total / max(count, 1)
    std = (square / max(count, 1) - mean.square()).clamp_min(0).sqrt()
    return mean.float(), std.float()

"""Negative examples for ``_unknown_``: text-to-speech words and splices of real commands.

Speech Commands has thousands of clips of each command but only a handful of most other words,
so a model trained on it alone learns "unknown means one of the few filler words it has seen"
and lets new words through as commands. This module makes negatives that cover far more of
the language, offline:

- :func:`synthesize` renders words with Debian's ``espeak-ng`` in many voices, speeds and
  pitches, trims each rendering to its speech, places it at a random offset in a one-second
  16 kHz clip and normalises it to a random peak level, laid out like Speech Commands
  (``<word>/<voice>-<speed>-<pitch>_nohash_<n>.wav``) so the training pipeline can read it as
  an extra ``_unknown_`` folder.
- :func:`splice_and_reverse` makes "almost words" from real command clips: time-reversed clips,
  splices of the first part of one word with the second part of another, so a model learns
  that half a "yes" is not "yes", and word fragments at a clip's edges, the way a sliding
  window of a live stream sees a word coming in or going out.

Word and voice lists are constants. :data:`NEGATIVE_WORDS` and :data:`TRAIN_VOICES` are for
training; :data:`OOV_EVAL_WORDS`, :data:`EVAL_VOICES` and :data:`HELD_OUT_REAL_WORDS` are for
evaluation only (:mod:`training.robustness`) and are disjoint from them, so an out-of-vocabulary
figure measures words and voices the model never met. None of the lists holds a command of the
``mini`` task (:data:`MINI_COMMANDS`) or a homophone of one (:data:`COMMAND_HOMOPHONES`); for
another command set use :func:`negative_words_for`.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import numpy as np

__all__ = [
    "COMMAND_HOMOPHONES",
    "EVAL_PITCHES",
    "EVAL_SPEEDS",
    "EVAL_VOICES",
    "HELD_OUT_REAL_WORDS",
    "MINI_COMMANDS",
    "NEGATIVE_WORDS",
    "OOV_EVAL_WORDS",
    "TRAIN_PITCHES",
    "TRAIN_SPEEDS",
    "TRAIN_VOICES",
    "EspeakError",
    "Rendering",
    "available_voices",
    "espeak_available",
    "fit_speech",
    "negative_words_for",
    "plan_renderings",
    "speech_region",
    "splice_and_reverse",
    "synthesize",
]

#: The eight command words of the ``mini`` task.
MINI_COMMANDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "go", "stop")

#: Words that sound the same as a Speech Commands word (spelling variants included). A word
#: listed here must never be a negative example of a task whose commands include its key.
COMMAND_HOMOPHONES = MappingProxyType(
    {
        "yes": ("yess", "yesss", "yez"),
        "no": ("know", "noh", "knowe", "noe"),
        "up": ("upp",),
        "down": ("downe",),
        "left": ("lefte",),
        "right": ("write", "rite", "wright", "righte"),
        "go": ("goe", "gogh"),
        "stop": ("stopp",),
        "on": ("awn",),
        "off": ("awf",),
        "zero": ("xero",),
        "one": ("won",),
        "two": ("too", "to"),
        "three": (),
        "four": ("for", "fore"),
        "five": (),
        "six": ("sics",),
        "seven": (),
        "eight": ("ate", "ait"),
        "nine": ("nein",),
        "bed": (),
        "bird": ("burd",),
        "cat": (),
        "dog": (),
        "happy": (),
        "house": (),
        "marvin": ("marvyn",),
        "sheila": ("shiela",),
        "tree": (),
        "wow": (),
        "forward": ("foreword",),
        "backward": (),
        "follow": (),
        "learn": (),
        "visual": (),
    }
)

#: Rare real words of Speech Commands kept out of training entirely and used only to measure
#: how a model treats real out-of-vocabulary speech. The training pipeline must leave their
#: folders out of every split (``DataConfig.holdout_words``).
HELD_OUT_REAL_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
)  # fmt: skip

#: Words for ``_unknown_`` negatives in training: phonetic near-misses of the ``mini`` commands
#: (different words that share sounds with them) and common English words of every shape.
NEGATIVE_WORDS: tuple[str, ...] = (
    # near-misses of yes
    "yet", "yell", "yeah", "less", "guess", "mess", "chess", "dress", "press", "yelp", "jest",
    "nest", "test", "best",
    # near-misses of no
    "now", "nope", "note", "toe", "doe", "so", "new", "nah", "knee", "neat", "night",
    # near-misses of up
    "cup", "pup", "hop", "cap", "tap", "off", "of", "us", "oops",
    # near-misses of down
    "town", "gown", "round", "sound", "brown", "crown", "dawn", "done", "noun", "dot",
    # near-misses of left
    "lift", "loft", "lest", "theft", "deft", "leaf", "lend", "elf",
    # near-misses of right
    "light", "bright", "fight", "white", "bite", "kite", "rate", "rat", "root", "ripe",
    # near-misses of go
    "goat", "coat", "glow", "show", "slow", "grow", "gold", "goal", "boat", "dough",
    # near-misses of stop
    "top", "shop", "step", "stock", "stoop", "spot", "drop", "pop", "stuck", "stomp",
    # Speech Commands words that are not mini commands (digits, on, ...) and their kin
    "on", "two", "three", "four", "six", "seven", "nine", "ten", "hundred", "thousand", "forward",
    "backward", "follow", "learn", "visual", "too", "for",
    # everyday words
    "about", "after", "again", "air", "always", "animal", "answer", "apple", "baby", "ball",
    "banana", "bath", "beach", "bear", "beautiful", "bell", "big", "black", "blue", "body", "book",
    "box", "boy", "bread", "bridge", "brother", "cake", "camera", "car", "card", "chair", "cheese",
    "chicken", "child", "city", "clock", "cloud", "cold", "color", "cookie", "corner", "cotton",
    "country", "cow", "dance", "dark", "daughter", "desk", "dollar", "door", "dream", "drink",
    "duck", "earth", "egg", "elephant", "evening", "face", "family", "farm", "father", "fish",
    "flower", "food", "foot", "friend", "frog", "fruit", "girl", "glass", "grass", "green", "hair",
    "hand", "hat", "head", "heart", "hill", "horse", "hour", "island", "juice", "king", "ladder",
    "lemon", "letter", "lion", "machine", "market", "milk", "minute", "money", "moon", "morning",
    "mother", "mountain", "mouse", "name", "number", "ocean", "orange", "page", "paint", "party",
    "pepper", "person", "piano", "picture", "pizza", "plant", "plate", "pocket", "potato",
    "purple", "queen", "radio", "rain", "river", "road", "room", "salt", "sand", "school", "sea",
    "shoe", "sister", "sky", "sleep", "smile", "snake", "song", "soup", "spoon", "spring",
    "square", "star", "stone", "story", "sugar", "summer", "sun", "table", "teacher", "telephone",
    "thing", "tiger", "time", "tomato", "tooth", "towel", "toy", "train", "truck", "turtle",
    "umbrella", "uncle", "village", "voice", "wall", "watch", "weather", "wheel", "wood", "world",
    "zebra", "maybe", "never", "please", "thanks", "sorry", "okay", "hey", "what", "where",
    "because", "little", "very", "really", "other", "people", "today", "tomorrow", "computer",
    "alexa", "robert", "emma", "lisa", "peter", "anna",
)  # fmt: skip

#: Words used only to evaluate out-of-vocabulary rejection: never a training negative (and no
#: training word contains one of them or is contained in one).
OOV_EVAL_WORDS: tuple[str, ...] = (
    "open", "close", "play", "pause", "next", "hello", "water", "window", "music", "kitchen",
    "garden", "noon", "lamp", "paper", "button", "silver", "monkey", "pencil", "ticket", "basket",
    "winter", "dinner", "finger", "jacket", "candle", "mirror", "pumpkin", "rabbit", "thunder",
    "valley", "bottle", "doctor", "saddle", "planet", "cushion", "stuff", "nod", "rice", "goose",
    "cop", "yank", "yawn", "lip", "tip",
)  # fmt: skip

_TRAIN_ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-029", "en-gb-scotland")
_TRAIN_VARIANTS = ("", "m1", "m2", "m3", "m4", "f1", "f2", "f3", "croak", "klatt", "klatt2")
_EVAL_ACCENTS = ("en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
_EVAL_VARIANTS = ("m6", "m7", "f4", "f5", "klatt4", "steph")

#: espeak-ng voices (``accent`` or ``accent+variant``) for training renderings.
TRAIN_VOICES: tuple[str, ...] = tuple(
    f"{accent}+{variant}" if variant else accent for accent in _TRAIN_ACCENTS for variant in _TRAIN_VARIANTS
)
#: espeak-ng voices for evaluation renderings: no accent and no variant in common with training.
EVAL_VOICES: tuple[str, ...] = tuple(f"{a}+{v}" for a in _EVAL_ACCENTS for v in _EVAL_VARIANTS)

#: Speaking rates (words per minute) and pitches (0-99) of training renderings.
TRAIN_SPEEDS: tuple[int, ...] = (110, 140, 170, 200)
TRAIN_PITCHES: tuple[int, ...] = (20, 40, 60, 80)
#: Speaking rates and pitches of evaluation renderings.
EVAL_SPEEDS: tuple[int, ...] = (125, 155, 185)
EVAL_PITCHES: tuple[int, ...] = (30, 50, 70)

_WORD_RE = re.compile(r"^[a-z][a-z']*$")
_ESPEAK_RATE = 22050
_MAX_STRETCH = 1.3  # renderings up to 1.3 s are time-compressed to fit; longer ones are cut
_PEAK_DB = (-26.0, -1.0)  # random peak level range, like Speech Commands clips
_FADE_SECONDS = 0.005


class EspeakError(RuntimeError):
    """espeak-ng is missing, refused a voice, or failed to render a word."""


@dataclass(frozen=True)
class Rendering:
    """One planned text-to-speech clip.

    Parameters
    ----------
    word : str
    voice : str
        espeak-ng voice, ``accent`` or ``accent+variant``.
    speed : int
        Words per minute.
    pitch : int
        0-99.
    index : int
        Repeat number for the same (word, voice, speed, pitch) (the ``<n>`` of the file name).
    """

    word: str
    voice: str
    speed: int
    pitch: int
    index: int

    @property
    def speaker(self) -> str:
        """The Speech Commands "speaker" part of the file name."""
        return f"{self.voice}-{self.speed}-{self.pitch}"

    @property
    def relative_path(self) -> Path:
        """``<word>/<voice>-<speed>-<pitch>_nohash_<index>.wav``."""
        return Path(self.word) / f"{self.speaker}_nohash_{self.index}.wav"

    def seed_sequence(self, seed: int) -> list[int]:
        """Entropy for this clip's random placement and level: stable across runs and machines."""
        return [seed, _stable_hash(self.word), _stable_hash(self.voice), self.speed, self.pitch, self.index]


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def negative_words_for(commands: Iterable[str], words: Sequence[str] = NEGATIVE_WORDS) -> tuple[str, ...]:
    """``words`` without the given commands and their homophones.

    Use it to reuse :data:`NEGATIVE_WORDS` for a task other than ``mini`` (for example one whose
    commands include ``on`` and ``four``: "on", "four", "for" and "fore" are then dropped).

    Parameters
    ----------
    commands : iterable of str
        The task's command words.
    words : sequence of str
        Candidate negatives (default :data:`NEGATIVE_WORDS`).

    Returns
    -------
    tuple of str
        ``words`` in order, minus the commands and every homophone of one.
    """
    banned: set[str] = set()
    for command in commands:
        command = command.lower()
        banned.add(command)
        banned.update(COMMAND_HOMOPHONES.get(command, ()))
    return tuple(w for w in words if w.lower() not in banned)


# --------------------------------------------------------------------------------------------
# espeak-ng
# --------------------------------------------------------------------------------------------


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program is on the PATH."""
    return shutil.which("espeak-ng") is not None


@lru_cache(maxsize=1)
def available_voices() -> tuple[frozenset[str], frozenset[str]]:
    """The installed espeak-ng languages/voice names and voice variants.

    Returns
    -------
    languages : frozenset of str
        Names accepted before ``+`` (language codes such as ``en-us`` and voice names).
    variants : frozenset of str
        Names accepted after ``+`` (variant files such as ``m3``, ``f2``, ``klatt``).

    Raises
    ------
    EspeakError
        espeak-ng is not installed or cannot list its voices.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EspeakError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    try:
        voices = subprocess.run([exe, "--voices"], capture_output=True, text=True, check=True, timeout=60).stdout
        variants = subprocess.run(
            [exe, "--voices=variant"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EspeakError(f"espeak-ng could not list its voices ({exc})") from None
    languages: set[str] = set()
    for line in voices.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            languages.update({fields[1], fields[3], fields[4].rsplit("/", 1)[-1]})
    variant_names: set[str] = set()
    for line in variants.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            variant_names.add(line.split("!v/", 1)[1].split()[0])
    return frozenset(languages), frozenset(variant_names)


def _check_voices(voices: Sequence[str]) -> None:
    languages, variants = available_voices()
    for voice in voices:
        accent, _, variant = voice.partition("+")
        if accent not in languages:
            raise EspeakError(f"espeak-ng has no voice {accent!r} (from {voice!r}; see `espeak-ng --voices`)")
        if variant and variant not in variants:
            raise EspeakError(
                f"espeak-ng has no voice variant {variant!r} (from {voice!r}; see `espeak-ng --voices=variant`)"
            )


def _render(rendering: Rendering, work_dir: Path) -> np.ndarray:
    """Run espeak-ng for one rendering; float32 mono at espeak-ng's own rate (22050 Hz)."""
    import soundfile as sf

    wav = work_dir / f"{os.getpid()}-{_stable_hash(str(rendering))}-{rendering.index}.wav"
    command = [
        "espeak-ng",
        "-v", rendering.voice,
        "-s", str(rendering.speed),
        "-p", str(rendering.pitch),
        "-w", str(wav),
        "--", rendering.word,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EspeakError(f"espeak-ng failed on {rendering.word!r} ({rendering.speaker}): {exc}") from None
    try:
        if result.returncode != 0 or not wav.exists():
            detail = (result.stderr or result.stdout).strip().splitlines()
            reason = detail[0] if detail else f"exit status {result.returncode}"
            raise EspeakError(f"espeak-ng failed on {rendering.word!r} ({rendering.speaker}): {reason}")
        audio, rate = sf.read(wav, dtype="float32", always_2d=False)
    finally:
        wav.unlink(missing_ok=True)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != _ESPEAK_RATE:  # an unusual build; resample from whatever it wrote
        return _resample(audio, rate, _ESPEAK_RATE)
    return audio


def _resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    from math import gcd

    import scipy.signal

    if rate_in == rate_out:
        return audio.astype(np.float32)
    g = gcd(rate_in, rate_out)
    return scipy.signal.resample_poly(audio, rate_out // g, rate_in // g).astype(np.float32)


def _trim(audio: np.ndarray, *, top_db: float, frame: int, hop: int) -> np.ndarray:
    """Cut what lies more than ``top_db`` below the loudest frame from both ends (like librosa's trim)."""
    if audio.shape[0] <= frame:
        return audio
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), frame)[::hop]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    floor = rms.max() * 10.0 ** (-top_db / 20.0)
    loud = np.flatnonzero(rms > floor)
    start, end = loud[0] * hop, min(audio.shape[0], loud[-1] * hop + frame)
    above = np.flatnonzero(np.abs(audio[start:end]) > floor)  # refine the ends to single samples
    if above.size:
        start, end = start + above[0], start + above[-1] + 1
    return audio[start:end]


def fit_speech(audio: np.ndarray, rng: np.random.Generator, *, clip_samples: int, sample_rate: int) -> np.ndarray:
    """Trim a rendering to its speech and place it in one clip at a random offset and peak level.

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
        The rendering at ``sample_rate``.
    rng : np.random.Generator
    clip_samples : int
        Length of the result in samples.
    sample_rate : int
        In Hz.

    Returns
    -------
    np.ndarray, shape (clip_samples,), float32
        Zero outside the speech; peak ``10 ** (U(-26, -1) / 20)``. Speech up to 1.3 clip
        lengths is time-compressed to fit; longer speech is cut to its loudest clip length.

    Raises
    ------
    ValueError
        The rendering holds no sound.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0 or not np.any(np.abs(audio) > 1e-4):
        raise ValueError("the rendering is silent")
    speech = _trim(audio, top_db=40.0, frame=512, hop=128)
    if speech.shape[0] > clip_samples:
        if speech.shape[0] <= _MAX_STRETCH * clip_samples:
            import librosa

            speech = librosa.effects.time_stretch(speech, rate=speech.shape[0] / (clip_samples - 64))
        if speech.shape[0] > clip_samples:
            energy = np.concatenate([[0.0], np.cumsum(speech.astype(np.float64) ** 2)])
            window = energy[clip_samples:] - energy[:-clip_samples]
            start = int(np.argmax(window))
            speech = speech[start : start + clip_samples]
    speech = speech.astype(np.float32, copy=True)
    fade = min(int(_FADE_SECONDS * sample_rate), speech.shape[0] // 2)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
        speech[:fade] *= ramp
        speech[-fade:] *= ramp[::-1]
    peak = float(np.max(np.abs(speech)))
    if peak <= 0:
        raise ValueError("the rendering is silent")
    level = 10.0 ** (rng.uniform(*_PEAK_DB) / 20.0)
    out = np.zeros(clip_samples, dtype=np.float32)
    offset = int(rng.integers(0, clip_samples - speech.shape[0] + 1))
    out[offset : offset + speech.shape[0]] = speech * np.float32(level / peak)
    return out


def plan_renderings(
    words: Sequence[str],
    *,
    voices: Sequence[str],
    speeds: Sequence[int],
    pitches: Sequence[int],
    per_word: int,
    seed: int,
) -> list[Rendering]:
    """Choose ``per_word`` distinct (voice, speed, pitch) settings for every word, reproducibly.

    The choice for a word depends only on ``seed``, the word and the option lists, so adding
    words never changes the renderings of the others. When ``per_word`` exceeds the number of
    settings, settings repeat with a new ``index`` (a new random offset and level).

    Returns
    -------
    list of Rendering
        ``len(words) * per_word`` of them, grouped by word.
    """
    if per_word < 1:
        raise ValueError(f"per_word must be at least 1, got {per_word}")
    if not voices or not speeds or not pitches:
        raise ValueError("voices, speeds and pitches must not be empty")
    combos = list(itertools.product(voices, speeds, pitches))
    plan: list[Rendering] = []
    for word in words:
        rng = np.random.default_rng([seed, _stable_hash(word)])
        picks: list[int] = []
        while len(picks) < per_word:
            picks.extend(rng.permutation(len(combos))[: per_word - len(picks)].tolist())
        seen: dict[int, int] = {}
        for pick in picks:
            voice, speed, pitch = combos[pick]
            index = seen.get(pick, 0)
            seen[pick] = index + 1
            plan.append(Rendering(word, voice, int(speed), int(pitch), index))
    return plan


def synthesize(
    words: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    voices: Sequence[str] | None = None,
    speeds: Sequence[int] = TRAIN_SPEEDS,
    pitches: Sequence[int] = TRAIN_PITCHES,
    per_word: int,
    seed: int,
    sample_rate: int = 16000,
    clip_seconds: float = 1.0,
    jobs: int = 2,
    progress: bool = True,
) -> list[Path]:
    """Render words with espeak-ng into one-second clips laid out like Speech Commands.

    Files already present are kept (a cache): the same call again renders nothing. Each file is
    written to a temporary name and renamed, so an interrupted run leaves no partial clips.

    Parameters
    ----------
    words : sequence of str
        Lower-case words (letters and apostrophes).
    out_dir : path-like
        Output root; clips go to ``out_dir/<word>/<voice>-<speed>-<pitch>_nohash_<n>.wav``.
    voices : sequence of str, optional
        espeak-ng voices (``accent`` or ``accent+variant``); default :data:`TRAIN_VOICES`.
    speeds : sequence of int
        Speaking rates in words per minute (espeak-ng ``-s``).
    pitches : sequence of int
        Pitches 0-99 (espeak-ng ``-p``).
    per_word : int
        Clips per word, each with a different (voice, speed, pitch) while there are enough.
    seed : int
        Fixes the settings chosen per word and each clip's offset and level.
    sample_rate : int
        Of the written clips, in Hz.
    clip_seconds : float
        Length of the written clips, in seconds.
    jobs : int
        espeak-ng processes run at once.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    list of pathlib.Path
        Every requested clip (new or cached), in plan order: 16-bit PCM WAV, mono.

    Raises
    ------
    EspeakError
        espeak-ng is missing, a voice does not exist, or a rendering failed.
    ValueError
        A word is not a plain lower-case word, or an option is out of range.
    """
    import soundfile as sf
    from tqdm import tqdm

    voices = TRAIN_VOICES if voices is None else tuple(voices)
    for word in words:
        if not _WORD_RE.match(word):
            raise ValueError(f"{word!r} is not a plain lower-case word (letters and apostrophes only)")
    for speed in speeds:
        if not 80 <= int(speed) <= 450:
            raise ValueError(f"speed {speed} is outside espeak-ng's 80-450 words per minute")
    for pitch in pitches:
        if not 0 <= int(pitch) <= 99:
            raise ValueError(f"pitch {pitch} is outside espeak-ng's 0-99")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out_dir = Path(out_dir).expanduser()
    plan = plan_renderings(words, voices=voices, speeds=speeds, pitches=pitches, per_word=per_word, seed=seed)
    paths = [out_dir / r.relative_path for r in plan]
    todo = [(r, p) for r, p in zip(plan, paths, strict=True) if not p.exists()]
    if not todo:
        return paths
    if not espeak_available():
        raise EspeakError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    _check_voices(sorted({r.voice for r, _ in todo}))
    clip_samples = round(clip_seconds * sample_rate)

    def make(item: tuple[Rendering, Path], work_dir: Path) -> None:
        rendering, path = item
        raw = _render(rendering, work_dir)
        audio = _resample(raw, _ESPEAK_RATE, sample_rate)
        try:
            clip = fit_speech(
                audio,
                np.random.default_rng(rendering.seed_sequence(seed)),
                clip_samples=clip_samples,
                sample_rate=sample_rate,
            )
        except ValueError as exc:
            raise EspeakError(f"espeak-ng rendered {rendering.word!r} ({rendering.speaker}): {exc}") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.wav")
        try:
            sf.write(tmp, clip, sample_rate, subtype="PCM_16")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="speechrnn-espeak-") as work,
        ThreadPoolExecutor(max_workers=jobs) as pool,
        tqdm(total=len(todo), desc="espeak-ng", unit="clip", disable=not progress, file=sys.stderr) as bar,
    ):
        futures = [pool.submit(make, item, Path(work)) for item in todo]
        try:
            for future in futures:
                future.result()
                bar.update(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return paths


# --------------------------------------------------------------------------------------------
# negatives from real command clips
# --------------------------------------------------------------------------------------------

#: Pairs of mini commands whose second halves sound alike ("no"/"go": the vowel; "up"/"stop":
#: the vowel and the "p"): a splice of the head of one and the tail of the other would still
#: sound like the first word, so they are never spliced together.
_SAME_ENDINGS: frozenset[frozenset[str]] = frozenset({frozenset({"no", "go"}), frozenset({"up", "stop"})})


def speech_region(clip: np.ndarray, *, frame: int = 160, threshold_db: float = -30.0) -> tuple[int, int]:
    """Start and end sample of the sound in a clip: frames within ``threshold_db`` of the loudest.

    Parameters
    ----------
    clip : np.ndarray, shape (n,)
    frame : int
        Frame length in samples (160 = 10 ms at 16 kHz).
    threshold_db : float
        Frames quieter than the loudest frame by more than this are outside the region.

    Returns
    -------
    (int, int)
        ``start < end``; the whole clip when it is silent.
    """
    n = clip.shape[0]
    n_frames = max(1, n // frame)
    usable = clip[: n_frames * frame].astype(np.float64).reshape(n_frames, -1)
    rms = np.sqrt(np.mean(usable**2, axis=1))
    top = rms.max()
    if top <= 0:
        return 0, n
    floor = top * 10.0 ** (threshold_db / 20.0)
    loud = np.flatnonzero(rms >= floor)
    start, end = int(loud[0] * frame), int(min(n, (loud[-1] + 1) * frame))
    # refine both ends to the first and last sample above the floor inside the edge frames
    tail_from = max(start, end - frame)
    first = np.flatnonzero(np.abs(clip[start : start + frame]) >= floor)
    last = np.flatnonzero(np.abs(clip[tail_from:end]) >= floor)
    if first.size and last.size:
        start, end = start + int(first[0]), tail_from + int(last[-1]) + 1
    return start, end


def splice_and_reverse(
    clips: np.ndarray,
    rng: np.random.Generator,
    *,
    count: int,
    labels: Sequence[str] | np.ndarray | None = None,
    reverse_share: float = 0.5,
    fragment_share: float = 0.0,
    crossfade: int = 160,
) -> np.ndarray:
    """Negatives made from real command clips: time reversals, edge fragments and splices.

    The first ``round(count * reverse_share)`` rows are whole clips played backwards. The next
    ``round(count * fragment_share)`` are fragments: the first 15-40% of a clip's speech region
    placed against the end of the clip (within 50 ms), or its last 15-40% placed against the
    start, half of each; that is what the one-second window of a live stream holds as a word
    comes in or goes out, and it is not yet (or no longer) the word. The others are splices:
    the first 30-60% of one clip's speech region followed, through a ``crossfade``-sample
    linear cross-fade, by the last 30-60% of another's, level-matched and placed at a random
    offset (zero elsewhere). With ``labels`` the two parts always come from different words,
    and never from "no"+"go" or "up"+"stop" (same-sounding endings); without labels they come
    from different clips only, so pass labels when you have them.

    Parameters
    ----------
    clips : np.ndarray, shape (n, clip_samples)
        Real command clips (float audio).
    rng : np.random.Generator
    count : int
        Number of negatives to make.
    labels : sequence of str or np.ndarray, shape (n,), optional
        Word of each clip.
    reverse_share : float
        Share of reversals, in [0, 1].
    fragment_share : float
        Share of edge fragments, in [0, 1]; ``reverse_share + fragment_share <= 1``.
    crossfade : int
        Cross-fade length in samples (160 = 10 ms at 16 kHz).

    Returns
    -------
    np.ndarray, shape (count, clip_samples), float32
        Peaks never exceed the sources' largest peak (nor 1.0).

    Raises
    ------
    ValueError
        ``clips`` is not 2-D or is empty, splices are requested from fewer than two clips (or
        fewer than two spliceable words), or an option is out of range.
    """
    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim != 2 or clips.shape[0] == 0 or clips.shape[1] == 0:
        raise ValueError(f"clips must be a non-empty (n, clip_samples) array, got shape {clips.shape}")
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    if not 0.0 <= reverse_share <= 1.0:
        raise ValueError(f"reverse_share must be in [0, 1], got {reverse_share}")
    if not 0.0 <= fragment_share <= 1.0 - reverse_share + 1e-9:
        raise ValueError(f"fragment_share must be in [0, 1 - reverse_share], got {fragment_share}")
    n, length = clips.shape
    n_reverse = round(count * reverse_share)
    n_fragment = min(count - n_reverse, round(count * fragment_share))
    n_splice = count - n_reverse - n_fragment
    out = np.zeros((count, length), dtype=np.float32)
    if n_reverse:
        out[:n_reverse] = clips[rng.integers(0, n, size=n_reverse), ::-1]
    if n_fragment + n_splice == 0:
        return out
    regions = [speech_region(c) for c in clips]  # fragments and splices both cut at these
    if n_fragment:
        out[n_reverse : n_reverse + n_fragment] = _edge_fragments(clips, regions, rng, n_fragment)
    if n_splice == 0:
        return out
    pairs = _splice_pairs(labels, n)
    for row in range(n_reverse + n_fragment, count):
        a, b = _pick_pair(rng, n, pairs)
        sa, ea = regions[a]
        sb, eb = regions[b]
        cut_a = sa + max(1, round((ea - sa) * rng.uniform(0.3, 0.6)))
        cut_b = eb - max(1, round((eb - sb) * rng.uniform(0.3, 0.6)))
        head = clips[a, sa:cut_a].astype(np.float32)
        tail = clips[b, cut_b:eb].astype(np.float32)
        head_peak = float(np.max(np.abs(head))) if head.size else 0.0
        tail_peak = float(np.max(np.abs(tail))) if tail.size else 0.0
        if head_peak > 0 and tail_peak > 0:
            tail = tail * np.float32(np.clip(head_peak / tail_peak, 0.25, 4.0))
        fade = min(crossfade, head.shape[0], tail.shape[0])
        if fade > 0:
            ramp = np.linspace(0.0, 1.0, fade + 2, dtype=np.float32)[1:-1]
            joined = np.concatenate([head[:-fade], head[-fade:] * ramp[::-1] + tail[:fade] * ramp, tail[fade:]])
        else:
            joined = np.concatenate([head, tail])
        joined = joined[:length]
        limit = min(1.0, float(np.max(np.abs(clips[[a, b]]))))
        peak = float(np.max(np.abs(joined))) if joined.size else 0.0
        if peak > limit > 0:
            joined = joined * np.float32(limit / peak)
        offset = int(rng.integers(0, length - joined.shape[0] + 1))
        out[row, offset : offset + joined.shape[0]] = joined
    return out


def _edge_fragments(
    clips: np.ndarray, regions: Sequence[tuple[int, int]], rng: np.random.Generator, count: int
) -> np.ndarray:
    """Heads of words against a clip's end and tails against its start (see :func:`splice_and_reverse`).

    ``regions`` holds each clip's :func:`speech_region`.
    """
    n, length = clips.shape
    out = np.zeros((count, length), dtype=np.float32)
    margin = min(800, length // 20)  # up to 50 ms from the edge at 16 kHz
    for row, source in enumerate(rng.integers(0, n, size=count)):
        start, end = regions[source]
        size = max(1, round((end - start) * rng.uniform(0.15, 0.4)))
        gap = int(rng.integers(0, margin + 1))
        if row % 2 == 0:  # the word coming in: its head at the end of the window
            out[row, length - gap - size : length - gap] = clips[source, start : start + size]
        else:  # the word going out: its tail at the start of the window
            out[row, gap : gap + size] = clips[source, end - size : end]
    return out


def _splice_pairs(labels: Sequence[str] | np.ndarray | None, n: int) -> tuple[list[np.ndarray], np.ndarray] | None:
    """Clip indices per word and the (word, word) pairs that may be spliced; None without labels."""
    if labels is None:
        if n < 2:
            raise ValueError("splices need at least two clips")
        return None
    word = np.asarray([str(w) for w in labels])
    if word.shape[0] != n:
        raise ValueError(f"{word.shape[0]} labels for {n} clips")
    names, inverse = np.unique(word, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(names))]
    allowed = np.array(
        [
            [i, j]
            for i in range(len(names))
            for j in range(len(names))
            if i != j and frozenset({names[i], names[j]}) not in _SAME_ENDINGS
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
    if allowed.shape[0] == 0:
        raise ValueError(f"splices need clips of at least two words that may be spliced together, got {list(names)}")
    return members, allowed


def _pick_pair(rng: np.random.Generator, n: int, pairs: tuple[list[np.ndarray], np.ndarray] | None) -> tuple[int, int]:
    """Two clip indices to splice: different clips, and (with labels) different, compatible words."""
    if pairs is None:
        a = int(rng.integers(0, n))
        b = int(rng.integers(0, n - 1))
        return a, b + (b >= a)
    members, allowed = pairs
    first, second = allowed[int(rng.integers(0, allowed.shape[0]))]
    return int(rng.choice(members[first])), int(rng.choice(members[second]))

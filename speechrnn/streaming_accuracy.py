"""Streaming accuracy: how the live recognizer does on a long recording with known words.

Like TensorFlow's ``test_streaming_accuracy``: labelled one-second clips are placed at known
times, with random gaps, over real background noise; the stream is run through
:class:`~speechrnn.streaming.StreamingRecognizer` exactly as ``speechrnn listen`` would run it;
each detection is matched against the truth:

- **matched**: a command detected with the right label while it is spoken or shortly after
  (from the word's start to ``tolerance_seconds`` after its end);
- **wrong**: a command detected there with another label;
- **missed**: a command nothing was detected for;
- **false positive**: a detection on an out-of-vocabulary word (clips labelled ``_unknown_``,
  which must not be detected), a second detection for one word, or one in plain noise.

Percentages are of the number of command words. Latency is measured from the end of the spoken
word (found in the clean clip with :func:`speechrnn.trim.find_speech`) to the detection time.
A noise-only section at the end of the stream gives the false detections per 10 minutes of noise.
For every command not matched the report also says why (:func:`miss_causes`): its clip alone is
already classified wrong, or only with the stream's background under it, or neither (the decisions).

Run on a Speech Commands folder (the split's list file picks speakers never trained on)::

    python -m speechrnn.streaming_accuracy --data /work/shared/data/speech_commands_mini \\
        --split testing --minutes 10 --model speechrnn/models/default.pt --out report.json

``--tune`` searches decision settings (threshold, averaging window, suppression, minimum count)
on the same stream; do it on the validation split, never on the test split.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from speechrnn.decisions import DecisionConfig, Detection
    from speechrnn.inference import Classifier

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
NOISE_FOLDER = "_background_noise_"

#: Goals from the issue, reported against (read-only).
GOALS: Mapping[str, float] = MappingProxyType(
    {"matched_percent_min": 90.0, "false_per_10min_max": 1.0, "latency_median_max_seconds": 0.3}
)


# ----------------------------------------------------------------------------- building the stream


def make_background(
    noise: np.ndarray | Sequence[np.ndarray],
    n_samples: int,
    *,
    rng: np.random.Generator,
    level_db: tuple[float, float] = (-50.0, -30.0),
    segment_seconds: tuple[float, float] = (5.0, 15.0),
    sample_rate: int = 16000,
    fade_seconds: float = 0.05,
) -> np.ndarray:
    """A background of real noise: random crops of the noise recordings at random levels.

    Parameters
    ----------
    noise : array or sequence of arrays, each shape (m,)
        Noise recordings (e.g. Speech Commands' ``_background_noise_``) at ``sample_rate``.
    n_samples : int
        Length of the result.
    rng : np.random.Generator
    level_db : (low, high)
        Each segment's RMS level is drawn uniformly from this range, dBFS.
    segment_seconds : (low, high)
        Length range of the segments, seconds; consecutive segments cross-fade.
    sample_rate : int
    fade_seconds : float
        Fade in/out of each segment, seconds (no clicks at the joins).

    Returns
    -------
    np.ndarray, shape (n_samples,), float32
    """
    sources = (
        [np.asarray(noise, dtype=np.float32)]
        if isinstance(noise, np.ndarray)
        else [np.asarray(n, dtype=np.float32) for n in noise]
    )
    sources = [s for s in sources if s.size >= sample_rate // 10 and float(np.sqrt(np.mean(s**2))) > 0]
    if not sources:
        raise ValueError("no usable noise recording (each must be at least 0.1 s and not silent)")
    out = np.zeros(n_samples, dtype=np.float32)
    fade = max(1, round(fade_seconds * sample_rate))
    position = 0
    while position < n_samples:
        length = min(n_samples - position + fade, round(rng.uniform(*segment_seconds) * sample_rate))
        source = sources[int(rng.integers(len(sources)))]
        pieces, needed = [], length
        while needed > 0:  # tile a short recording
            start = int(rng.integers(0, max(1, source.size - needed + 1)))
            piece = source[start : start + needed]
            pieces.append(piece)
            needed -= piece.size
        segment = np.concatenate(pieces)
        rms = float(np.sqrt(np.mean(segment.astype(np.float64) ** 2)))
        target = 10 ** (rng.uniform(*level_db) / 20)
        segment = segment * np.float32(target / max(rms, 1e-9))
        ramp = np.linspace(0.0, 1.0, min(fade, segment.size), dtype=np.float32)
        segment[: ramp.size] *= ramp
        segment[segment.size - ramp.size :] *= ramp[::-1]
        end = min(n_samples, position + segment.size)
        out[position:end] += segment[: end - position]
        position = end - fade if end < n_samples else end
    return out


def word_span(clip: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Where the word lies in a clean clip, seconds; the whole clip when nothing stands out."""
    from speechrnn.trim import find_speech

    span = find_speech(clip, sample_rate)
    if span.end <= span.start:
        return 0.0, clip.shape[0] / sample_rate
    return span.start / sample_rate, span.end / sample_rate


def build_stream(
    clips: Sequence[tuple[np.ndarray, str]],
    *,
    noise: np.ndarray | Sequence[np.ndarray],
    rng: np.random.Generator,
    gap_seconds: tuple[float, float] = (1.0, 3.0),
    noise_db: tuple[float, float] = (-50.0, -30.0),
    lead_seconds: float = 1.0,
    noise_only_seconds: float = 0.0,
    sample_rate: int = 16000,
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A long recording: labelled clips at known times over background noise.

    Parameters
    ----------
    clips : sequence of (audio, label)
        Clean clips (shape (n,), float32 at ``sample_rate``) in the order they are placed;
        label ``_unknown_`` marks an out-of-vocabulary word that must not be detected.
    noise : array or sequence of arrays
        Background noise recordings (see :func:`make_background`).
    rng : np.random.Generator
    gap_seconds : (low, high)
        Silence (noise only) between the end of one clip and the start of the next, seconds.
    noise_db : (low, high)
        Background RMS level range, dBFS.
    lead_seconds : float
        Noise before the first clip, seconds.
    noise_only_seconds : float
        Noise-only section appended after the last clip (and its gap), seconds.
    sample_rate : int

    Returns
    -------
    audio : np.ndarray, shape (n,), float32
        The recording (clipped to [-1, 1]).
    truth : list of (label, start, end)
        Each clip's label and where its word lies in the recording, seconds, in time order.
    """
    placements: list[tuple[int, np.ndarray, str]] = []
    position = round(lead_seconds * sample_rate)
    for audio, label in clips:
        audio = np.asarray(audio, dtype=np.float32)
        placements.append((position, audio, label))
        position += audio.shape[0] + round(rng.uniform(*gap_seconds) * sample_rate)
    total = position + round(noise_only_seconds * sample_rate)
    stream = make_background(noise, total, rng=rng, level_db=noise_db, sample_rate=sample_rate)
    truth = []
    for start, audio, label in placements:
        stream[start : start + audio.shape[0]] += audio
        word_start, word_end = word_span(audio, sample_rate)
        truth.append((label, start / sample_rate + word_start, start / sample_rate + word_end))
    np.clip(stream, -1.0, 1.0, out=stream)
    return stream, truth


# ----------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class StreamingScore:
    """How the detections on a stream compare with its truth.

    Percentages are of ``commands`` (the command words in the stream).
    """

    commands: int
    oov_words: int
    matched: int
    wrong: int
    missed: int
    false_positives: int
    false_on_oov: int
    false_duplicates: int
    false_in_noise: int
    noise_only_false: int
    duration_seconds: float
    noise_only_seconds: float
    latencies: tuple[float, ...]
    outcomes: tuple[str, ...] = ()

    @property
    def matched_percent(self) -> float:
        """Commands detected with the right label, % of commands."""
        return 100.0 * self.matched / max(1, self.commands)

    @property
    def wrong_percent(self) -> float:
        """Commands detected with another label, % of commands."""
        return 100.0 * self.wrong / max(1, self.commands)

    @property
    def missed_percent(self) -> float:
        """Commands with no detection, % of commands."""
        return 100.0 * self.missed / max(1, self.commands)

    @property
    def false_positive_percent(self) -> float:
        """False positives (OOV, duplicate, in noise), % of commands."""
        return 100.0 * self.false_positives / max(1, self.commands)

    @property
    def false_per_10min(self) -> float:
        """All false positives per 10 minutes of stream."""
        return self.false_positives / max(self.duration_seconds, 1e-9) * 600.0

    @property
    def noise_only_false_per_10min(self) -> float | None:
        """False detections per 10 minutes of the noise-only section (None without one)."""
        if self.noise_only_seconds <= 0:
            return None
        return self.noise_only_false / self.noise_only_seconds * 600.0

    @property
    def latency_median(self) -> float | None:
        """Median seconds from word end to detection over matched words."""
        return float(np.median(self.latencies)) if self.latencies else None

    @property
    def latency_p90(self) -> float | None:
        """90th percentile of the latency, seconds."""
        return float(np.percentile(self.latencies, 90)) if self.latencies else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-compatible summary, goals included."""

        def rounded(value: float | None, digits: int = 3) -> float | None:
            return None if value is None else round(value, digits)

        summary = {k: v for k, v in asdict(self).items() if k not in ("latencies", "outcomes")}
        summary.update(
            matched_percent=rounded(self.matched_percent, 2),
            wrong_percent=rounded(self.wrong_percent, 2),
            missed_percent=rounded(self.missed_percent, 2),
            false_positive_percent=rounded(self.false_positive_percent, 2),
            false_per_10min=rounded(self.false_per_10min, 2),
            noise_only_false_per_10min=rounded(self.noise_only_false_per_10min, 2),
            latency_median_seconds=rounded(self.latency_median),
            latency_p90_seconds=rounded(self.latency_p90),
        )
        summary["goals"] = {
            **GOALS,
            "matched_ok": self.matched_percent >= GOALS["matched_percent_min"],
            "false_ok": self.false_per_10min <= GOALS["false_per_10min_max"],
            "latency_ok": self.latency_median is not None
            and self.latency_median <= GOALS["latency_median_max_seconds"],
        }
        return summary


def score_detections(
    detections: Sequence[Detection],
    truth: Sequence[tuple[str, float, float]],
    *,
    duration_seconds: float,
    noise_only_seconds: float = 0.0,
    tolerance_seconds: float = 0.75,
) -> StreamingScore:
    """Match detections against the truth of a stream.

    A detection belongs to the word whose span ``[start, end + tolerance_seconds]`` holds its
    time; the first detection of a word decides it (matched or wrong), later ones are duplicates.
    Words labelled ``_unknown_`` or ``_silence_`` are out of vocabulary: any detection on them is
    a false positive.

    Parameters
    ----------
    detections : sequence of Detection
    truth : sequence of (label, start, end)
        As :func:`build_stream` returns it.
    duration_seconds : float
        Length of the stream.
    noise_only_seconds : float
        Length of the noise-only section at its end.
    tolerance_seconds : float
        How long after a word's end a detection still counts for it.

    Returns
    -------
    StreamingScore
        ``outcomes`` holds, per truth word in time order, ``"matched"``, ``"wrong:<label>"`` or
        ``"missed"`` for commands, ``"rejected"`` or ``"detected:<label>"`` for OOV words.
    """
    truth = sorted(truth, key=lambda t: t[1])
    starts = np.array([t[1] for t in truth])
    claimed = [False] * len(truth)
    outcome: dict[int, str] = {}
    latencies: list[float] = []
    wrong = false_oov = duplicates = in_noise = noise_only = 0
    noise_start = duration_seconds - noise_only_seconds
    for detection in sorted(detections, key=lambda d: d.time):
        i = int(np.searchsorted(starts, detection.time, side="right")) - 1
        if i >= 0 and detection.time <= truth[i][2] + tolerance_seconds:
            label, _, end = truth[i]
            if label in (UNKNOWN, SILENCE):
                false_oov += 1
                outcome.setdefault(i, f"detected:{detection.label}")
            elif claimed[i]:
                duplicates += 1
            else:
                claimed[i] = True
                if detection.label == label:
                    outcome[i] = "matched"
                    latencies.append(detection.time - end)
                else:
                    outcome[i] = f"wrong:{detection.label}"
                    wrong += 1
        else:
            in_noise += 1
            if noise_only_seconds > 0 and detection.time >= noise_start:
                noise_only += 1
    commands = sum(label not in (UNKNOWN, SILENCE) for label, _, _ in truth)
    matched = sum(v == "matched" for v in outcome.values())
    return StreamingScore(
        commands=commands,
        oov_words=len(truth) - commands,
        matched=matched,
        wrong=wrong,
        missed=commands - matched - wrong,
        false_positives=false_oov + duplicates + in_noise,
        false_on_oov=false_oov,
        false_duplicates=duplicates,
        false_in_noise=in_noise,
        noise_only_false=noise_only,
        duration_seconds=duration_seconds,
        noise_only_seconds=noise_only_seconds,
        latencies=tuple(latencies),
        outcomes=tuple(
            outcome.get(i, "rejected" if label in (UNKNOWN, SILENCE) else "missed")
            for i, (label, _, _) in enumerate(truth)
        ),
    )


# ----------------------------------------------------------------------------- running


def stream_probabilities(
    classifier: Classifier,
    audio: np.ndarray,
    *,
    hop_seconds: float = 0.1,
    block_seconds: float = 1.0,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Every model step's time and probabilities over a stream, as the live recognizer computes them.

    Parameters
    ----------
    classifier : Classifier
    audio : np.ndarray, shape (n,)
    hop_seconds : float
    block_seconds : float
        Chunk size pushed at a time (the result does not depend on it).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    times : np.ndarray, shape (n_steps,)
    probabilities : np.ndarray, shape (n_steps, n_classes)
    """
    from tqdm import tqdm

    from speechrnn.streaming import StreamingRecognizer

    recognizer = StreamingRecognizer(classifier, hop_seconds=hop_seconds)
    block = max(1, round(block_seconds * recognizer.sample_rate))
    times, probabilities = [], []
    starts = range(0, audio.shape[0], block)
    for start in tqdm(starts, desc="streaming", unit="block", disable=not progress, file=sys.stderr):
        for step in recognizer.push_steps(audio[start : start + block]):
            times.append(step.time)
            probabilities.append(step.probabilities)
    return np.array(times), np.stack(probabilities)


def tune_decisions(
    times: np.ndarray,
    probabilities: np.ndarray,
    labels: Sequence[str],
    truth: Sequence[tuple[str, float, float]],
    *,
    duration_seconds: float,
    noise_only_seconds: float,
    base: DecisionConfig,
    grid: dict[str, Sequence[Any]] | None = None,
) -> list[tuple[DecisionConfig, StreamingScore]]:
    """Score every decision setting of a grid on one stream's model outputs.

    Parameters
    ----------
    times, probabilities : np.ndarray
        From :func:`stream_probabilities`.
    labels : sequence of str
    truth : sequence of (label, start, end)
    duration_seconds, noise_only_seconds : float
    base : DecisionConfig
        Settings not in the grid.
    grid : dict of field name -> values, optional

    Returns
    -------
    list of (DecisionConfig, StreamingScore)
        Best first: goals for false positives and latency met, then most matched, then fewest
        false positives.
    """
    from speechrnn.decisions import decide

    grid = grid or {
        "threshold": [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
        "average_window_seconds": [0.3, 0.5, 0.75, 1.0],
        "suppression_seconds": [0.5, 1.0],
        "minimum_count": [2, 3, 5],
    }
    names = list(grid)
    results = []
    for values in itertools.product(*(grid[n] for n in names)):
        config = replace(base, **dict(zip(names, values, strict=True)))
        found = decide(times, probabilities, labels, config=config)
        results.append(
            (
                config,
                score_detections(
                    found, truth, duration_seconds=duration_seconds, noise_only_seconds=noise_only_seconds
                ),
            )
        )

    def key(item: tuple[DecisionConfig, StreamingScore]) -> tuple:
        s = item[1]
        ok = s.false_per_10min <= GOALS["false_per_10min_max"] and (
            s.latency_median is not None and s.latency_median <= GOALS["latency_median_max_seconds"]
        )
        return (not ok, -s.matched, s.false_positives)

    return sorted(results, key=key)


def estimate_snr_db(audio: np.ndarray, start: float, end: float, *, sample_rate: int = 16000) -> float:
    """Signal-to-noise ratio of a word in a stream, dB: its span against the 0.4 s before it.

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
    start, end : float
        The word's span, seconds.
    sample_rate : int

    Returns
    -------
    float
        ``10 log10((P_word - P_before) / P_before)``, floored at -30 dB.
    """
    i, j = round(start * sample_rate), round(end * sample_rate)
    before = audio[max(0, i - round(0.45 * sample_rate)) : max(0, i - round(0.05 * sample_rate))].astype(np.float64)
    word = audio[i:j].astype(np.float64)
    if word.size == 0 or before.size == 0:
        return float("nan")
    noise = max(float(np.mean(before**2)), 1e-12)
    signal = max(float(np.mean(word**2)) - noise, noise * 1e-3)
    return 10.0 * math.log10(signal / noise)


def pool_scores(scores: Sequence[StreamingScore]) -> StreamingScore:
    """One score over several streams: counts and durations add up, latencies and outcomes are pooled.

    Parameters
    ----------
    scores : sequence of StreamingScore
        From :func:`score_detections`, one per stream.

    Returns
    -------
    StreamingScore
        Its rates (matched %, false detections per 10 minutes) are over all the streams together,
        and its latency percentiles over every matched word of every stream.
    """
    if not scores:
        raise ValueError("pool_scores needs at least one score")
    pooled: dict[str, Any] = {
        f.name: sum(getattr(s, f.name) for s in scores) for f in fields(StreamingScore)
        if f.name not in ("latencies", "outcomes")
    }  # fmt: skip
    return StreamingScore(
        **pooled,
        latencies=tuple(itertools.chain.from_iterable(s.latencies for s in scores)),
        outcomes=tuple(itertools.chain.from_iterable(s.outcomes for s in scores)),
    )


def pool_counts(tables: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Add up the nested count tables of several streams' diagnostics.

    Numbers under the same keys are summed (a key missing from a stream counts 0); every
    ``matched_percent`` is recomputed from the pooled ``matched`` and ``n``.

    Parameters
    ----------
    tables : sequence of mapping
        E.g. the ``"diagnostics"`` of several :func:`evaluate` reports.

    Returns
    -------
    dict
    """
    pooled: dict[str, Any] = {}
    for table in tables:
        for key, value in table.items():
            if isinstance(value, Mapping):
                pooled[key] = pool_counts([pooled.get(key, {}), value])
            elif key != "matched_percent":
                pooled[key] = pooled.get(key, 0) + value
    if "n" in pooled and "matched" in pooled:
        pooled["matched_percent"] = round(100.0 * pooled["matched"] / max(1, pooled["n"]), 1)
    return pooled


def diagnostics(
    score: StreamingScore, truth: Sequence[tuple[str, float, float]], audio: np.ndarray, *, sample_rate: int
) -> dict[str, Any]:
    """Matched rate by word and by SNR band, and what OOV words were taken for.

    Parameters
    ----------
    score : StreamingScore
        From :func:`score_detections` on ``truth``.
    truth : sequence of (label, start, end)
    audio : np.ndarray
        The stream.
    sample_rate : int

    Returns
    -------
    dict
        ``by_word``: label -> {n, matched_percent, wrong, missed}; ``by_snr``: band -> {n,
        matched_percent}; ``oov_detected_as``: label -> count.
    """
    truth = sorted(truth, key=lambda t: t[1])
    by_word: dict[str, dict[str, Any]] = {}
    bands = ((-math.inf, 0.0, "< 0 dB"), (0.0, 10.0, "0-10 dB"), (10.0, 20.0, "10-20 dB"), (20.0, math.inf, ">= 20 dB"))
    by_snr = {name: {"n": 0, "matched": 0} for _, _, name in bands}
    oov: dict[str, int] = {}
    for (label, start, end), outcome in zip(truth, score.outcomes, strict=True):
        if label in (UNKNOWN, SILENCE):
            if outcome.startswith("detected:"):
                name = outcome.split(":", 1)[1]
                oov[name] = oov.get(name, 0) + 1
            continue
        entry = by_word.setdefault(label, {"n": 0, "matched": 0, "wrong": 0, "missed": 0})
        entry["n"] += 1
        entry[outcome.split(":", 1)[0]] += 1
        snr = estimate_snr_db(audio, start, end, sample_rate=sample_rate)
        for low, high, name in bands:
            if low <= snr < high:
                by_snr[name]["n"] += 1
                by_snr[name]["matched"] += outcome == "matched"
    for table in (by_word, by_snr):
        for entry in table.values():
            entry["matched_percent"] = round(100.0 * entry["matched"] / max(1, entry["n"]), 1)
    return {"by_word": dict(sorted(by_word.items())), "by_snr": by_snr, "oov_detected_as": oov}


def miss_causes(
    score: StreamingScore,
    truth: Sequence[tuple[str, float, float]],
    clips: Sequence[tuple[np.ndarray, str]],
    audio: np.ndarray,
    predict: Callable[[np.ndarray], Sequence[str]],
    *,
    sample_rate: int,
) -> dict[str, Any]:
    """Why each command that was not matched was lost: the clip, the noise, or the decisions.

    Every missed or wrong command is classified twice, as one-second clips: the clip as
    recorded, and the stream's second where that clip was placed (the clip plus the background
    under it). The cause is

    - ``"clip"``: the clip alone is already classified wrong (the model's own error);
    - ``"noise"``: the clip alone is right, with the stream's background under it it is not;
    - ``"decisions"``: right both ways, yet no matching detection came (the score of the
      sliding windows around it stayed under the threshold or the averaging diluted it).

    Parameters
    ----------
    score : StreamingScore
        From :func:`score_detections` on ``truth``.
    truth : sequence of (label, start, end)
        From :func:`build_stream`, in the order of ``clips``.
    clips : sequence of (np.ndarray, str)
        The clips given to :func:`build_stream`, each shape (m,) with m <= one clip.
    audio : np.ndarray, shape (n,)
        The stream.
    predict : callable
        Maps an array of clips, shape (k, clip_samples), to their k predicted labels.
    sample_rate : int

    Returns
    -------
    dict
        ``counts``: cause -> number of commands; ``by_outcome``: ``"missed"``/``"wrong"`` ->
        cause -> number.
    """
    if len(clips) != len(truth):
        raise ValueError(f"{len(clips)} clips for {len(truth)} truth words")
    clip_samples = max((c.shape[0] for c, _ in clips), default=0)
    order = sorted(range(len(truth)), key=lambda i: truth[i][1])  # score.outcomes follow the time order
    lost: list[tuple[int, str]] = []
    for rank, index in enumerate(order):
        label, outcome = truth[index][0], score.outcomes[rank]
        if label not in (UNKNOWN, SILENCE) and outcome != "matched":
            lost.append((index, outcome.split(":", 1)[0]))
    counts = {"clip": 0, "noise": 0, "decisions": 0}
    by_outcome: dict[str, dict[str, int]] = {}
    if lost:
        alone = np.zeros((len(lost), clip_samples), dtype=np.float32)
        placed = np.zeros_like(alone)
        for row, (index, _) in enumerate(lost):
            clip = clips[index][0]
            offset, _ = word_span(clip, sample_rate)  # truth start = clip start + the word's offset in it
            begin = round(truth[index][1] * sample_rate - offset * sample_rate)
            alone[row, : clip.shape[0]] = clip
            segment = audio[max(0, begin) : begin + clip_samples]
            placed[row, : segment.shape[0]] = segment
        said_alone, said_placed = predict(alone), predict(placed)
        for (index, outcome), a, b in zip(lost, said_alone, said_placed, strict=True):
            label = clips[index][1]
            cause = "clip" if a != label else "noise" if b != label else "decisions"
            counts[cause] += 1
            entry = by_outcome.setdefault(outcome, {"clip": 0, "noise": 0, "decisions": 0})
            entry[cause] += 1
    return {"counts": counts, "by_outcome": by_outcome}


def _read_list(root: Path, name: str) -> list[str]:
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: list file not found (is --data a Speech Commands folder?)")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def select_clips(
    root: Path, *, split: str, commands: Sequence[str], n_words: int, oov_fraction: float, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """Pick ``(relative path, label)`` pairs from a split: commands, and OOV words as ``_unknown_``.

    Parameters
    ----------
    root : Path
        Speech Commands folder.
    split : {"validation", "testing"}
        Which list file's clips to use.
    commands : sequence of str
        The model's command words.
    n_words : int
        How many clips in all.
    oov_fraction : float
        Share of out-of-vocabulary words.
    rng : np.random.Generator

    Returns
    -------
    list of (str, str)
        In a random order; clips are not repeated while the split has enough.
    """
    if split not in ("validation", "testing"):
        raise ValueError(f"split must be validation or testing, not {split!r}")
    paths = _read_list(root, f"{split}_list.txt")
    command_paths = [p for p in paths if p.split("/")[0] in commands]
    oov_paths = [p for p in paths if p.split("/")[0] not in commands and p.split("/")[0] != NOISE_FOLDER]
    if not command_paths:
        raise ValueError(f"{root / (split + '_list.txt')}: no clips of the model's commands {list(commands)}")
    n_oov = round(n_words * oov_fraction) if oov_paths else 0
    n_commands = n_words - n_oov

    def draw(pool: list[str], n: int) -> list[str]:
        order: list[str] = []
        while len(order) < n:
            order.extend(pool[i] for i in rng.permutation(len(pool)))
        return order[:n]

    chosen = [(p, p.split("/")[0]) for p in draw(command_paths, n_commands)]
    chosen += [(p, UNKNOWN) for p in draw(oov_paths, n_oov)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def check_save_wav(path: str | Path) -> Path:
    """The ``--save-wav`` path, checked before any work: a ``.wav`` name in a folder that exists.

    Raises
    ------
    speechrnn.errors.SpeechRNNError
        The name does not end in ``.wav``, names a folder, or its folder is missing or not writable.
    """
    import os

    from speechrnn.errors import SpeechRNNError

    path = Path(path)
    if path.is_dir():
        raise SpeechRNNError(f"--save-wav {path}: is a folder; give a file name, e.g. {path / 'stream.wav'}")
    if path.suffix.lower() != ".wav":
        raise SpeechRNNError(f"--save-wav {path}: the name must end in .wav (the stream is written as 16-bit WAV)")
    folder = path.parent
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "folder not found"
        raise SpeechRNNError(f"--save-wav {path}: {folder}: {problem}")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SpeechRNNError(f"--save-wav {path}: not writable")
    return path


def evaluate(
    *,
    data: str | Path,
    split: str = "testing",
    minutes: float = 10.0,
    model: str | Path | None = None,
    noise_minutes: float = 2.0,
    oov_fraction: float = 0.2,
    hop: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    backend: str = "auto",
    decision: DecisionConfig | None = None,
    gap_seconds: tuple[float, float] = (1.0, 3.0),
    noise_db: tuple[float, float] = (-50.0, -30.0),
    tune: bool = False,
    save_wav: str | Path | None = None,
    streams: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Build a stream from a Speech Commands split, run the streaming recognizer, and score it.

    Parameters
    ----------
    data : path
        Speech Commands folder (``<word>/*.wav|flac``, list files, ``_background_noise_``).
    split : {"validation", "testing"}
    minutes : float
        Length of the part with words, minutes (about one word every 3 seconds).
    model : path, optional
        Model file (the shipped default model when None).
    noise_minutes : float
        Length of the noise-only section, minutes.
    oov_fraction : float
        Share of out-of-vocabulary words among the placed clips.
    hop : float
        Seconds between model evaluations.
    seed : int
    device : {"cpu", "cuda", "auto"}
    backend : {"auto", "torch", "onnx", "int8"}
        What runs the model (see :class:`~speechrnn.inference.Classifier`).
    decision : DecisionConfig, optional
        Decision settings (defaults when None).
    gap_seconds, noise_db : (low, high)
        See :func:`build_stream`.
    tune : bool
        Also search decision settings on this stream (use the validation split).
    save_wav : path, optional
        Write the stream there (16-bit WAV) for listening or ``speechrnn listen --file``; it must
        end in ``.wav`` and its folder must exist (checked before any work).
    streams : int
        Number of streams, built with seeds ``seed``, ``seed + 1``, ...; with more than one the
        report pools them (counts and durations add up, latencies are pooled) and lists each
        stream's own report under ``"streams"``. ``tune`` and ``save_wav`` need one stream.
    progress : bool

    Returns
    -------
    dict
        The report (JSON-compatible).
    """
    from speechrnn.decisions import DecisionConfig
    from speechrnn.inference import Classifier

    if streams < 1:
        raise ValueError(f"streams must be at least 1, not {streams}")
    if streams > 1 and (tune or save_wav):
        raise ValueError("tuning and saving the stream work on one stream; leave out streams")
    root = Path(data)
    if save_wav:
        save_wav = check_save_wav(save_wav)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found")
    # what every stream shares is loaded once: the model, and the background noise recordings when
    # the first stream needs them (after its clips, so that a tree without list files says so first)
    classifier = Classifier.from_file(model, device=device, backend=backend)
    rate = classifier.feature_config.sample_rate
    background = functools.cache(lambda: _background_noise(root, sample_rate=rate))
    options = dict(
        classifier=classifier, model_name=str(model) if model else "default", root=root, background=background,
        split=split, minutes=minutes, noise_minutes=noise_minutes, oov_fraction=oov_fraction, hop=hop,
        decision=decision or DecisionConfig(), gap_seconds=gap_seconds, noise_db=noise_db, progress=progress,
    )  # fmt: skip
    if streams == 1:
        return _evaluate_one(**options, seed=seed, tune=tune, save_wav=save_wav)[0]
    results = [_evaluate_one(**options, seed=seed + i, tune=False, save_wav=None) for i in range(streams)]
    return pool_reports([r for r, _ in results], [s for _, s in results])


def pool_reports(reports: Sequence[dict[str, Any]], scores: Sequence[StreamingScore]) -> dict[str, Any]:
    """One report over several streams' reports (from :func:`evaluate`) and their scores.

    The ``"score"`` and ``"diagnostics"`` are pooled (see :func:`pool_scores` and
    :func:`pool_counts`), stream lengths and processing times add up, and ``"streams"`` keeps the
    reports given.
    """
    first = reports[0]
    stream_keys = ("duration_seconds", "words", "commands", "oov_words", "noise_only_seconds")
    duration = sum(r["stream"]["duration_seconds"] for r in reports)
    seconds = sum(r["processing"]["seconds"] for r in reports)
    return {
        **{k: first[k] for k in ("model", "data", "split", "backend", "hop_seconds")},
        "seeds": [r["seed"] for r in reports],
        "stream": {
            **first["stream"],
            **{k: round(sum(r["stream"][k] for r in reports), 2) for k in stream_keys},
        },
        "decision": first["decision"],
        "score": pool_scores(scores).as_dict(),
        "diagnostics": pool_counts([r["diagnostics"] for r in reports]),
        "processing": {
            "seconds": round(seconds, 2),
            "real_time_factor": round(seconds / max(duration, 1e-9), 4),
            "steps": sum(r["processing"]["steps"] for r in reports),
        },
        "streams": list(reports),
    }


def _background_noise(root: Path, *, sample_rate: int) -> tuple[list[Path], list[np.ndarray]]:
    """The ``_background_noise_`` recordings of a Speech Commands folder: their paths and audio at ``sample_rate``."""
    from speechrnn.audio import load_audio

    files = sorted(p for p in (root / NOISE_FOLDER).glob("*") if p.suffix.lower() in (".wav", ".flac"))
    if not files:
        raise FileNotFoundError(f"{root / NOISE_FOLDER}: no background noise recordings")
    return files, [load_audio(p, sample_rate=sample_rate) for p in files]


def _evaluate_one(
    *,
    classifier: Classifier,
    model_name: str,
    root: Path,
    background: Callable[[], tuple[list[Path], list[np.ndarray]]],
    split: str,
    minutes: float,
    noise_minutes: float,
    oov_fraction: float,
    hop: float,
    seed: int,
    decision: DecisionConfig,
    gap_seconds: tuple[float, float],
    noise_db: tuple[float, float],
    tune: bool,
    save_wav: Path | None,
    progress: bool,
) -> tuple[dict[str, Any], StreamingScore]:
    """One stream of :func:`evaluate` (its checked options, model and noise loader): its report and its score."""
    import soundfile as sf
    import torch

    from speechrnn.audio import load_audio
    from speechrnn.decisions import decide
    from speechrnn.errors import SpeechRNNError

    rate = classifier.feature_config.sample_rate
    commands = [label for label in classifier.labels if label not in (UNKNOWN, SILENCE)]
    rng = np.random.default_rng(seed)
    mean_gap = sum(gap_seconds) / 2
    n_words = max(1, round(minutes * 60 / (1.0 + mean_gap)))
    chosen = select_clips(root, split=split, commands=commands, n_words=n_words, oov_fraction=oov_fraction, rng=rng)
    clip_samples = classifier.feature_config.clip_samples
    clips = [(load_audio(root / path, sample_rate=rate)[:clip_samples], label) for path, label in chosen]
    noise_files, noise = background()
    audio, truth = build_stream(
        clips,
        noise=noise,
        rng=rng,
        gap_seconds=gap_seconds,
        noise_db=noise_db,
        noise_only_seconds=noise_minutes * 60,
        sample_rate=rate,
    )
    duration = audio.shape[0] / rate
    if save_wav:
        tmp = save_wav.with_name(f".{save_wav.name}.tmp")
        try:
            sf.write(tmp, audio, rate, subtype="PCM_16", format="WAV")
            tmp.replace(save_wav)
        except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
            tmp.unlink(missing_ok=True)
            raise SpeechRNNError(f"--save-wav {save_wav}: cannot write the stream ({exc})") from None
    threads = torch.get_num_threads()
    if classifier.device.type == "cpu":
        torch.set_num_threads(1)  # as when listening live: one small model call per hop
    try:
        started = time.perf_counter()
        times, probabilities = stream_probabilities(classifier, audio, hop_seconds=hop, progress=progress)
        elapsed = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    detections = decide(
        times, probabilities, classifier.labels, config=decision, window_seconds=classifier.feature_config.clip_seconds
    )
    score = score_detections(detections, truth, duration_seconds=duration, noise_only_seconds=noise_minutes * 60)

    def predict_labels(batch: np.ndarray) -> list[str]:
        return [classifier.labels[i] for i in classifier.probabilities(batch).argmax(axis=1)]

    report: dict[str, Any] = {
        "model": model_name,
        "data": str(root),
        "split": split,
        "seed": seed,
        "backend": classifier.backend,
        "hop_seconds": hop,
        "stream": {
            "duration_seconds": round(duration, 2),
            "words": len(truth),
            "commands": score.commands,
            "oov_words": score.oov_words,
            "noise_only_seconds": noise_minutes * 60,
            "gap_seconds": list(gap_seconds),
            "noise_db": list(noise_db),
            "noise_files": [p.name for p in noise_files],
        },
        "decision": asdict(decision),
        "score": score.as_dict(),
        "diagnostics": {
            **diagnostics(score, truth, audio, sample_rate=rate),
            "lost_commands": miss_causes(score, truth, clips, audio, predict_labels, sample_rate=rate),
        },
        "processing": {
            "seconds": round(elapsed, 2),
            "real_time_factor": round(elapsed / duration, 4),
            "steps": int(times.shape[0]),
        },
    }
    if tune:
        ranked = tune_decisions(
            times,
            probabilities,
            classifier.labels,
            truth,
            duration_seconds=duration,
            noise_only_seconds=noise_minutes * 60,
            base=decision,
        )
        report["tuning"] = [{"decision": asdict(c), "score": s.as_dict()} for c, s in ranked[:15]]
    return report, score


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable summary of :func:`evaluate`'s report."""
    s = report["score"]
    seeds = report.get("seeds")
    pooled = f", {len(seeds)} streams pooled, seeds {seeds[0]}-{seeds[-1]}" if seeds else ""
    lines = [
        f"stream: {report['stream']['duration_seconds'] / 60:.1f} min, {s['commands']} commands, "
        f"{s['oov_words']} out-of-vocabulary words, {report['stream']['noise_only_seconds'] / 60:.1f} min noise only "
        f"({report['split']} split{pooled})",
        f"matched {s['matched_percent']:.1f}%  wrong {s['wrong_percent']:.1f}%  missed {s['missed_percent']:.1f}%  "
        f"false positives {s['false_positive_percent']:.1f}% ({s['false_positives']}: "
        f"{s['false_on_oov']} on OOV words, {s['false_duplicates']} duplicates, {s['false_in_noise']} in noise)",
        f"false detections per 10 min: {s['false_per_10min']:.2f} overall, "
        f"{s['noise_only_false_per_10min'] if s['noise_only_false_per_10min'] is not None else 'n/a'} in noise only",
        f"latency from word end: median {_ms(s['latency_median_seconds'])}, p90 {_ms(s['latency_p90_seconds'])}",
        "matched by SNR: "
        + ", ".join(
            f"{band} {v['matched_percent']:.0f}% of {v['n']}" for band, v in report["diagnostics"]["by_snr"].items()
        ),
        _lost_line(report["diagnostics"]),
        "goals: matched >= 90% {}, <= 1 false / 10 min {}, median latency <= 300 ms {}".format(
            *("met" if s["goals"][k] else "NOT met" for k in ("matched_ok", "false_ok", "latency_ok"))
        ),
    ]
    if "tuning" in report:
        lines.append("best decision settings on this stream:")
        for entry in report["tuning"][:5]:
            d, t = entry["decision"], entry["score"]
            lines.append(
                f"  threshold {d['threshold']:.2f} window {d['average_window_seconds']:.2f} s suppression "
                f"{d['suppression_seconds']:.2f} s min_count {d['minimum_count']}: "
                f"matched {t['matched_percent']:.1f}%, {t['false_per_10min']:.2f} false/10 min, "
                f"median latency {_ms(t['latency_median_seconds'])}"
            )
    return "\n".join(lines)


def _lost_line(diagnostics: dict[str, Any]) -> str:
    lost = diagnostics.get("lost_commands", {}).get("counts", {})
    return (
        f"commands not matched: {sum(lost.values())}: {lost.get('clip', 0)} wrong as a clip alone, "
        f"{lost.get('noise', 0)} right alone but not with the stream's noise, "
        f"{lost.get('decisions', 0)} right both ways but not detected"
    )


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def _prepare_output_file(path: Path, option: str) -> list[Path]:
    """Check, before any work, that ``path`` can be written; make its folder. Return the folders made.

    Raises
    ------
    speechrnn.errors.SpeechRNNError
        ``path`` is a folder, lies under a file, or its folder cannot be made or written; the
        message names ``option``.
    """
    import os

    from speechrnn.errors import SpeechRNNError
    from speechrnn.outputs import make_folders, remove_empty

    if path.is_dir():
        raise SpeechRNNError(f"{option} {path}: is a folder; give a file name, e.g. {path / 'report.json'}")
    made = make_folders(path.parent, name=f"{option} {path}", doing="cannot write there")
    if path.exists() and not os.access(path, os.W_OK):
        remove_empty(made)
        raise SpeechRNNError(f"{option} {path}: not writable")
    return made


def _option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the stream options of the command line, or None."""
    low, high = args.noise_db
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        return f"--minutes must be a positive number of minutes, not {args.minutes:g}"
    if not (math.isfinite(args.noise_minutes) and args.noise_minutes >= 0):
        return f"--noise-minutes must be a number of minutes >= 0, not {args.noise_minutes:g}"
    if args.streams < 1:
        return f"--streams must be at least 1, not {args.streams}"
    if args.streams > 1 and (args.tune or args.save_wav):
        return "--tune and --save-wav work on one stream; leave out --streams"
    if not (0 <= args.oov_fraction < 1):
        return f"--oov-fraction must be in [0, 1) (a share of the words), not {args.oov_fraction:g}"
    if not (math.isfinite(low) and math.isfinite(high) and low <= high <= 0):
        return (
            f"--noise-db LOW HIGH must be finite levels in dBFS with LOW <= HIGH <= 0 (0 is full scale), "
            f"not {low:g} {high:g}"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``python -m speechrnn.streaming_accuracy``; returns the exit status."""
    from speechrnn.onnx_backend import BACKENDS

    parser = argparse.ArgumentParser(prog="python -m speechrnn.streaming_accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Speech Commands folder")
    parser.add_argument("--split", default="testing", choices=("validation", "testing"))
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of stream with words (default 10)")
    parser.add_argument("--noise-minutes", type=float, default=2.0, help="minutes of noise only (default 2)")
    parser.add_argument("--oov-fraction", type=float, default=0.2, help="share of out-of-vocabulary words (0.2)")
    parser.add_argument("--model", help="model file (default: the shipped default model)")
    parser.add_argument("--hop", type=float, default=0.1, help="seconds between model evaluations (default 0.1)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="what runs the model (default auto: ONNX Runtime on the CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--streams", type=int, default=1,
                        help="streams to build (seeds SEED, SEED+1, ...) and pool in one report (default 1)")
    parser.add_argument("--threshold", type=float, help="decision threshold (default: DecisionConfig's)")
    parser.add_argument("--window", type=float, help="averaging window, seconds")
    parser.add_argument("--suppression", type=float, help="suppression, seconds")
    parser.add_argument("--min-count", type=int, help="minimum results in the window")
    parser.add_argument(
        "--noise-db",
        type=float,
        nargs=2,
        default=(-50.0, -30.0),
        metavar=("LOW", "HIGH"),
        help="background RMS level range, dBFS (default -50 -30)",
    )
    parser.add_argument("--tune", action="store_true", help="search decision settings (use --split validation)")
    parser.add_argument("--save-wav", help="also write the stream as a WAV file")
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    problem = _option_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if args.tune and args.split == "testing":
        print(
            "warning: --tune on the testing split: settings chosen on it make its figures optimistic; "
            "tune on --split validation",
            file=sys.stderr,
        )

    from speechrnn.decisions import DecisionConfig
    from speechrnn.errors import SpeechRNNError
    from speechrnn.outputs import remove_empty

    overrides = {
        k: v
        for k, v in (
            ("threshold", args.threshold),
            ("average_window_seconds", args.window),
            ("suppression_seconds", args.suppression),
            ("minimum_count", args.min_count),
        )
        if v is not None
    }
    out = Path(args.out) if args.out else None
    made: list[Path] = []
    try:
        if out is not None:
            made = _prepare_output_file(out, "--out")
        decision = replace(DecisionConfig(), **overrides)
        report = evaluate(
            data=args.data,
            split=args.split,
            minutes=args.minutes,
            model=args.model,
            noise_minutes=args.noise_minutes,
            oov_fraction=args.oov_fraction,
            hop=args.hop,
            seed=args.seed,
            device=args.device,
            backend=args.backend,
            decision=decision,
            noise_db=tuple(args.noise_db),
            tune=args.tune,
            save_wav=args.save_wav,
            streams=args.streams,
            progress=not args.quiet,
        )
    except (SpeechRNNError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        remove_empty(made)
        return 1
    for one in report.get("streams", []):
        t = one["score"]
        print(
            f"seed {one['seed']}: matched {t['matched']}/{t['commands']} ({t['matched_percent']:.2f}%), "
            f"{t['false_positives']} false ({t['false_per_10min']:.2f} per 10 min), "
            f"median latency {_ms(t['latency_median_seconds'])}"
        )
    print(format_report(report))
    if out is not None:
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
            tmp.replace(out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            print(f"error: --out {out}: cannot write the report ({exc.strerror or exc})", file=sys.stderr)
            return 1
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Find the spoken word in a recording, and say plainly what is wrong with a bad recording.

The "Teach a word" dialog and ``python -m training.finetune`` share these two functions, so a
take is cut the same way whichever path recorded it:

- :func:`trim_to_speech` keeps the loudest stretch of sound (the word) with a little padding and
  drops the silence, clicks and room noise around it;
- :func:`check_recording` lists the problems that make a take useless for teaching a word:
  silent, clipped, only steady noise, too short, too long.

:func:`loudest_window` finds the model-length window of a short recording that holds the word
(``speechrnn classify`` uses it for files a little longer than a clip).

Levels are measured on 25 ms frames every 10 ms (RMS, in dB relative to full scale, 1.0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SpeechSpan",
    "check_recording",
    "find_speech",
    "frame_levels_db",
    "loudest_window",
    "speech_stretches",
    "trim_to_speech",
]

_WINDOW_SECONDS = 0.025
_HOP_SECONDS = 0.010
_FLOOR_DB = -120.0
#: Frames quieter than this (dBFS) are never speech, however quiet the rest is.
ABSOLUTE_FLOOR_DB = -60.0
#: A take whose loudest frame is below this (dBFS) is reported as silent.
SILENT_DB = -50.0
#: A sample at or beyond this magnitude counts as clipped.
CLIP_LEVEL = 0.999


@dataclass(frozen=True)
class SpeechSpan:
    """Where the word lies in a recording.

    Parameters
    ----------
    start, end : int
        Sample indices of the word (without padding), ``start < end``; ``(0, 0)`` when no
        frame rises above the noise.
    peak_db : float
        Level of the loudest frame, dBFS.
    floor_db : float
        Level of the background (10th percentile of the frame levels), dBFS.
    """

    start: int
    end: int
    peak_db: float
    floor_db: float

    @property
    def samples(self) -> int:
        """Length of the word, samples."""
        return self.end - self.start


def frame_levels_db(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int, int]:
    """RMS level of each 25 ms frame, every 10 ms.

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
        Mono float audio, full scale 1.0.
    sample_rate : int
        Hz.

    Returns
    -------
    levels : np.ndarray, shape (n_frames,), float64
        dBFS per frame (-120 for digital silence); one frame for audio shorter than a window.
    window, hop : int
        Frame length and step, samples.
    """
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    window = max(1, round(_WINDOW_SECONDS * sample_rate))
    hop = max(1, round(_HOP_SECONDS * sample_rate))
    if audio.size <= window:
        power = np.array([np.mean(audio**2)]) if audio.size else np.zeros(1)
    else:
        n_frames = 1 + (audio.size - window) // hop
        cumulative = np.concatenate([[0.0], np.cumsum(audio**2)])
        starts = np.arange(n_frames) * hop
        power = (cumulative[starts + window] - cumulative[starts]) / window
    levels = 10.0 * np.log10(np.maximum(power, 10 ** (_FLOOR_DB / 10)))
    return levels, window, hop


def find_speech(audio: np.ndarray, sample_rate: int, *, top_db: float = 35.0, max_gap_seconds: float = 0.3
                ) -> SpeechSpan:
    """Locate the word: the stretch of loud frames holding the most energy.

    A frame is "active" when it is within ``top_db`` of the loudest frame, at least 6 dB above
    the background (capped at 15 dB below the peak) and above -60 dBFS. Active frames separated
    by less than ``max_gap_seconds`` (the stop gap inside "eight", a pause between syllables)
    join one segment; the segment with the most energy is the word, so a click or a cough well
    apart from it is left out.

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
        Mono float audio.
    sample_rate : int
        Hz.
    top_db : float
        How far below the loudest frame speech may still be, dB.
    max_gap_seconds : float
        Longest quiet gap inside one word, seconds.

    Returns
    -------
    SpeechSpan
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        return SpeechSpan(0, 0, _FLOOR_DB, _FLOOR_DB)
    levels, window, hop, peak, floor, spans = _stretches(audio, sample_rate, top_db=top_db,
                                                         max_gap_seconds=max_gap_seconds)
    if not spans:
        return SpeechSpan(0, 0, peak, floor)
    energy = 10 ** (levels / 10)
    first, last = max(spans, key=lambda span: float(energy[span[0] : span[1] + 1].sum()))
    return SpeechSpan(first * hop, min(audio.size, last * hop + window), peak, floor)


def speech_stretches(audio: np.ndarray, sample_rate: int, *, top_db: float = 35.0, max_gap_seconds: float = 0.3
                     ) -> list[tuple[int, int]]:
    """Every stretch of speech, as :func:`find_speech` finds the loudest one: ``(start, end)`` samples each.

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
    sample_rate : int
    top_db, max_gap_seconds : float
        As :func:`find_speech`.

    Returns
    -------
    list of (int, int)
        In time order; empty when nothing rises above the noise.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        return []
    _, window, hop, _, _, spans = _stretches(audio, sample_rate, top_db=top_db, max_gap_seconds=max_gap_seconds)
    return [(first * hop, min(audio.size, last * hop + window)) for first, last in spans]


def _stretches(audio: np.ndarray, sample_rate: int, *, top_db: float, max_gap_seconds: float
               ) -> tuple[np.ndarray, int, int, float, float, list[tuple[int, int]]]:
    """Frame levels, window and hop (samples), peak and floor (dBFS), and the stretches of active frames
    as (first, last) frame indices."""
    levels, window, hop = frame_levels_db(audio, sample_rate)
    peak = float(levels.max())
    floor = float(np.percentile(levels, 10))
    threshold = max(peak - top_db, min(floor + 6.0, peak - 15.0), ABSOLUTE_FLOOR_DB)
    active = np.flatnonzero(levels >= threshold)
    if active.size == 0 or peak < ABSOLUTE_FLOOR_DB:
        return levels, window, hop, peak, floor, []
    max_gap = max(1, round(max_gap_seconds * sample_rate / hop))
    breaks = np.flatnonzero(np.diff(active) > max_gap)
    first = np.concatenate([[0], breaks + 1])
    last = np.concatenate([breaks, [active.size - 1]])
    return levels, window, hop, peak, floor, [(int(active[a]), int(active[b])) for a, b in zip(first, last,
                                                                                                 strict=True)]


def trim_to_speech(audio: np.ndarray, sample_rate: int, *, top_db: float = 35.0, pad_seconds: float = 0.1,
                   max_gap_seconds: float = 0.3) -> np.ndarray:
    """Cut a recording down to the spoken word plus ``pad_seconds`` on each side.

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
        Mono float audio, full scale 1.0.
    sample_rate : int
        Hz.
    top_db : float
        How far below the loudest frame the word's quiet ends may be, dB (see :func:`find_speech`).
    pad_seconds : float
        Audio kept before and after the word (clamped to the recording), seconds.
    max_gap_seconds : float
        Longest quiet gap inside one word, seconds.

    Returns
    -------
    np.ndarray, shape (m,), float32
        The word; the whole recording when nothing stands out (a silent recording: use
        :func:`check_recording` to refuse it).
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    span = find_speech(audio, sample_rate, top_db=top_db, max_gap_seconds=max_gap_seconds)
    if span.samples <= 0:
        return audio.copy()
    pad = round(pad_seconds * sample_rate)
    return audio[max(0, span.start - pad) : min(audio.size, span.end + pad)].copy()


def check_recording(audio: np.ndarray, sample_rate: int, *, min_speech_seconds: float = 0.1,
                    max_speech_seconds: float = 1.0, top_db: float = 35.0) -> list[str]:
    """What makes a take unusable for teaching a word, in plain words (empty when it is fine).

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
        The recording as made (before trimming), mono float, full scale 1.0.
    sample_rate : int
        Hz.
    min_speech_seconds : float
        Shortest acceptable word, seconds.
    max_speech_seconds : float
        Longest acceptable word, seconds: the model hears this much at a time (its clip length).
    top_db : float
        As in :func:`find_speech`.

    Returns
    -------
    list of str
        One sentence per problem, e.g. ``"silent: the loudest part is -72 dBFS; check the
        microphone"``; problems are: silent, clipped, steady noise only, too short, too long.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    problems: list[str] = []
    duration = audio.size / sample_rate
    if audio.size == 0 or duration < min_speech_seconds:
        return [f"too short: the recording lasts only {duration:.2f} s"]
    if not np.all(np.isfinite(audio)):
        return ["damaged: the recording holds invalid (NaN or infinite) samples"]
    span = find_speech(audio, sample_rate, top_db=top_db)
    if span.peak_db < SILENT_DB:
        return [f"silent: the loudest part is {span.peak_db:.0f} dBFS; check that the microphone is on and not muted"]
    clipped = int(np.count_nonzero(np.abs(audio) >= CLIP_LEVEL))
    if clipped >= max(5, int(0.001 * audio.size)):
        problems.append(
            f"clipped: {clipped} samples hit full scale, which distorts the sound; "
            "speak a little further from the microphone or lower its input level"
        )
    if duration >= 1.0 and span.peak_db - span.floor_db < 10.0:
        problems.append(
            f"no word stands out: the loudest part is only {span.peak_db - span.floor_db:.0f} dB above the "
            "background; speak closer to the microphone"
        )
        return problems
    speech = span.samples / sample_rate
    if speech < min_speech_seconds:
        problems.append(f"too short: the sound lasts only {speech:.2f} s; say the whole word")
    elif speech > max_speech_seconds + 0.05:
        problems.append(
            f"too long: the sound lasts {speech:.1f} s but the model hears {max_speech_seconds:g} s at a time; "
            "say the word once, alone, in a quiet moment"
        )
    return problems


def loudest_window(audio: np.ndarray, length: int, *, tolerance: float = 0.01) -> int:
    """Start of the ``length``-sample window that holds the most energy, centred on its plateau.

    This is how Speech Commands' one-second clips were cut from longer recordings (the loudest
    section). When a word is shorter than the window, every window that holds the whole word has
    about the same energy; the middle of that run of windows (energy within ``tolerance`` of the
    maximum) is returned, so the word sits near the centre as in the training clips.

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
        Mono float audio.
    length : int
        Window length, samples (>= 1).
    tolerance : float
        Relative energy below the maximum that still counts as "as loud", in [0, 1).

    Returns
    -------
    int
        Sample index of the window's start, in ``[0, max(0, n - length)]`` (0 when the audio is
        not longer than the window).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if audio.size <= length:
        return 0
    centred = audio - audio.mean()  # a DC offset adds the same energy everywhere but must not win
    cumulative = np.concatenate([[0.0], np.cumsum(centred**2)])
    energy = cumulative[length:] - cumulative[:-length]  # (n - length + 1,) one per start
    best = int(energy.argmax())
    quieter = np.flatnonzero(energy < energy[best] * (1.0 - tolerance))
    before = quieter[quieter < best]
    after = quieter[quieter > best]
    low = int(before[-1]) + 1 if before.size else 0
    high = int(after[0]) - 1 if after.size else energy.size - 1
    return (low + high) // 2

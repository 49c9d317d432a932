"""Trimming takes to the spoken word, and the plain-language checks of a recording."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_sound

from speechrnn.trim import (
    check_recording,
    find_speech,
    frame_levels_db,
    loudest_window,
    speech_stretches,
    trim_to_speech,
)

SR = 16000


def recording(rng: np.random.Generator, *, seconds: float = 2.0, word_at: float = 0.7, word_seconds: float = 0.5,
              level: float = 0.3, noise: float = 0.002) -> tuple[np.ndarray, int, int]:
    """A take as the app records it: room noise with one word in it; returns (audio, start, end)."""
    audio = (rng.standard_normal(round(seconds * SR)) * noise).astype(np.float32)
    word = make_sound("rise", rng, seconds=word_seconds) * level
    start = round(word_at * SR)
    audio[start:start + word.size] += word
    return audio, start, start + word.size


def test_frame_levels_follow_the_signal() -> None:
    audio = np.concatenate([np.zeros(SR // 2), np.full(SR // 2, 0.5)]).astype(np.float32)
    levels, window, hop = frame_levels_db(audio, SR)
    assert (window, hop) == (400, 160)
    assert levels[0] == pytest.approx(-120.0)
    assert levels[-1] == pytest.approx(20 * np.log10(0.5), abs=0.01)


def test_trim_keeps_the_word_with_padding(rng: np.random.Generator) -> None:
    audio, start, end = recording(rng)
    trimmed = trim_to_speech(audio, SR, pad_seconds=0.1)
    # the whole word survives, with about 0.1 s either side, and the rest of the room is gone
    assert (end - start) <= trimmed.size <= (end - start) + round(0.25 * SR)
    offset = int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(trimmed, 64)
                                       == audio[start:start + 64], axis=1))[0])
    assert 0.05 * SR <= offset <= 0.13 * SR
    assert trim_to_speech(audio, SR, pad_seconds=0.0).size < trimmed.size


def test_trim_ignores_a_click_far_from_the_word(rng: np.random.Generator) -> None:
    audio, start, end = recording(rng, word_at=1.2)
    audio[1600:1700] += 0.9  # a loud 6 ms click at 0.1 s (the button press)
    span = find_speech(audio, SR)
    assert abs(span.start - start) < 0.05 * SR and abs(span.end - end) < 0.05 * SR


def test_trim_joins_syllables_across_a_short_gap(rng: np.random.Generator) -> None:
    audio, start, _ = recording(rng, word_at=0.5, word_seconds=0.25)
    second = make_sound("fall", rng, seconds=0.25) * 0.3
    gap = round(0.12 * SR)
    audio[start + 4000 + gap:start + 4000 + gap + second.size] += second
    span = find_speech(audio, SR)
    assert span.start <= start + 0.03 * SR
    assert span.end >= start + 4000 + gap + second.size - 0.03 * SR


def test_silent_recording_is_returned_whole_and_reported() -> None:
    audio = np.zeros(SR, dtype=np.float32)
    assert trim_to_speech(audio, SR).size == SR
    problems = check_recording(audio, SR)
    assert len(problems) == 1 and problems[0].startswith("silent")


def test_good_take_has_no_problems(rng: np.random.Generator) -> None:
    audio, _, _ = recording(rng)
    assert check_recording(audio, SR) == []


def test_clipped_take_is_reported(rng: np.random.Generator) -> None:
    audio, _, _ = recording(rng, level=4.0)
    problems = check_recording(np.clip(audio, -1.0, 1.0), SR)
    assert any(p.startswith("clipped") and "samples hit full scale" in p for p in problems)


def test_too_short_and_too_long(rng: np.random.Generator) -> None:
    assert check_recording(np.full(800, 0.1, dtype=np.float32), SR)[0].startswith("too short")
    blip, _, _ = recording(rng, word_seconds=0.05)
    assert any(p.startswith("too short") for p in check_recording(blip, SR))
    long_word, _, _ = recording(rng, seconds=3.0, word_at=0.3, word_seconds=1.8)
    problems = check_recording(long_word, SR, max_speech_seconds=1.0)
    assert any(p.startswith("too long") and "1.8 s" in p for p in problems)


def test_steady_noise_without_a_word_is_reported(rng: np.random.Generator) -> None:
    noise = (rng.standard_normal(2 * SR) * 0.05).astype(np.float32)
    problems = check_recording(noise, SR)
    assert problems and problems[0].startswith("no word stands out")


def test_non_finite_samples_are_reported() -> None:
    audio = np.zeros(SR, dtype=np.float32)
    audio[10] = np.nan
    assert check_recording(audio, SR)[0].startswith("damaged")


def test_loudest_window_centres_the_word(rng: np.random.Generator) -> None:
    """A 0.5 s word at 1.2 s of a 3 s take: the 1 s window holding it is centred on it, DC or not."""
    audio, start, end = recording(rng, seconds=3.0, word_at=1.2)
    centre = (start + end) / 2
    for offset in (0.0, 0.4):  # a DC offset adds energy everywhere and must not move the window
        found = loudest_window(audio + np.float32(offset), SR)
        assert found <= start and found + SR >= end
        assert abs(found + SR / 2 - centre) <= 0.02 * SR
    # a word at the very start or end of the take: the window holds all of it but its faint edge
    edge = 0.02 * SR
    for word_at in (0.0, 0.95):
        audio, start, end = recording(rng, seconds=1.5, word_at=word_at)
        found = loudest_window(audio, SR)
        assert 0 <= found <= start + edge and end - edge <= found + SR <= audio.size
    assert loudest_window(audio[: SR // 2], SR) == 0  # not longer than the window
    with pytest.raises(ValueError, match="length"):
        loudest_window(audio, 0)


def test_speech_stretches_finds_every_word_find_speech_picks_the_loudest() -> None:
    """Three words apart; the loudest is the one find_speech returns; a short pause inside a word joins it."""
    rng = np.random.default_rng(8)
    audio = (rng.standard_normal(4 * SR) * 1e-4).astype(np.float32)
    t = np.arange(int(0.4 * SR)) / SR
    for at, gain in ((0.5, 0.2), (1.7, 0.6), (2.9, 0.3)):
        audio[int(at * SR):int(at * SR) + t.size] += (gain * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stretches = speech_stretches(audio, SR)
    assert len(stretches) == 3
    for (start, end), at in zip(stretches, (0.5, 1.7, 2.9), strict=True):
        assert abs(start / SR - at) < 0.05 and abs(end / SR - (at + 0.4)) < 0.05
    loudest = find_speech(audio, SR)
    assert (loudest.start, loudest.end) == stretches[1]
    joined = audio.copy()
    joined[int(1.85 * SR):int(1.95 * SR)] = 0.0  # a 0.1 s stop inside the second word
    assert len(speech_stretches(joined, SR)) == 3
    assert speech_stretches(np.zeros(SR, dtype=np.float32), SR) == []

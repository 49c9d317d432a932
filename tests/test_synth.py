"""Tests for training.synth: espeak-ng negatives, the word and voice lists, splices and reversals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from training.synth import (
    COMMAND_HOMOPHONES,
    EVAL_VOICES,
    HELD_OUT_REAL_WORDS,
    MINI_COMMANDS,
    NEGATIVE_WORDS,
    OOV_EVAL_WORDS,
    TRAIN_VOICES,
    EspeakError,
    available_voices,
    fit_speech,
    negative_words_for,
    plan_renderings,
    speech_region,
    splice_and_reverse,
    synthesize,
)

RATE = 16000
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

#: Every spelling that sounds like a mini command, written out here independently of the module.
SOUNDS_LIKE_A_COMMAND = {
    "yes": {"yes", "yess", "yesss", "yez"},
    "no": {"no", "know", "noh", "knowe", "noe"},
    "up": {"up", "upp"},
    "down": {"down", "downe"},
    "left": {"left", "lefte"},
    "right": {"right", "write", "rite", "wright", "righte"},
    "go": {"go", "goe", "gogh"},
    "stop": {"stop", "stopp"},
}
#: Inflections and compounds that contain a command whole.
CONTAINS_A_COMMAND = {
    "yeses", "yesterday", "nos", "nobody", "knows", "known", "ups", "upper", "upload", "uptown", "upon", "setup",
    "downs", "download", "downtown", "downed", "lefts", "lefty", "leftover", "rights", "righted", "rightful",
    "righteous", "goes", "going", "gone", "goer", "stops", "stopped", "stopping", "stopper", "stopwatch",
}  # fmt: skip


def _voice_parts(voices):
    accents = {v.partition("+")[0] for v in voices}
    variants = {v.partition("+")[2] for v in voices}
    return accents, variants


# -- word and voice lists ---------------------------------------------------------------------


def test_word_lists_hold_no_command_and_no_homophone():
    banned = set().union(*SOUNDS_LIKE_A_COMMAND.values()) | CONTAINS_A_COMMAND
    for name, words in (("NEGATIVE", NEGATIVE_WORDS), ("OOV_EVAL", OOV_EVAL_WORDS), ("HELD_OUT", HELD_OUT_REAL_WORDS)):
        assert not set(words) & banned, f"{name} holds a command or homophone: {set(words) & banned}"
        assert len(set(words)) == len(words), f"{name} has duplicates"
        assert all(w == w.lower() and w.isalpha() for w in words)
    assert set(MINI_COMMANDS) == set(SOUNDS_LIKE_A_COMMAND)
    for command, spellings in SOUNDS_LIKE_A_COMMAND.items():  # the module's own table agrees
        assert spellings - {command} == set(COMMAND_HOMOPHONES[command])
    assert 150 <= len(NEGATIVE_WORDS) <= 300
    assert 35 <= len(OOV_EVAL_WORDS) <= 60


def test_evaluation_words_are_disjoint_from_training_words():
    train, oov, real = set(NEGATIVE_WORDS), set(OOV_EVAL_WORDS), set(HELD_OUT_REAL_WORDS)
    assert not train & oov and not train & real and not oov & real
    # no evaluation word hides inside a training word or the other way round ("pen" / "pencil")
    for held in oov | real:
        for word in train:
            if len(word) >= 3:
                assert word not in held, (word, held)
            assert held not in word, (held, word)
    # the near-misses the models confuse most are trained on
    assert {"off", "of", "lift", "town", "cup", "top", "light", "doe", "yet", "nope"} <= train


def test_train_and_eval_voices_share_no_accent_and_no_variant():
    assert not set(TRAIN_VOICES) & set(EVAL_VOICES)
    train_accents, train_variants = _voice_parts(TRAIN_VOICES)
    eval_accents, eval_variants = _voice_parts(EVAL_VOICES)
    assert not train_accents & eval_accents
    assert not (train_variants - {""}) & eval_variants
    assert len(TRAIN_VOICES) >= 20 and len(EVAL_VOICES) >= 6


@needs_espeak
def test_every_listed_voice_is_installed():
    languages, variants = available_voices()
    for voice in TRAIN_VOICES + EVAL_VOICES:
        accent, _, variant = voice.partition("+")
        assert accent in languages, voice
        assert not variant or variant in variants, voice


def test_negative_words_for_drops_other_commands_and_their_homophones():
    twelve = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    words = negative_words_for(twelve)
    assert "on" in NEGATIVE_WORDS and "off" in NEGATIVE_WORDS
    assert "on" not in words and "off" not in words
    digits = negative_words_for(("two", "four"))
    assert not {"two", "too", "four", "for"} & set(digits)
    assert "three" in digits
    assert negative_words_for(MINI_COMMANDS) == NEGATIVE_WORDS


def test_plan_is_reproducible_distinct_and_independent_of_other_words():
    kwargs = {"voices": ("en-us", "en"), "speeds": (120, 160), "pitches": (40, 60), "seed": 3}
    plan = plan_renderings(("apple", "town"), per_word=5, **kwargs)
    assert len(plan) == 10
    for word in ("apple", "town"):
        settings = [(r.voice, r.speed, r.pitch) for r in plan if r.word == word]
        assert len(set(settings)) == 5  # distinct while there are enough (8 here)
    alone = plan_renderings(("town",), per_word=5, **kwargs)
    assert alone == [r for r in plan if r.word == "town"]
    assert plan_renderings(("apple", "town"), per_word=5, **kwargs) == plan
    many = plan_renderings(("apple",), per_word=12, **kwargs)  # more than the 8 settings: repeats get index 1
    assert len({r.relative_path for r in many}) == 12
    assert max(r.index for r in many) == 1
    with pytest.raises(ValueError, match="per_word"):
        plan_renderings(("apple",), per_word=0, **kwargs)


# -- synthesize -------------------------------------------------------------------------------


@needs_espeak
def test_synthesize_writes_one_second_clips_with_the_speech_inside(tmp_path):
    voices = ("en-us", "en+m3")
    paths = synthesize(
        ("apple", "town"), tmp_path / "a", voices=voices, speeds=(160,), pitches=(50,), per_word=2, seed=0,
        progress=False,
    )  # fmt: skip
    assert len(paths) == 4
    assert {p.parent.name for p in paths} == {"apple", "town"}
    assert {p.name for p in paths if p.parent.name == "apple"} == {
        "en-us-160-50_nohash_0.wav",
        "en+m3-160-50_nohash_0.wav",
    }
    for path in paths:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
        audio, _ = sf.read(path, dtype="float32")
        peak = np.abs(audio).max()
        assert 10 ** (-26 / 20) - 1e-3 <= peak <= 10 ** (-1 / 20) + 1e-3
        # the speech is whole and inside the clip: faded to zero at both ends, zero padding around it
        start, end = np.flatnonzero(audio)[[0, -1]]
        assert start > 0 and end < 16000 - 1
        assert end - start > 0.15 * 16000  # a word, not a click
        assert abs(audio[start]) < 0.05 * peak and abs(audio[end]) < 0.05 * peak
        assert np.sqrt(np.mean(audio[start:end] ** 2)) > 0.05 * peak

    # cached: nothing is rendered again
    stamps = [p.stat().st_mtime_ns for p in paths]
    again = synthesize(
        ("apple", "town"), tmp_path / "a", voices=voices, speeds=(160,), pitches=(50,), per_word=2, seed=0,
        progress=False,
    )  # fmt: skip
    assert again == paths and [p.stat().st_mtime_ns for p in paths] == stamps
    # reproducible: the same seed elsewhere gives the same audio
    other = synthesize(("town",), tmp_path / "b", voices=voices, speeds=(160,), pitches=(50,), per_word=2, seed=0,
                       progress=False)  # fmt: skip
    for path in other:
        assert np.array_equal(sf.read(path)[0], sf.read(tmp_path / "a" / "town" / path.name)[0])


@needs_espeak
def test_synthesize_refuses_bad_voices_and_words(tmp_path):
    with pytest.raises(EspeakError, match="no voice variant 'nosuchvariant'"):
        synthesize(("apple",), tmp_path, voices=("en-us+nosuchvariant",), per_word=1, seed=0, progress=False)
    with pytest.raises(EspeakError, match="no voice 'xx-nothing'"):
        synthesize(("apple",), tmp_path, voices=("xx-nothing",), per_word=1, seed=0, progress=False)
    with pytest.raises(ValueError, match="not a plain lower-case word"):
        synthesize(("two words",), tmp_path, per_word=1, seed=0, progress=False)
    with pytest.raises(ValueError, match="pitch"):
        synthesize(("apple",), tmp_path, pitches=(120,), per_word=1, seed=0, progress=False)
    assert not list(tmp_path.rglob("*.wav"))


# -- splice_and_reverse -----------------------------------------------------------------------

FREQS = {"a": 300.0, "b": 1200.0, "c": 3000.0}


def _tone_clips(rng, labels, length=16000):
    """One tone burst per clip (frequency set by the label) at a random offset and length."""
    clips = np.zeros((len(labels), length), dtype=np.float32)
    for i, label in enumerate(labels):
        n = int(rng.integers(4000, 8000))
        start = int(rng.integers(0, length - n))
        t = np.arange(n) / 16000
        clips[i, start : start + n] = 0.5 * np.sin(2 * np.pi * FREQS[label] * t)
    return clips


def _dominant(segment):
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    return np.fft.rfftfreq(len(segment), 1 / 16000)[int(np.argmax(spectrum))]


def _nearest_label(freq):
    return min(FREQS, key=lambda k: abs(FREQS[k] - freq))


def test_reversals_are_exact_time_reversed_sources(rng):
    labels = ["a", "a", "b", "b", "c", "c"]
    clips = _tone_clips(rng, labels)
    out = splice_and_reverse(clips, rng, count=8, labels=labels, reverse_share=0.5)
    assert out.shape == (8, 16000) and out.dtype == np.float32
    for row in out[:4]:
        assert any(np.array_equal(row[::-1], clip) for clip in clips)
    start, end = speech_region(out[0])
    source = next(clip for clip in clips if np.array_equal(out[0][::-1], clip))
    s_start, s_end = speech_region(source)
    assert np.array_equal(out[0][start:end], source[s_start:s_end][::-1])


def test_splices_join_two_different_words_and_match_neither(rng):
    labels = ["a", "a", "b", "b", "c", "c"]
    clips = _tone_clips(rng, labels)
    out = splice_and_reverse(clips, rng, count=12, labels=labels, reverse_share=0.0)
    assert out.shape == (12, 16000)
    assert np.abs(out).max() <= 0.5 + 1e-6
    for row in out:
        start, end = speech_region(row)
        span = end - start
        assert span > 800
        head = _nearest_label(_dominant(row[start : start + span // 5]))
        tail = _nearest_label(_dominant(row[end - span // 5 : end]))
        assert head != tail  # the first part of one word, the last part of another
        for clip in clips:  # differs from every source, at any shift
            corr = np.abs(np.fft.irfft(np.fft.rfft(row, 32000) * np.conj(np.fft.rfft(clip, 32000)))).max()
            assert corr < 0.9 * np.linalg.norm(row) * np.linalg.norm(clip)


def test_splices_without_labels_use_two_different_clips(rng):
    clips = _tone_clips(rng, ["a", "b"])
    out = splice_and_reverse(clips, rng, count=6, reverse_share=0.0)
    for row in out:
        start, end = speech_region(row)
        span = end - start
        heads_tails = {_nearest_label(_dominant(row[start : start + span // 5])),
                       _nearest_label(_dominant(row[end - span // 5 : end]))}  # fmt: skip
        assert heads_tails == {"a", "b"}


def test_fragments_are_a_words_head_at_the_end_or_its_tail_at_the_start(rng):
    labels = ["a", "b", "c"]
    clips = np.zeros((3, 16000), dtype=np.float32)
    for i in range(3):  # each "word": 0.5 s of loud noise with no zero sample, so its span is exact
        clips[i, 4000:12000] = rng.choice([-1.0, 1.0], 8000) * rng.uniform(0.2, 0.5, 8000)
    out = splice_and_reverse(clips, rng, count=10, labels=labels, reverse_share=0.2, fragment_share=0.6)
    assert out.shape == (10, 16000)
    fragments = out[2:8]
    for k, row in enumerate(fragments):
        nonzero = np.flatnonzero(row)
        start, end = nonzero[0], nonzero[-1] + 1
        assert end - start == nonzero.size  # one piece
        assert 0.15 * 8000 - 1 <= end - start <= 0.4 * 8000 + 1  # 15-40% of the word
        if k % 2 == 0:  # head against the end of the window
            assert 16000 - end <= 800
            piece, source = row[start:end], [c[4000 : 4000 + end - start] for c in clips]
        else:  # tail against the start
            assert start <= 800
            piece, source = row[start:end], [c[12000 - (end - start) : 12000] for c in clips]
        assert any(np.array_equal(piece, s) for s in source)
    for row in out[8:]:  # the rest are still splices, away from neither edge in particular
        start, end = speech_region(row)
        assert end - start > 0.5 * 8000
    assert np.array_equal(  # no fragments asked for: the same draws as before the option existed
        splice_and_reverse(clips, np.random.default_rng(1), count=6, labels=labels),
        splice_and_reverse(clips, np.random.default_rng(1), count=6, labels=labels, fragment_share=0.0),
    )
    with pytest.raises(ValueError, match="fragment_share"):
        splice_and_reverse(clips, rng, count=4, labels=labels, reverse_share=0.6, fragment_share=0.6)


def test_splice_and_reverse_refuses_what_it_cannot_do(rng):
    clips = _tone_clips(rng, ["a", "b"])
    with pytest.raises(ValueError, match="non-empty"):
        splice_and_reverse(clips[0], rng, count=2)
    with pytest.raises(ValueError, match="two words"):  # "no"/"go" share their ending: never spliced
        splice_and_reverse(clips, rng, count=2, labels=["no", "go"], reverse_share=0.0)
    with pytest.raises(ValueError, match="2 labels"):
        splice_and_reverse(np.concatenate([clips, clips]), rng, count=2, labels=["a", "b"], reverse_share=0.0)
    with pytest.raises(ValueError, match="two clips"):
        splice_and_reverse(clips[:1], rng, count=2, reverse_share=0.0)
    assert splice_and_reverse(clips[:1], rng, count=3, reverse_share=1.0).shape == (3, 16000)
    assert splice_and_reverse(clips, rng, count=0).shape == (0, 16000)


def test_speech_region_finds_a_burst():
    clip = np.zeros(16000, dtype=np.float32)
    clip[4000:9000] = 0.3
    assert speech_region(clip) == (4000, 9000)
    assert speech_region(np.zeros(16000, dtype=np.float32)) == (0, 16000)


def test_fit_speech_trims_places_and_fits_long_renderings(rng):
    t = np.arange(8000) / RATE
    word = np.concatenate([np.zeros(3000), 0.5 * np.sin(2 * np.pi * 440 * t), np.zeros(5000)]).astype(np.float32)
    clip = fit_speech(word, rng, clip_samples=RATE, sample_rate=RATE)
    start, end = np.flatnonzero(clip)[[0, -1]]
    assert clip.shape == (RATE,) and 7800 <= end - start + 1 <= 8000  # the silence around it is trimmed off
    assert 10 ** (-26 / 20) <= np.abs(clip).max() <= 10 ** (-1 / 20)
    offsets = {int(np.flatnonzero(fit_speech(word, rng, clip_samples=RATE, sample_rate=RATE))[0]) for _ in range(5)}
    assert len(offsets) > 1  # a random offset each time
    slightly_long = (0.5 * np.sin(2 * np.pi * 440 * np.arange(19000) / RATE)).astype(np.float32)
    squeezed = fit_speech(slightly_long, rng, clip_samples=RATE, sample_rate=RATE)
    assert np.count_nonzero(squeezed) > 0.95 * RATE  # time-compressed, not cut
    burst = np.zeros(3 * RATE, dtype=np.float32)
    burst[:] = 0.01 * rng.standard_normal(3 * RATE)
    burst[RATE + 4000 : RATE + 9000] = 0.9
    cut = fit_speech(burst, rng, clip_samples=RATE, sample_rate=RATE)
    assert np.count_nonzero(np.abs(cut) > 0.5 * np.abs(cut).max()) >= 4900  # the loudest second is kept
    with pytest.raises(ValueError, match="silent"):
        fit_speech(np.zeros(RATE, dtype=np.float32), rng, clip_samples=RATE, sample_rate=RATE)

"""The streaming accuracy tool: stream building, scoring, and an end-to-end run on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_class_clip_with_span, write_speech_commands_tree

import speechrnn.streaming_accuracy as streaming_accuracy
from speechrnn.decisions import Detection
from speechrnn.streaming_accuracy import (
    build_stream,
    evaluate,
    main,
    make_background,
    miss_causes,
    pool_counts,
    pool_scores,
    score_detections,
)


def detection(label: str, time: float) -> Detection:
    return Detection(label=label, score=0.9, time=time, start=time - 1.0, end=time)


def test_make_background_levels_and_length() -> None:
    rng = np.random.default_rng(0)
    noise = [rng.standard_normal(16000 * 3).astype(np.float32) * 0.01, np.sin(np.arange(8000) * 0.1) * 0.5]
    background = make_background(noise, 16000 * 40, rng=rng, level_db=(-40.0, -30.0))
    assert background.shape == (16000 * 40,) and background.dtype == np.float32
    seconds = background.reshape(40, 16000)
    levels = 20 * np.log10(np.sqrt((seconds.astype(np.float64) ** 2).mean(axis=1)))
    # whole seconds inside segments lie in the level range (joins fade, so allow a little below)
    assert np.median(levels) == pytest.approx(-35, abs=5.5)
    assert levels.max() <= -29.0
    assert np.all(levels > -60)  # no gaps of silence at the joins
    with pytest.raises(ValueError, match="noise"):
        make_background([np.zeros(16000, dtype=np.float32)], 100, rng=rng)


def test_build_stream_places_words_at_known_times() -> None:
    rng = np.random.default_rng(1)
    clips, spans = [], []
    for name in ("rise", "tone", "_unknown_", "buzz"):
        clip, start, end = make_class_clip_with_span(name, rng)
        clips.append((clip, name))
        spans.append((start, end))
    noise = rng.standard_normal(16000 * 5).astype(np.float32)
    audio, truth = build_stream(
        clips,
        noise=noise,
        rng=rng,
        gap_seconds=(1.5, 1.5),
        noise_db=(-60.0, -55.0),
        lead_seconds=0.5,
        noise_only_seconds=4.0,
    )
    assert [t[0] for t in truth] == ["rise", "tone", "_unknown_", "buzz"]
    for k, ((label, start, end), (clip, _), (sound_start, sound_end)) in enumerate(
        zip(truth, clips, spans, strict=True)
    ):
        position = 0.5 + k * 2.5  # lead, then 1 s clip + 1.5 s gap each
        # the word span is found within a frame or two of where the sound was put
        assert start == pytest.approx(position + sound_start, abs=0.04), label
        assert end == pytest.approx(position + sound_end, abs=0.04), label
        i = round(position * 16000)
        assert np.corrcoef(audio[i : i + clip.shape[0]], clip)[0, 1] > 0.99  # the clip, under quiet noise
    # after the last clip: its gap, then the 4 s noise-only section at the requested level
    assert audio.shape[0] == round((0.5 + 4 * 2.5 + 4.0) * 16000)
    tail = audio[-4 * 16000 :].astype(np.float64)
    assert 20 * np.log10(np.sqrt(np.mean(tail**2))) == pytest.approx(-57.5, abs=3)


def test_score_detections_counts_every_kind() -> None:
    truth = [("yes", 1.0, 1.5), ("no", 4.0, 4.4), ("_unknown_", 7.0, 7.5), ("up", 10.0, 10.6), ("go", 13.0, 13.5)]
    detections = [
        detection("yes", 1.6),  # matched, 100 ms after the word
        detection("yes", 1.9),  # duplicate of the same word
        detection("up", 4.5),  # wrong label for "no"
        detection("stop", 7.3),  # on an out-of-vocabulary word
        detection("up", 10.9),  # matched, 300 ms
        detection("left", 15.0),  # in noise, between words (go ends 13.5 + 0.75 tolerance)
        detection("left", 19.0),  # in the noise-only section
    ]
    score = score_detections(detections, truth, duration_seconds=20.0, noise_only_seconds=4.0)
    assert (score.commands, score.oov_words) == (4, 1)
    assert (score.matched, score.wrong, score.missed) == (2, 1, 1)
    assert (score.false_on_oov, score.false_duplicates, score.false_in_noise) == (1, 1, 2)
    assert score.false_positives == 4 and score.noise_only_false == 1
    assert score.matched_percent == 50.0 and score.wrong_percent == 25.0 and score.missed_percent == 25.0
    assert score.false_positive_percent == 100.0
    assert score.false_per_10min == pytest.approx(4 / 20 * 600)
    assert score.noise_only_false_per_10min == pytest.approx(150.0)
    assert score.latency_median == pytest.approx(0.2)
    report = score.as_dict()
    assert report["goals"]["matched_ok"] is False and report["latency_p90_seconds"] == pytest.approx(0.28)
    json.dumps(report)
    # a detection before the word ends counts (negative latency), one past the tolerance does not
    early = score_detections([detection("yes", 1.3)], truth[:1], duration_seconds=5.0)
    assert early.matched == 1 and early.latency_median == pytest.approx(-0.2)
    late = score_detections([detection("yes", 2.3)], truth[:1], duration_seconds=5.0)
    assert late.matched == 0 and late.false_in_noise == 1 and late.missed == 1



def test_pooled_score_is_over_all_streams_together() -> None:
    truth = [("yes", 1.0, 1.5), ("no", 4.0, 4.4), ("_unknown_", 7.0, 7.5)]
    one = score_detections(
        [detection("yes", 1.6), detection("stop", 7.3)], truth, duration_seconds=10.0, noise_only_seconds=2.0
    )
    two = score_detections(
        [detection("yes", 1.9), detection("no", 4.6), detection("up", 9.0)],
        truth,
        duration_seconds=50.0,
        noise_only_seconds=30.0,
    )
    pooled = pool_scores([one, two])
    assert (pooled.commands, pooled.oov_words, pooled.matched, pooled.missed) == (4, 2, 3, 1)
    assert (pooled.false_positives, pooled.false_on_oov, pooled.false_in_noise) == (2, 1, 1)
    assert pooled.duration_seconds == 60.0 and pooled.noise_only_seconds == 32.0
    # rates over the total: 2 false in 60 s is 20 per 10 min (not the mean of 60 and 12)
    assert pooled.false_per_10min == pytest.approx(20.0)
    assert pooled.matched_percent == 75.0
    assert sorted(pooled.latencies) == pytest.approx([0.1, 0.2, 0.4]) and pooled.latency_median == pytest.approx(0.2)
    assert pooled.outcomes == one.outcomes + two.outcomes
    with pytest.raises(ValueError, match="at least one"):
        pool_scores([])


def test_pool_counts_adds_nested_tables_and_recomputes_percentages() -> None:
    a = {"by_word": {"yes": {"n": 3, "matched": 3, "matched_percent": 100.0}}, "oov_detected_as": {"up": 1}}
    b = {
        "by_word": {"yes": {"n": 1, "matched": 0, "matched_percent": 0.0}, "no": {"n": 2, "matched": 1}},
        "oov_detected_as": {"up": 2, "go": 1},
    }
    assert pool_counts([a, b]) == {
        "by_word": {
            "yes": {"n": 4, "matched": 3, "matched_percent": 75.0},
            "no": {"n": 2, "matched": 1, "matched_percent": 50.0},
        },
        "oov_detected_as": {"up": 3, "go": 1},
    }


@pytest.fixture(scope="module")
def synthetic_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sc") / "speech_commands"
    write_speech_commands_tree(
        root, per_word=30, rng=np.random.default_rng(3), extension="flac", testing_fraction=0.4, validation_fraction=0.2
    )
    return root


def test_evaluate_on_synthetic_commands(synthetic_model: Path, synthetic_tree: Path, tmp_path: Path) -> None:
    wav = tmp_path / "stream.wav"
    report = evaluate(
        data=synthetic_tree,
        split="testing",
        minutes=1.0,
        noise_minutes=0.5,
        model=synthetic_model,
        noise_db=(-50.0, -40.0),
        seed=1,
        save_wav=wav,
        progress=False,
    )
    score = report["score"]
    assert score["commands"] + score["oov_words"] == report["stream"]["words"] == 20
    assert score["oov_words"] == 4  # hiss clips, labelled _unknown_
    assert score["matched_percent"] >= 80.0, score
    lost = report["diagnostics"]["lost_commands"]
    assert sum(lost["counts"].values()) == score["missed"] + score["wrong"]
    # the synthetic model mistakes some pink-noise stretches for "buzz": counted, never hidden
    assert score["false_positives"] == score["false_on_oov"] + score["false_duplicates"] + score["false_in_noise"]
    assert score["noise_only_false"] <= score["false_in_noise"]
    assert score["false_per_10min"] == pytest.approx(
        score["false_positives"] / score["duration_seconds"] * 600, abs=0.01
    )
    assert score["latency_median_seconds"] is not None and -0.5 < score["latency_median_seconds"] < 0.8
    assert report["stream"]["duration_seconds"] == pytest.approx(90.0, abs=15)
    assert wav.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["stream.wav"]
    json.dumps(report)


def test_cli_writes_report_and_tunes(
    synthetic_model: Path, synthetic_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    status = main(
        [
            "--data",
            str(synthetic_tree),
            "--split",
            "validation",
            "--minutes",
            "0.5",
            "--noise-minutes",
            "0.2",
            "--model",
            str(synthetic_model),
            "--out",
            str(out),
            "--tune",
            "--quiet",
            "--threshold",
            "0.55",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "matched" in printed and "latency from word end" in printed and "best decision settings" in printed
    assert "commands not matched:" in printed
    report = json.loads(out.read_text())
    assert report["split"] == "validation" and report["decision"]["threshold"] == 0.55
    assert len(report["tuning"]) == 15
    scores = [entry["score"] for entry in report["tuning"]]
    meets = [s for s in scores if s["goals"]["false_ok"] and s["goals"]["latency_ok"]]
    # settings meeting the false-positive and latency goals come first, most matched first
    assert scores[: len(meets)] == meets
    assert [s["matched"] for s in meets] == sorted((s["matched"] for s in meets), reverse=True)


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], synthetic_model: Path) -> None:
    assert main(["--data", str(tmp_path / "none"), "--model", str(synthetic_model)]) == 1
    assert "data folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--data", str(tmp_path / "empty"), "--model", str(synthetic_model)]) == 1
    assert "testing_list.txt" in capsys.readouterr().err


def test_miss_causes_tell_clip_noise_and_decision_losses_apart() -> None:
    rng = np.random.default_rng(2)
    clips = []
    for gain in (1.0, 1e-3, 1.0, 1.0):  # matched; too quiet to classify; drowned by noise; not detected
        clip, _, _ = make_class_clip_with_span("rise", rng)
        clips.append((clip * gain, "rise"))
    clips.append((make_class_clip_with_span("_unknown_", rng)[0], "_unknown_"))  # OOV words are never "lost"
    audio, truth = build_stream(clips, noise=rng.standard_normal(16000).astype(np.float32), rng=rng,
                                gap_seconds=(1.0, 1.0), noise_db=(-70.0, -70.0), lead_seconds=0.5)  # fmt: skip
    drowned = round((0.5 + 2 * 2.0) * 16000)  # third clip's place: lead, then 1 s clip + 1 s gap each
    audio[drowned : drowned + 16000] += 0.3 * rng.standard_normal(16000).astype(np.float32)

    def predict(batch: np.ndarray) -> list[str]:
        """A stand-in model: quiet is silence, hiss (much sample-to-sample change) is unknown."""
        power = (batch.astype(np.float64) ** 2).mean(axis=1)
        change = (np.diff(batch.astype(np.float64), axis=1) ** 2).mean(axis=1) / np.maximum(power, 1e-20)
        pairs = zip(power, change, strict=True)
        return ["_silence_" if p < 1e-6 else "_unknown_" if c > 0.5 else "rise" for p, c in pairs]

    assert predict(np.stack([c for c, _ in clips[:4]])) == ["rise", "_silence_", "rise", "rise"]
    detections = [detection("rise", truth[0][2] + 0.1)]
    score = score_detections(detections, truth, duration_seconds=audio.shape[0] / 16000)
    assert score.outcomes[:4] == ("matched", "missed", "missed", "missed")
    lost = miss_causes(score, truth, clips, audio, predict, sample_rate=16000)
    assert lost["counts"] == {"clip": 1, "noise": 1, "decisions": 1}
    assert lost["by_outcome"] == {"missed": {"clip": 1, "noise": 1, "decisions": 1}}
    with pytest.raises(ValueError, match="truth"):
        miss_causes(score, truth[:2], clips, audio, predict, sample_rate=16000)


def test_cli_out_that_cannot_be_written_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(**kwargs: object) -> None:
        raise AssertionError("evaluated although --out cannot be written")

    monkeypatch.setattr(streaming_accuracy, "evaluate", must_not_run)
    taken = tmp_path / "taken.json"
    taken.write_text("{}")
    cases = ((taken / "r.json", f"cannot write there: {taken} is a file"), (tmp_path, "is a folder"))
    for out, problem in cases:
        assert main(["--data", str(tmp_path), "--out", str(out), "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --out {out}: ") and problem in err and "\n" not in err
    assert taken.read_text() == "{}"
    # a folder made for --out is removed again when the run fails
    monkeypatch.undo()
    out = tmp_path / "new" / "deeper" / "r.json"
    assert main(["--data", str(tmp_path / "none"), "--out", str(out), "--quiet"]) == 1
    assert "data folder not found" in capsys.readouterr().err and not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("no-such-folder/stream.wav", "no-such-folder: folder not found"),
        ("stream.mp4", "the name must end in .wav"),
        ("stream", "the name must end in .wav"),
        ("taken/stream.wav", "taken: is a file, not a folder"),
        (".", "is a folder"),
    ],
)
def test_cli_bad_save_wav_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, problem: str
) -> None:
    (tmp_path / "taken").write_text("x")
    wav = tmp_path / name
    # checked first: before the data folder (missing here), the model and the stream
    assert main(["--data", str(tmp_path / "none"), "--save-wav", str(wav), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --save-wav {wav}: ") and problem in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--minutes", "0"], "--minutes must be a positive number"),
        (["--minutes", "-1"], "--minutes must be a positive number"),
        (["--minutes", "inf"], "--minutes must be a positive number"),
        (["--minutes", "nan"], "--minutes must be a positive number"),
        (["--noise-minutes", "-0.5"], "--noise-minutes must be a number of minutes >= 0"),
        (["--noise-minutes", "inf"], "--noise-minutes must be a number of minutes >= 0"),
        (["--oov-fraction", "1"], "--oov-fraction must be in [0, 1)"),
        (["--oov-fraction", "-0.1"], "--oov-fraction must be in [0, 1)"),
        (["--oov-fraction", "nan"], "--oov-fraction must be in [0, 1)"),
        (["--noise-db", "-30", "-50"], "--noise-db LOW HIGH must be finite levels in dBFS with LOW <= HIGH <= 0"),
        (["--noise-db", "-10", "6"], "--noise-db LOW HIGH must be finite levels in dBFS with LOW <= HIGH <= 0"),
        (["--noise-db", "nan", "-30"], "--noise-db LOW HIGH must be finite levels in dBFS with LOW <= HIGH <= 0"),
        (["--streams", "0"], "--streams must be at least 1, not 0"),
        (["--streams", "2", "--tune"], "--tune and --save-wav work on one stream; leave out --streams"),
        (["--streams", "3", "--save-wav", "s.wav"], "--tune and --save-wav work on one stream; leave out --streams"),
    ],
)
def test_cli_bad_stream_options_are_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, options: list[str],
    problem: str,
) -> None:
    def must_not_run(**kwargs: object) -> None:
        raise AssertionError("evaluated with a bad option")

    monkeypatch.setattr(streaming_accuracy, "evaluate", must_not_run)
    out = tmp_path / "r" / "report.json"
    assert main(["--data", str(tmp_path), "--out", str(out), "--quiet", *options]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {problem}") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_edge_stream_options_are_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    def record(**kwargs: object) -> None:
        seen.update(kwargs)
        raise ValueError("stop here")

    monkeypatch.setattr(streaming_accuracy, "evaluate", record)
    options = ["--noise-minutes", "0", "--oov-fraction", "0", "--noise-db", "-20", "0", "--minutes", "0.01"]
    assert main(["--data", str(tmp_path), "--quiet", *options]) == 1
    assert capsys.readouterr().err.strip() == "error: stop here"
    assert (seen["noise_minutes"], seen["oov_fraction"], seen["noise_db"], seen["minutes"]) == (0, 0, (-20, 0), 0.01)


@pytest.mark.parametrize(
    ("options", "warned"),
    [(["--tune"], True), (["--tune", "--split", "testing"], True), (["--tune", "--split", "validation"], False),
     ([], False)],
)
def test_cli_warns_when_tuning_on_the_test_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, options: list[str],
    warned: bool,
) -> None:
    def stop(**kwargs: object) -> None:
        raise ValueError("stop here")

    monkeypatch.setattr(streaming_accuracy, "evaluate", stop)
    assert main(["--data", str(tmp_path), "--quiet", *options]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    warning = "warning: --tune on the testing split: settings chosen on it make its figures optimistic; " \
        "tune on --split validation"
    assert lines == ([warning] if warned else []) + ["error: stop here"]


def test_cli_pools_several_streams(
    synthetic_model: Path, synthetic_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pooled.json"
    options = ["--data", str(synthetic_tree), "--minutes", "0.4", "--noise-minutes", "0.2"]
    options += ["--model", str(synthetic_model), "--quiet", "--seed", "5"]
    assert main([*options, "--streams", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 streams pooled, seeds 5-6" in printed and printed.count("\nseed ") + printed.startswith("seed ") == 2
    report = json.loads(out.read_text())
    assert report["seeds"] == [5, 6] and [r["seed"] for r in report["streams"]] == [5, 6]
    per_stream = [r["score"] for r in report["streams"]]
    assert per_stream[0] != per_stream[1]  # two different streams
    for key in ("commands", "matched", "wrong", "missed", "false_positives", "noise_only_false"):
        assert report["score"][key] == sum(s[key] for s in per_stream), key
    total = sum(s["duration_seconds"] for s in per_stream)
    assert report["score"]["duration_seconds"] == pytest.approx(total)
    pooled = report["score"]
    assert pooled["false_per_10min"] == pytest.approx(pooled["false_positives"] / total * 600, abs=0.01)
    assert report["stream"]["words"] == sum(r["stream"]["words"] for r in report["streams"])
    lost = report["diagnostics"]["lost_commands"]["counts"]
    assert sum(lost.values()) == report["score"]["missed"] + report["score"]["wrong"]
    # the second stream alone, with its own seed, is what the pooled report lists for it
    assert main([*options, "--seed", "6", "--out", str(tmp_path / "one.json")]) == 0
    assert json.loads((tmp_path / "one.json").read_text())["score"] == per_stream[1]

"""training.evaluate: accuracy, per-class metrics, confusion matrix and the JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from synthetic import LABELS, make_class_clip, write_speech_commands_tree

import training.evaluate as evaluate_module
from training.evaluate import build_parser, evaluate, main
from training.metrics import classification_report


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded-audio cache in the test's folder, not the user's."""
    monkeypatch.setenv("SPEECHRNN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sc") / "speech_commands"
    write_speech_commands_tree(root, per_word=40, rng=np.random.default_rng(5))
    return root


def test_classification_report_by_hand() -> None:
    truth = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 2, 2])
    report = classification_report(truth, predicted, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert report["confusion"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    b = report["per_class"]["b"]
    assert b["precision"] == pytest.approx(2 / 3, abs=1e-4) and b["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["per_class"]["c"]["precision"] == 0.5 and report["per_class"]["c"]["support"] == 1


def test_evaluate_a_speech_commands_split(synthetic_model: Path, tree: Path, tmp_path: Path) -> None:
    report = evaluate(synthetic_model, data_dir=tree, split="testing", out_dir=tmp_path / "eval", progress=False)
    assert report.labels == LABELS
    assert report.accuracy >= 0.8, report.table()
    assert report.examples == int(report.confusion.sum()) > 0
    assert report.confusion.shape == (6, 6)
    assert set(report.per_class) == set(LABELS)
    assert report.per_class["_silence_"]["support"] > 0 and report.per_class["_unknown_"]["support"] > 0
    saved = json.loads(report.json_path.read_text())
    assert saved["accuracy"] == report.accuracy and saved["split"] == "testing"
    assert saved["confusion"] == report.confusion.tolist()
    assert report.png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = evaluate(synthetic_model, data_dir=tree, split="testing", progress=False)
    assert again.accuracy == report.accuracy and again.json_path is None  # deterministic, nothing written
    # the int8 option is evaluated as such, and says so in the report
    int8 = evaluate(synthetic_model, data_dir=tree, split="testing", out_dir=tmp_path / "int8", progress=False,
                    backend="int8")
    assert (saved["backend"], int8.backend, json.loads(int8.json_path.read_text())["backend"]) == (
        report.backend, "int8", "int8")
    assert report.backend in ("onnx", "torch")
    assert abs(int8.accuracy - report.accuracy) <= 0.05


def test_gain_scales_every_clip_before_the_features(synthetic_model: Path, tree: Path, tmp_path: Path) -> None:
    plain = evaluate(synthetic_model, data_dir=tree, split="testing", progress=False)
    # a gain too small to change a prediction takes the scaled path and gives the same report
    same = evaluate(synthetic_model, data_dir=tree, split="testing", progress=False, gain_db=-1e-4)
    assert np.array_equal(same.confusion, plain.confusion) and same.gain_db == -1e-4
    # 400 dB down every clip is below the log floor: one and the same prediction for all of them
    mute = evaluate(synthetic_model, data_dir=tree, split="testing", out_dir=tmp_path, progress=False, gain_db=-400)
    assert np.count_nonzero(mute.confusion.sum(axis=0)) == 1
    assert "at -400 dB" in mute.table() and json.loads(mute.json_path.read_text())["gain_db"] == -400
    with pytest.raises(ValueError, match="finite"):
        evaluate(synthetic_model, data_dir=tree, split="testing", progress=False, gain_db=float("nan"))


def test_room_reverberation_before_the_features(synthetic_model: Path, tree: Path, tmp_path: Path) -> None:
    plain = evaluate(synthetic_model, data_dir=tree, split="testing", progress=False)
    # a room whose direct sound is 60 dB above its echoes is as good as dry
    dry = evaluate(synthetic_model, data_dir=tree, split="testing", progress=False, room=(0.3, 60.0))
    assert abs(dry.accuracy - plain.accuracy) <= 0.02 and dry.room == (0.3, 60.0)
    # a long, far room changes the features (and the predictions), is seeded, and is written down
    far = evaluate(synthetic_model, data_dir=tree, split="testing", progress=False, room=(2.0, -15.0))
    again = evaluate(synthetic_model, data_dir=tree, split="testing", progress=False, room=(2.0, -15.0))
    assert not np.array_equal(far.confusion, plain.confusion) and np.array_equal(far.confusion, again.confusion)
    assert "in a room of RT60 2 s, DRR -15 dB" in far.table()
    assert main([str(synthetic_model), "--data", str(tree), "--out", str(tmp_path / "r"), "--quiet",
                 "--reverb", "2", "--drr", "-15"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "r" / "report.json").read_text())["room"] == {"rt60_seconds": 2.0, "drr_db": -15.0}
    with pytest.raises(ValueError, match="reverberation time"):
        evaluate(synthetic_model, data_dir=tree, split="testing", progress=False, room=(0.0, 0.0))


def test_evaluate_a_folder_by_label(synthetic_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    root = tmp_path / "folder"
    for label in ("rise", "fall", "_silence_", "whistle"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            name = "_unknown_" if label == "whistle" else label
            sf.write(root / label / f"{i}.wav", make_class_clip(name, rng), 16000, subtype="PCM_16")
    # a Speech Commands tree given as a folder: its noise recordings are not taken for _unknown_ clips
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white_noise.wav", rng.normal(0, 0.05, 48000), 16000, subtype="PCM_16")
    report = evaluate(synthetic_model, folder=root, progress=False)
    assert report.examples == 24
    assert report.per_class["_unknown_"]["support"] == 6  # "whistle" is not a label: _unknown_
    assert report.per_class["tone"]["support"] == 0
    assert report.accuracy >= 0.8
    assert all(m["true"] != m["predicted"] for m in report.mistakes)


def test_cli(synthetic_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(synthetic_model), "--folder", str(tmp_path / "missing"), "--quiet"]) == 1
    assert "folder not found" in capsys.readouterr().err
    assert main([str(tmp_path / "nope.pt"), "--folder", str(tmp_path)]) == 1
    assert "file not found" in capsys.readouterr().err
    root = tmp_path / "f"
    (root / "tone").mkdir(parents=True)
    sf.write(root / "tone" / "a.wav", make_class_clip("tone", np.random.default_rng(0)), 16000)
    assert main([str(synthetic_model), "--folder", str(root), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and (tmp_path / "o" / "report.json").is_file()
    assert (tmp_path / "o" / "confusion.png").is_file()


def test_cli_out_that_cannot_be_a_folder_is_one_line_before_any_work(
    synthetic_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated although --out cannot be written")

    monkeypatch.setattr(evaluate_module, "evaluate", must_not_run)
    taken = tmp_path / "taken"
    taken.write_text("notes")
    for out, problem in ((taken, "exists and is not a folder"), (taken / "sub", f"{taken} is a file")):
        assert main([str(synthetic_model), "--folder", str(tmp_path), "--out", str(out), "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"evaluate: error: {out}: ") and problem in err and "--out" in err
        assert "\n" not in err
    assert taken.read_text() == "notes"


def test_cli_failure_leaves_no_empty_out_folder(
    synthetic_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "eval"
    assert main([str(synthetic_model), "--folder", str(tmp_path / "missing"), "--out", str(out), "--quiet"]) == 1
    assert "folder not found" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "many"])
def test_cli_batch_size_must_be_a_positive_integer(
    synthetic_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([str(synthetic_model), "--folder", str(tmp_path), "--batch-size", value, "--quiet"])
    assert stopped.value.code == 2
    assert f"argument --batch-size: must be a positive integer, not '{value}'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        evaluate(synthetic_model, folder=tmp_path, batch_size=0, progress=False)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--drr", "-6"], "--drr needs --reverb RT60"),
        (["--reverb", "0"], "--reverb RT60 must be in (0, 10] seconds, not 0"),
        (["--reverb", "12"], "--reverb RT60 must be in (0, 10] seconds, not 12"),
        (["--reverb", "nan"], "--reverb RT60 must be in (0, 10] seconds, not nan"),
        (["--reverb", "0.5", "--drr", "inf"], "--drr must be a finite number of decibels, not inf"),
        (["--gain-db", "nan"], "--gain-db must be a finite number of decibels, not nan"),
    ],
)
def test_cli_gain_and_room_errors_name_the_option_before_any_work(
    synthetic_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    options: list[str], problem: str,
) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluated with a bad option")

    monkeypatch.setattr(evaluate_module, "evaluate", must_not_run)
    out = tmp_path / "out"
    assert main([str(synthetic_model), "--folder", str(tmp_path), "--out", str(out), "--quiet", *options]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"evaluate: error: {problem}") and "\n" not in err
    assert not out.exists()


def test_cli_reverb_help_says_what_stays_dry_and_the_range() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "_silence_ examples stay dry" in text and "(0, 10] seconds" in text and "only with --reverb" in text


def test_progress_covers_features_and_model_unless_quiet(
    synthetic_model: Path, tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = evaluate(synthetic_model, data_dir=tree, split="testing", progress=True, batch_size=16)
    err = capsys.readouterr().err
    assert "evaluating: 100%" in err and f"{report.examples}/{report.examples}" in err
    plain = evaluate(synthetic_model, data_dir=tree, split="testing", progress=False)
    assert "evaluating" not in capsys.readouterr().err
    assert np.array_equal(plain.confusion, report.confusion)  # the batch size changes nothing
    root = tmp_path / "f"
    (root / "tone").mkdir(parents=True)
    for i in range(3):
        sf.write(root / "tone" / f"{i}.wav", make_class_clip("tone", np.random.default_rng(i)), 16000)
    assert main([str(synthetic_model), "--folder", str(root), "--out", str(tmp_path / "o")]) == 0
    assert "evaluating: 100%" in capsys.readouterr().err
    assert main([str(synthetic_model), "--folder", str(root), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""

"""training.release: what ships is measured, and the file carries its figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import LABELS, write_speech_commands_tree

from speechrnn.checkpoint import load_checkpoint
from training.evaluate import evaluate
from training.release import QUIET_GAINS_DB, main, release

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@needs_espeak
def test_release_measures_the_file_it_writes(synthetic_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "speech_commands"
    write_speech_commands_tree(root, per_word=30, rng=np.random.default_rng(4))
    out = tmp_path / "release.pt"
    summary = release(synthetic_model, data_dir=root, out=out, docs=tmp_path / "docs", name="m", progress=False,
                      oov_per_word=1, silence_count=12, robustness_cache=tmp_path / "cache")  # fmt: skip
    shipped = load_checkpoint(out)
    assert shipped.weights_dtype == "float16" and shipped.summary["test_accuracy"] == summary["test_accuracy"]
    # the figures are those of the float16 file, on the testing split, as recorded and at lower gains
    assert summary["test_accuracy"] == evaluate(out, data_dir=root, split="testing", progress=False).accuracy
    assert list(summary["test_accuracy_by_gain_db"]) == [f"{g:g}" for g in QUIET_GAINS_DB]
    for gain, accuracy in summary["test_accuracy_by_gain_db"].items():
        assert accuracy == evaluate(out, data_dir=root, split="testing", progress=False, gain_db=float(gain)).accuracy
    assert summary["release_val_held_out"] is True and summary["silence"]["clips"] == 12
    assert (tmp_path / "docs" / "m_eval.json").is_file() and (tmp_path / "docs" / "m_robustness.json").is_file()
    assert summary["latency_ms_one_thread"] > 0 and summary["file_bytes"] == out.stat().st_size
    # measured on a temporary file beside out, moved onto it at the end: nothing else is left there,
    # and the reports name the release file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "docs", "release.pt", "speech_commands"]
    assert json.loads((tmp_path / "docs" / "m_eval.json").read_text())["model"] == str(out)
    assert json.loads((tmp_path / "docs" / "m_robustness.json").read_text())["model"] == str(out)


def test_cli_bad_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main([str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "o.pt"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("release: error: ") and "bad.pt" in err and "\n" not in err
    assert not (tmp_path / "o.pt").exists()


def tiny_model(path: Path, labels: tuple[str, ...] = LABELS) -> Path:
    """An untrained model file with the synthetic labels (release fails before its figures matter)."""
    from speechrnn.checkpoint import save_checkpoint
    from speechrnn.features import FeatureConfig
    from speechrnn.model import ModelConfig, SpeechRNN

    features = FeatureConfig()
    config = ModelConfig(n_mels=features.n_mels, n_classes=len(labels), cell="gru", hidden_size=8, num_layers=1,
                         conv_channels=8, conv_stride=2, pooling="attention", dropout=0.0)  # fmt: skip
    return save_checkpoint(path, model=SpeechRNN(config), feature_config=features, labels=labels)


@pytest.mark.parametrize("old", [None, b"the model shipped before"])
def test_failed_release_leaves_out_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             old: bytes | None) -> None:  # fmt: skip
    model = tiny_model(tmp_path / "best.pt")
    out = tmp_path / "models" / "default.pt"
    if old is not None:
        out.parent.mkdir()
        out.write_bytes(old)
    status = main([str(model), "--data", str(tmp_path / "no-data"), "--out", str(out),
                   "--docs", str(tmp_path / "docs"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 1 and err.startswith("release: error: ") and "no-data" in err and "\n" not in err
    if old is None:  # no half-made file, not even the folder made for it
        assert not out.parent.exists()
    else:  # the old file, byte for byte, and no temporary file beside it
        assert out.read_bytes() == old and [p.name for p in out.parent.iterdir()] == ["default.pt"]


def test_cli_docs_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "speech_commands"
    write_speech_commands_tree(root, per_word=6, rng=np.random.default_rng(0), noise_seconds=2.0)
    docs = tmp_path / "docs.txt"
    docs.write_text("notes\n")
    out = tmp_path / "release.pt"
    status = main([str(tiny_model(tmp_path / "best.pt")), "--data", str(root), "--out", str(out),
                   "--docs", str(docs), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 1 and err == f"release: error: {docs}: is a file, not a folder for the evaluation outputs"
    assert not out.exists() and docs.read_text() == "notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "docs.txt", "speech_commands"]


def test_cli_out_in_an_unwritable_place_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    status = main([str(tiny_model(tmp_path / "best.pt")), "--data", str(tmp_path), "--out",
                   str(blocker / "release.pt"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err == f"release: error: {blocker / 'release.pt'}: cannot write the release file there: {blocker} is a " \
        "file, not a folder"
    assert status == 1
    assert blocker.read_text() == "x"
    status = main([str(tmp_path / "best.pt"), "--data", str(tmp_path), "--out", str(tmp_path), "--quiet"])
    assert status == 1 and "is a folder" in capsys.readouterr().err


def test_failed_release_leaves_the_docs_as_they_were(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Evaluation outputs already written when a later step fails do not replace the previous release's."""
    import training.robustness
    from speechrnn.errors import SpeechRNNError

    root = tmp_path / "speech_commands"
    write_speech_commands_tree(root, per_word=6, rng=np.random.default_rng(0), noise_seconds=2.0)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "m_eval.json").write_text("the report of the model released before\n")

    def fails(*args: object, **kwargs: object) -> None:
        raise SpeechRNNError("robustness sets: espeak-ng failed")

    monkeypatch.setattr(training.robustness, "run_robustness", fails)  # after the test split was evaluated
    out = tmp_path / "release.pt"
    status = main([str(tiny_model(tmp_path / "best.pt")), "--data", str(root), "--out", str(out),
                   "--docs", str(docs), "--name", "m", "--quiet"])  # fmt: skip
    assert status == 1 and "espeak-ng failed" in capsys.readouterr().err
    assert [p.name for p in docs.iterdir()] == ["m_eval.json"]  # no new outputs, no temporary folder
    assert (docs / "m_eval.json").read_text() == "the report of the model released before\n"
    assert not out.exists()


def test_a_model_without_silence_and_unknown_is_released_without_those_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The v2-35 task has no _silence_ or _unknown_ class: it is released, with OOV and silence not measured."""
    root = tmp_path / "speech_commands"
    write_speech_commands_tree(root, per_word=6, rng=np.random.default_rng(0), noise_seconds=2.0)
    out = tmp_path / "release.pt"
    words = tuple(label for label in LABELS if not label.startswith("_"))
    status = main([str(tiny_model(tmp_path / "best.pt", words)), "--data", str(root), "--out", str(out),
                   "--docs", str(tmp_path / "docs"), "--name", "m", "--quiet"])  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0 and "OOV and silence: not measured" in printed
    summary = load_checkpoint(out).summary
    assert summary["oov"] is None and summary["silence"] is None and "test_accuracy" in summary
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["m_confusion.png", "m_eval.json"]

"""training.release: what ships is measured, and the file carries its figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import write_speech_commands_tree

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


def test_cli_bad_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main([str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "o.pt"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("release: error: ") and "bad.pt" in err and "\n" not in err
    assert not (tmp_path / "o.pt").exists()

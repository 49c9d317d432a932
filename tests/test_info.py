from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from speechrnn import default_model_path
from speechrnn.cli import main


def test_info_describes_a_model_file(synthetic_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(synthetic_model)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["labels"] == ["_silence_", "_unknown_", "rise", "fall", "tone", "buzz"]
    assert info["file_bytes"] == synthetic_model.stat().st_size
    assert info["weights_dtype"] == "float32"
    assert info["architecture"].startswith(info["model_config"]["cell"])
    assert info["parameters"] > 1000 and info["feature_config"]["sample_rate"] == 16000


@pytest.mark.skipif(not default_model_path().exists(), reason="speechrnn/models/default.pt is not trained yet")
def test_info_on_the_shipped_model_states_its_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    # the limits for the default model: <= 500k parameters, <= 2 MB
    assert info["parameters"] <= 500_000 and info["file_bytes"] <= 2_000_000
    assert info["weights_dtype"] == "float16" and "bidirectional" in info["architecture"]


def test_info_on_a_bad_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.pt"
    bad.write_text("not a model")
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err


def test_info_takes_the_model_file_as_an_option_too(synthetic_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(synthetic_model)]) == 0
    positional = json.loads(capsys.readouterr().out)
    for option in ("--model", "-m"):  # as every other command takes it
        assert main(["info", option, str(synthetic_model)]) == 0
        assert json.loads(capsys.readouterr().out) == positional
    # one model file: both forms at once is a usage error
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(synthetic_model), "--model", str(synthetic_model)])
    assert exit_info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_info_summary_for_a_person(synthetic_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--format", "text"]) == 0  # the shipped model: its recorded figures in a few lines
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 10 and lines[0].startswith("model file:") and "410,186 parameters" in lines[0]
    assert "labels:       _silence_, _unknown_, yes, no, up, down, left, right, go, stop" in lines
    assert any(line.startswith("recorded:") and re.search(r"test \d+\.\d\d%", line) for line in lines)
    assert main(["info", str(synthetic_model), "-f", "text"]) == 0
    assert "labels:       _silence_, _unknown_, rise, fall, tone, buzz" in capsys.readouterr().out

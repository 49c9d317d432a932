"""``speechrnn listen``: detections from a file played through the live engine."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from synthetic import place_clips

from speechrnn import default_model_path
from speechrnn.listen import format_detection, listen, run_engine

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "speech_commands"
pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # listen sets one torch thread on the CPU


@pytest.fixture(scope="module")
def command_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, float, float]]]:
    """A 5-second WAV file with rise, tone and buzz, and where the sounds lie."""
    audio, spans = place_clips([("rise", 0.3), ("tone", 2.0), ("buzz", 3.6)], seconds=5.0, rng=np.random.default_rng(2))
    path = tmp_path_factory.mktemp("listen") / "commands.wav"
    sf.write(path, audio, 16000, subtype="PCM_16")
    return path, spans


def test_listen_file_jsonl(synthetic_model: Path, command_file) -> None:
    path, spans = command_file
    out, err = io.StringIO(), io.StringIO()
    detections = listen(model=synthetic_model, file=path, fast=True, format="jsonl", device="cpu", out=out, err=err)
    lines = out.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["label"] for r in records] == ["rise", "tone", "buzz"]
    assert [d.label for d in detections] == ["rise", "tone", "buzz"]
    for record, (label, start, end) in zip(records, spans, strict=True):
        assert set(record) >= {"label", "score", "time"}
        assert record["label"] == label
        assert start < record["time"] < end + 1.0
        assert 0.0 < record["score"] <= 1.0
    assert err.getvalue() == ""  # jsonl mode keeps stderr quiet when it is not a terminal


def test_listen_text_duration_and_threshold(synthetic_model: Path, command_file) -> None:
    path, _ = command_file
    out, err = io.StringIO(), io.StringIO()
    detections = listen(model=synthetic_model, file=path, fast=True, duration=2.5, device="cpu", out=out, err=err)
    assert [d.label for d in detections] == ["rise"]  # the tone ends after 2.5 s
    assert out.getvalue().split()[:3] == [f"{detections[0].time:.2f}", "s", "rise"]
    assert "1 detection(s) in 2.5 s of audio" in err.getvalue()
    assert "\r" not in err.getvalue()  # no level meter when stderr is not a terminal
    quiet_err = io.StringIO()
    silent = listen(model=synthetic_model, file=path, fast=True, threshold=1.0, device="cpu", out=io.StringIO(),
                    err=quiet_err)
    assert silent == []
    # the whole 5 s file: the second of silence pushed after it to flush the decisions is not counted
    assert "0 detection(s) in 5.0 s of audio" in quiet_err.getvalue()


def test_listen_realtime_paces_and_draws_the_meter(synthetic_model: Path, command_file) -> None:
    path, _ = command_file
    err = io.StringIO()
    started = time.monotonic()
    listen(model=synthetic_model, file=path, duration=1.2, device="cpu", meter=True, out=io.StringIO(), err=err)
    assert time.monotonic() - started >= 1.1
    assert "dBFS" in err.getvalue() and "\r[" in err.getvalue()


def test_listen_bad_options(synthetic_model: Path, command_file, tmp_path: Path) -> None:
    from speechrnn.errors import AudioError, CheckpointError

    path, _ = command_file
    with pytest.raises(ValueError, match="threshold"):
        listen(model=synthetic_model, file=path, threshold=2.0)
    with pytest.raises(ValueError, match="format"):
        listen(model=synthetic_model, file=path, format="xml")
    with pytest.raises(CheckpointError, match="file not found"):
        listen(model=tmp_path / "missing.pt", file=path)
    with pytest.raises(AudioError, match=r"nope\.wav"):
        listen(model=synthetic_model, file=tmp_path / "nope.wav", device="cpu")
    with pytest.raises(ValueError, match=r"a hop of 0\.3 s leaves at most 2 result"):
        listen(model=synthetic_model, file=path, hop=0.3)  # would never detect anything
    for value in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="duration must be a positive number"):
            listen(model=synthetic_model, file=path, duration=value)
        with pytest.raises(ValueError, match="hop must be a positive number"):
            listen(model=synthetic_model, file=path, hop=value)


def test_run_engine_returns_detections_on_ctrl_c(synthetic_model: Path, command_file) -> None:
    from speechrnn.inference import Classifier
    from speechrnn.microphone import FileSource
    from speechrnn.streaming import StreamingRecognizer

    path, _ = command_file
    recognizer = StreamingRecognizer(Classifier.from_file(synthetic_model, device="cpu"))
    source = FileSource(path, realtime=False)
    seen = []

    def interrupt_after_first(step) -> None:
        if step.detection is not None:
            seen.append(step.detection)
            raise KeyboardInterrupt

    detections = run_engine(source, recognizer, on_step=interrupt_after_first)
    assert [d.label for d in detections] == [d.label for d in seen] == ["rise"]
    assert source.read(0.1) is None  # stopped


@pytest.mark.parametrize("backend", ["auto", "int8"])
def test_cli_main_listen_jsonl(
    synthetic_model: Path, command_file, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    from speechrnn.cli import main

    path, _ = command_file
    status = main(
        [
            "listen",
            "--file",
            str(path),
            "--fast",
            "--format",
            "jsonl",
            "--model",
            str(synthetic_model),
            "--device",
            "cpu",
            "--hop",
            "0.05",
            "--backend",
            backend,
        ]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert [json.loads(line)["label"] for line in captured.out.splitlines()] == ["rise", "tone", "buzz"]


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], command_file) -> None:
    from speechrnn.cli import main

    path, _ = command_file
    assert main(["listen", "--file", str(path), "--model", str(tmp_path / "none.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.pt" in err and err.count("\n") == 1
    assert main(["listen", "--fast"]) == 2
    capsys.readouterr()
    assert main(["listen", "--file", str(path), "--fast", "--hop", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: a hop of 0.5 s") and err.count("\n") == 1
    assert main(["listen", "--file", str(path), "--input", "nosuch"]) == 2  # not ignored silently
    assert capsys.readouterr().err == "error: --input is for the microphone; leave it out with --file\n"


def test_ctrl_c_while_the_commands_load_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C in the first moments (the command modules still importing): no traceback."""
    import speechrnn.cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(speechrnn.cli, "build_parser", interrupted)
    assert speechrnn.cli.main(["listen"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child differs on Windows")
def test_ctrl_c_exits_cleanly_with_status_0(synthetic_model: Path, command_file) -> None:
    path, _ = command_file
    code = "import sys; from speechrnn.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "listen", "--file", str(path), "--model", str(synthetic_model), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # wait for the first detection (the rise ends at ~1.05 s of stream time), then Ctrl-C
        first = process.stdout.readline()
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "rise" in first
    assert "detection(s) in" in err
    assert "Traceback" not in err


def test_format_detection() -> None:
    from speechrnn.decisions import Detection

    detection = Detection(label="yes", score=0.912345, time=3.25, start=2.1, end=3.1)
    assert format_detection(detection) == "    3.25 s  yes          0.91"
    assert json.loads(format_detection(detection, format="jsonl")) == {
        "label": "yes",
        "score": 0.912345,
        "time": 3.25,
        "start": 2.1,
        "end": 3.1,
    }


@pytest.mark.skipif(not default_model_path().exists(), reason="speechrnn/models/default.pt is not trained yet")
@pytest.mark.parametrize(
    "clip",
    [
        "yes/f5733968_nohash_3.flac",
        "stop/adec6a94_nohash_0.flac",
        "go/122c5aa7_nohash_0.flac",
        "right/850e2222_nohash_1.flac",
        "left/122c5aa7_nohash_4.flac",
    ],
)
def test_default_model_on_a_real_clip(clip: str) -> None:
    out = io.StringIO()
    detections = listen(file=FIXTURES / clip, fast=True, format="jsonl", device="cpu", out=out, err=io.StringIO())
    assert [d.label for d in detections] == [clip.split("/")[0]]
    assert [json.loads(line)["label"] for line in out.getvalue().splitlines()] == [clip.split("/")[0]]


@pytest.mark.skipif(not default_model_path().exists(), reason="speechrnn/models/default.pt is not trained yet")
@pytest.mark.parametrize("word", ["marvin", "sheila", "wow"])
def test_default_model_ignores_words_it_does_not_know(word: str) -> None:
    clip = sorted((FIXTURES / word).glob("*.flac"))[0]
    assert listen(file=clip, fast=True, device="cpu", out=io.StringIO(), err=io.StringIO()) == []

"""The benchmark scripts time what they say they time (run on tiny inputs, no timing asserted)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from speechrnn.checkpoint import save_checkpoint
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, SpeechRNN

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = pytest.mark.usefixtures("keep_torch_threads")  # the scripts set one torch thread


def _import_benchmark(monkeypatch: pytest.MonkeyPatch, name: str) -> Iterator[ModuleType]:
    """The benchmark script ``name`` as a module, forgotten again after the test."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield importlib.import_module(name)
    sys.modules.pop(name, None)


@pytest.fixture
def bench_features(monkeypatch: pytest.MonkeyPatch):
    yield from _import_benchmark(monkeypatch, "bench_features")


def test_bench_features_uses_the_model_files_feature_settings(bench_features, tmp_path: Path) -> None:
    features = FeatureConfig(n_mels=32, sample_rate=8000, n_fft=256, fmax=3800.0)
    model = SpeechRNN(ModelConfig(n_mels=32, n_classes=3, cell="gru", hidden_size=8, num_layers=1))
    model_path = tmp_path / "m.pt"
    save_checkpoint(model_path, model=model, feature_config=features, labels=("_silence_", "_unknown_", "a"))
    out = tmp_path / "features.json"
    code = bench_features.main(["--model", str(model_path), "--clips", "4", "--librosa-clips", "2",
                                "--rounds", "1", "--threads", "1", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert FeatureConfig.from_dict(report["feature_config"]) == features
    assert report["model"] == str(model_path)
    # the timed paths compute the same features as librosa with those settings
    assert max(report["agreement"].values()) < 1e-3


@pytest.fixture
def bench_train_epoch(monkeypatch: pytest.MonkeyPatch):
    yield from _import_benchmark(monkeypatch, "bench_train_epoch")


def test_bench_train_epoch_applies_config_overrides(
    bench_train_epoch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    from synthetic import WORDS, write_speech_commands_tree

    root = tmp_path / "speech_commands"
    write_speech_commands_tree(root, per_word=20, rng=np.random.default_rng(2))
    config = tmp_path / "recipe.toml"
    words = ", ".join(f'"{w}"' for w in WORDS)
    config.write_text(
        f'threads = 1\ndevice = "cpu"\n[data]\ntask = "custom"\nwords = [{words}]\ncache_dir = "{tmp_path / "cache"}"\n'
        "[optim]\nbatch_size = 16\n[model]\nhidden_size = 16\nnum_layers = 1\nhead_size = 16\n"
    )
    reports = {}
    runs = {"plain": [], "refit": ["--set", "data.train_on_validation=true"], "bf16": ["--set", 'optim.amp="bf16"']}
    for name, extra in runs.items():
        out = tmp_path / f"{name}.json"
        code = bench_train_epoch.main(["--data", str(root), "--config", str(config), "--max-batches", "1",
                                       "--plain-batches", "1", "--out", str(out), *extra])  # fmt: skip
        assert code == 0
        reports[name] = json.loads(out.read_text())
    assert reports["refit"]["overrides"] == ["data.train_on_validation=true"] and reports["plain"]["overrides"] == []
    # the override reaches the data set: the validation clips join the epoch
    assert reports["refit"]["training_examples"] > reports["plain"]["training_examples"]
    # and to the training step: bfloat16 mixed precision on the CPU, as speechrnn-train runs it
    assert reports["plain"]["precision"] == "float32" and reports["bf16"]["precision"] == "bfloat16 mixed"
    # an unknown key is a one-line error naming it, and nothing is written
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    assert bench_train_epoch.main(["--data", str(root), "--config", str(config), "--set", "data.nope=1",
                                   "--out", str(bad)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench_train_epoch: error: ") and "data.nope" in err and "\n" not in err
    assert not bad.exists()


@pytest.fixture
def bench_compare_latency(monkeypatch: pytest.MonkeyPatch):
    yield from _import_benchmark(monkeypatch, "bench_compare_latency")


def test_bench_compare_latency_times_each_named_model(bench_compare_latency, tmp_path: Path) -> None:
    paths = {}
    for cell, hidden in (("gru", 8), ("lstm", 12)):
        model = SpeechRNN(ModelConfig(n_mels=40, n_classes=3, cell=cell, hidden_size=hidden, num_layers=1))
        paths[cell] = tmp_path / f"{cell}.pt"
        labels = ("_silence_", "_unknown_", "a")
        save_checkpoint(paths[cell], model=model, feature_config=FeatureConfig(), labels=labels)
    out = tmp_path / "compare.json"
    code = bench_compare_latency.main([f"small={paths['gru']}", str(paths["lstm"]), "--rounds", "1", "--number", "2",
                                       "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())["models"]
    assert list(report) == ["small", str(paths["lstm"])]
    assert report["small"]["model_config"]["cell"] == "gru"
    assert report[str(paths["lstm"])]["model_config"]["hidden_size"] == 12
    assert all(0 < r["best_ms"] <= r["median_ms"] for r in report.values())


def test_bench_compare_latency_names_a_bad_model_file(
    bench_compare_latency, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(SystemExit) as exc:
        bench_compare_latency.main([str(bad), "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("bench_compare_latency: error: ") and str(bad) in err
    assert not (tmp_path / "x.json").exists()


def test_bench_compare_latency_model_names(bench_compare_latency, tmp_path: Path) -> None:
    odd = tmp_path / "lr=3e-3.pt"  # an existing file whose name holds "=" is a path, not NAME=PATH
    odd.write_bytes(b"")
    assert bench_compare_latency.parse_model(str(odd)) == (str(odd), str(odd))
    assert bench_compare_latency.parse_model("gru=runs/a/best.pt") == ("gru", "runs/a/best.pt")
    assert bench_compare_latency.parse_model("runs/a/best.pt") == ("runs/a/best.pt", "runs/a/best.pt")


def test_bench_compare_latency_refuses_two_models_under_one_name(
    bench_compare_latency, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_compare_latency.main(["x=a.pt", "x=b.pt", "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "bench_compare_latency: error: each model needs its own name; given more than once: x"
    assert not (tmp_path / "x.json").exists()



def _run_bench_app(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``benchmarks/bench_app.py`` as a user runs it: its own process, so its Qt application is its own."""
    pytest.importorskip("PySide6")
    return subprocess.run([sys.executable, str(BENCHMARKS / "bench_app.py"), *args],
                          env={**env, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True, timeout=180)


def test_bench_app_listens_in_the_real_window(synthetic_model: Path, tmp_path: Path, repo_env: dict[str, str]) -> None:
    out = tmp_path / "app.json"
    done = _run_bench_app(repo_env, "--model", str(synthetic_model), "--seconds", "1.5", "--idle-seconds", "0.5",
                          "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["model"] == str(synthetic_model) and result["backend"] in ("onnx", "torch")
    assert result["seconds"] == pytest.approx(1.5, abs=0.5)
    assert 0 < result["per_hop_compute_ms_median"] < 1000  # hops were computed on the listening thread
    assert re.fullmatch(r"Inference: \d+\.\d ms/hop", result["status_bar"])  # what the user sees
    assert result["frames_painted_per_second"] > 5 and result["dropped_blocks"] == 0
    assert 0 < result["process_cpu_share_of_one_core"]
    assert 0 <= result["idle_before_cpu_share_of_one_core"] and 0 <= result["idle_after_cpu_share_of_one_core"]
    assert "per-hop compute" in done.stdout and "not listening" in done.stdout


def _run_bench_listen(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / "bench_listen.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_bench_listen_times_the_whole_command_in_real_time(synthetic_model: Path, tmp_path: Path,
                                                           repo_env: dict[str, str]) -> None:
    out = tmp_path / "listen.json"
    done = _run_bench_listen(repo_env, "--model", str(synthetic_model), "--seconds", "6", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    short, long = result["runs"]
    assert (short["seconds"], long["seconds"]) == (5.0, 6.0)
    # paced like a microphone: each run lasts at least its listening time (start-up on top)
    assert short["wall_s"] >= 5.0 and long["wall_s"] >= 6.0 and long["cpu_s"] > 0
    assert result["steady_cpu_share_of_one_core"] == pytest.approx(long["cpu_s"] - short["cpu_s"])
    assert "of one core while listening" in done.stdout


def test_bench_listen_names_a_bad_model_file(tmp_path: Path, repo_env: dict[str, str]) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    done = _run_bench_listen(repo_env, "--model", str(bad), "--seconds", "6", "--out", str(tmp_path / "l.json"))
    assert done.returncode == 1 and "bench_listen: speechrnn listen failed" in done.stderr
    assert "broken.pt" in done.stderr and not (tmp_path / "l.json").exists()


def test_bench_app_names_a_bad_model_file(tmp_path: Path, repo_env: dict[str, str]) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    out = tmp_path / "app.json"
    done = _run_bench_app(repo_env, "--model", str(bad), "--seconds", "1", "--out", str(out))
    assert done.returncode == 1
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("bench_app:")]  # Qt may add its own
    assert "broken.pt" in line and "not a readable model file" in line and not out.exists()


def _run_bench_teach_word(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCHMARKS / "bench_teach_word.py"), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_bench_teach_word_says_in_one_line_what_is_missing(tmp_path: Path, repo_env: dict[str, str]) -> None:
    out = tmp_path / "teach.json"
    done = _run_bench_teach_word(repo_env, "--data", str(tmp_path / "nowhere"), "--out", str(out))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert done.stderr.startswith("bench_teach_word: error: ") and "nowhere" in done.stderr
    # a data folder of the right layout, but no espeak-ng on the PATH
    (tmp_path / "data" / "marvin").mkdir(parents=True)
    (tmp_path / "data" / "testing_list.txt").write_text("marvin/a.flac\n")
    (tmp_path / "data" / "marvin" / "a.flac").write_bytes(b"")
    done = _run_bench_teach_word({**repo_env, "PATH": str(tmp_path)}, "--data", str(tmp_path / "data"),
                                 "--out", str(out))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert done.stderr.startswith("bench_teach_word: error: espeak-ng is not on the PATH")
    assert not out.exists()


def test_bench_app_startup_times_three_ways_and_later_starts_skip_torch(synthetic_model: Path, tmp_path: Path,
                                                                        repo_env: dict[str, str]) -> None:
    pytest.importorskip("PySide6")
    from speechrnn.onnx_classifier import gpu_possible

    out = tmp_path / "app_startup.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_app_startup.py"), "--model", str(synthetic_model),
                           "--rounds", "1", "--out", str(out)],
                          env={**repo_env, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    starts = result["starts"]
    assert set(starts) == {"first start", "later starts", "SPEECHRNN_BACKEND=torch"}
    for (start,) in starts.values():
        assert 0 < start["window_shown"] <= start["model_loaded"]
    assert [starts[way][0]["backend"] for way in starts] == ["onnx", "onnx", "torch"]
    assert starts["first start"][0]["torch"] and starts["SPEECHRNN_BACKEND=torch"][0]["torch"]
    if not gpu_possible():  # with a GPU driver loaded the app asks PyTorch about the GPU
        assert result["later_starts_without_torch"] is True
    assert "later starts without torch" in done.stdout


def test_bench_app_startup_names_a_bad_model_file(tmp_path: Path, repo_env: dict[str, str]) -> None:
    pytest.importorskip("PySide6")
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    out = tmp_path / "app_startup.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_app_startup.py"), "--model", str(bad),
                           "--rounds", "1", "--out", str(out)],
                          env={**repo_env, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "error: the app did not load" in done.stderr and "broken.pt" in done.stderr
    assert not out.exists()


def test_bench_startup_times_three_ways_and_checks_the_torch_free_one(synthetic_model: Path, tmp_path: Path,
                                                                       repo_env: dict[str, str]) -> None:
    import numpy as np
    import soundfile as sf
    from synthetic import SAMPLE_RATE, make_class_clip

    wav = tmp_path / "word.wav"
    sf.write(wav, make_class_clip("tone", np.random.default_rng(0)), SAMPLE_RATE)
    out = tmp_path / "startup.json"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "bench_startup.py"), "--model", str(synthetic_model),
                           "--file", str(wav), "--rounds", "1", "--out", str(out)],
                          env=repo_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["seconds"]) == {"first run", "later runs", "--backend torch"}
    assert all(len(times) == 1 and times[0] > 0 for times in result["seconds"].values())
    assert result["later_runs_without_torch"] is True  # the point of the cached export
    assert "label tone" in done.stdout


@pytest.fixture
def bench_common(monkeypatch: pytest.MonkeyPatch):
    yield from _import_benchmark(monkeypatch, "common")


def test_results_record_the_cpu_model_and_its_bfloat16_support(bench_common, tmp_path: Path) -> None:
    common = bench_common
    lines = "processor\t: {n}\nmodel name\t: Example CPU {n}\nflags\t\t: fpu sse2 avx2 {extra}\n\n"
    zen4 = tmp_path / "zen4"
    zen4.write_text("".join(lines.format(n=n, extra="avx512f avx512_bf16") for n in range(2)))
    older = tmp_path / "older"
    older.write_text(lines.format(n=0, extra="avx512f"))
    assert common.cpu_info(zen4) == {"cpu_model": "Example CPU 0", "cpu_bf16": True}
    assert common.cpu_info(older) == {"cpu_model": "Example CPU 0", "cpu_bf16": False}
    assert common.cpu_info(tmp_path / "absent") == {"cpu_model": None, "cpu_bf16": None}

"""The training loop: an end-to-end run, resume after SIGKILL, non-finite loss, DDP on CPU."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import LABELS, WORDS, make_class_clip, write_speech_commands_tree

from speechrnn.checkpoint import load_checkpoint, safe_torch_load
from speechrnn.inference import Classifier
from training.config import load_config
from training.evaluate import evaluate
from training.train import TrainingError, WeightAverage, lr_factor, main, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sc") / "speech_commands"
    write_speech_commands_tree(root, per_word=90, rng=np.random.default_rng(11))
    return root


def _overrides(root: Path, cache: Path, **extra: object) -> list[str]:
    values: dict[str, object] = {
        "data.data_dir": f'"{root}"',
        "data.task": '"custom"',
        "data.words": "[" + ", ".join(f'"{w}"' for w in WORDS) + "]",
        "data.cache_dir": f'"{cache}"',
        "data.silence_rms": "[1e-5, 0.05]",
        "optim.epochs": 8,
        "optim.batch_size": 32,
        "optim.lr": 5e-3,
        "optim.warmup_epochs": 0.5,
        "model.hidden_size": 48,
        "model.num_layers": 1,
        "model.conv_channels": 32,
        "model.conv_stride": 2,
        "model.head_size": 32,
        "model.dropout": 0.0,
        "augment.speed_prob": 0.0,
        "augment.time_masks": 0,
        "augment.freq_masks": 0,
        "augment.noise_snr_db": "[15.0, 40.0]",
        "threads": 1,
        "device": '"cpu"',
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def _fresh_clip_accuracy(model: Path, *, seed: int, per_class: int = 25) -> float:
    """Share of freshly generated clips of every class that ``model`` classifies right."""
    rng = np.random.default_rng(seed)
    clips = [make_class_clip(label, rng) for label in LABELS for _ in range(per_class)]
    truth = [label for label in LABELS for _ in range(per_class)]
    predictions = Classifier.from_file(model, device="cpu").classify(clips)
    return float(np.mean([p.label == t for p, t in zip(predictions, truth, strict=True)]))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_lr_schedule_warms_up_then_decays() -> None:
    values = [lr_factor(s, warmup_steps=10, total_steps=100, min_ratio=0.1) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    tail = values[9:]
    assert all(tail[i] >= tail[i + 1] for i in range(len(tail) - 1))
    assert values[-1] == pytest.approx(0.1, abs=1e-3)


def test_weight_average_follows_the_ramped_decay_and_copies_counters() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    average = WeightAverage(model, decay=0.99)
    expected = 1.0
    for step, value in enumerate([3.0, 5.0, -2.0]):
        with torch.no_grad():
            model[0].weight.fill_(value)
        model[1].num_batches_tracked.fill_(step + 7)
        average.update(model, step=step)
        decay = min(0.99, (1 + step) / (10 + step))  # 0.1, 0.18, 0.25: early steps follow the live model
        expected = decay * expected + (1 - decay) * value
        assert torch.allclose(average.model[0].weight, torch.full((1, 2), expected))
        assert int(average.model[1].num_batches_tracked) == step + 7
    assert not average.model[0].weight.requires_grad and model[0].weight.requires_grad
    assert float(model[0].weight.detach()[0, 0]) == -2.0  # the live model is untouched


@pytest.mark.slow
def test_end_to_end_training_recognises_held_out_clips(tree: Path, tmp_path: Path) -> None:
    config = load_config(None, _overrides(tree, tmp_path / "cache"))
    result = train(config, out_dir=tmp_path / "run", progress=False)
    assert result.epochs_completed == 8 and result.best_path.is_file()
    rows = _read_csv(result.log_path)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert all(0 <= float(r["data_share"]) <= 1 for r in rows)
    assert result.plot_path.stat().st_size > 1000
    # the best model is a normal model file with its summary
    checkpoint = load_checkpoint(result.best_path)
    assert checkpoint.labels == LABELS
    summary = checkpoint.summary
    assert summary["task"] == "custom" and summary["val_accuracy"] == result.best_val_accuracy
    assert set(summary["validation"]["per_class"]) == set(LABELS)
    assert "test_accuracy" in summary and summary["recipe"]["optim"]["epochs"] == 8
    # and it recognises fresh clips through the inference path
    accuracy = _fresh_clip_accuracy(result.best_path, seed=99)
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.1%}"


@pytest.mark.slow
def test_bf16_mixed_precision_on_the_cpu_learns(tree: Path, tmp_path: Path) -> None:
    config = load_config(None, _overrides(tree, tmp_path / "cache", **{"optim.amp": '"bf16"'}))
    result = train(config, out_dir=tmp_path / "run", progress=False)
    checkpoint = load_checkpoint(result.best_path)
    assert checkpoint.summary["recipe"]["optim"]["amp"] == "bf16"
    # the file holds float32 weights (autocast computes in bfloat16; the weights stay float32)
    saved = safe_torch_load(result.last_path)["model"].values()
    assert all(value.dtype == torch.float32 for value in saved if value.is_floating_point())
    accuracy = _fresh_clip_accuracy(result.best_path, seed=98)
    assert accuracy >= 0.9, f"held-out accuracy {accuracy:.1%}"


def test_only_bf16_changes_the_arithmetic_on_the_cpu(tree: Path, tmp_path: Path) -> None:
    def weights(amp: str) -> dict[str, torch.Tensor]:
        args = _overrides(tree, tmp_path / "cache", **{"optim.epochs": 1, "optim.amp": f'"{amp}"'})
        result = train(load_config(None, args), out_dir=tmp_path / amp, progress=False)
        return safe_torch_load(result.last_path)["model"]

    off, auto, bf16 = weights("off"), weights("auto"), weights("bf16")
    # auto means float32 on the CPU: the same run bit for bit; bf16 rounds the products differently
    assert all(torch.equal(value, auto[name]) for name, value in off.items())
    assert not all(torch.equal(value, bf16[name]) for name, value in off.items())


def test_refit_on_validation_keeps_the_last_epoch(tree: Path, tmp_path: Path) -> None:
    # a learning rate so small that the validation score does not improve after the first epoch
    frozen = {"optim.epochs": 2, "optim.lr": 1e-12}
    held_out = train(load_config(None, _overrides(tree, tmp_path / "cache", **frozen)), out_dir=tmp_path / "a",
                     progress=False)  # fmt: skip
    rows = _read_csv(held_out.log_path)
    assert rows[1]["val_accuracy"] == rows[0]["val_accuracy"] and held_out.best_epoch == 1
    overrides = _overrides(tree, tmp_path / "cache", **frozen, **{"data.train_on_validation": "true"})
    result = train(load_config(None, overrides), out_dir=tmp_path / "run", progress=False)
    # validation is no longer held out, so nothing is selected by it: best.pt is the last epoch
    assert result.best_epoch == 2
    best = load_checkpoint(result.best_path)
    assert best.summary["best_epoch"] == 2 and best.summary["recipe"]["data"]["train_on_validation"] is True
    assert best.summary["validation_held_out"] is False
    assert load_checkpoint(held_out.best_path).summary["validation_held_out"] is True
    last = safe_torch_load(result.last_path)["model"]
    assert all(torch.equal(value, last[name]) for name, value in best.state_dict.items())
    # evaluating the refit on validation says the figure is not held out; on testing it is
    report = evaluate(result.best_path, data_dir=tree, split="validation", device="cpu", progress=False)
    assert report.held_out is False and "not a held-out one" in report.table()
    report = evaluate(result.best_path, data_dir=tree, split="testing", device="cpu", progress=False)
    assert report.held_out is True and "held-out" not in report.table()


def test_init_from_starts_where_the_given_model_left_off(tree: Path, tmp_path: Path) -> None:
    base = train(load_config(None, _overrides(tree, tmp_path / "cache", **{"optim.epochs": 3})),
                 out_dir=tmp_path / "base", progress=False)  # fmt: skip
    start = load_checkpoint(base.best_path)
    # a learning rate of ~0: the fine-tune's weights stay the given model's, so does its score
    frozen = {"optim.epochs": 1, "optim.lr": 1e-12, "optim.ema_decay": 0.0, "init_from": f'"{base.best_path}"'}
    tuned = train(load_config(None, _overrides(tree, tmp_path / "cache", **frozen)), out_dir=tmp_path / "tuned",
                  progress=False)  # fmt: skip
    weights = load_checkpoint(tuned.best_path).state_dict
    moved = [n for n, v in start.state_dict.items() if not torch.allclose(v.float(), weights[n].float(), atol=1e-6)]
    # only batch-norm statistics follow the data at that rate; weights and feature normalisation stay
    assert all("running_" in n or "num_batches" in n for n in moved), moved
    assert tuned.best_val_accuracy == pytest.approx(base.best_val_accuracy)
    assert load_checkpoint(tuned.best_path).summary["recipe"]["init_from"] == str(base.best_path)
    # from scratch, one epoch at that rate is nowhere near it
    scratch = train(load_config(None, _overrides(tree, tmp_path / "cache", **{**frozen, "init_from": '""'})),
                    out_dir=tmp_path / "scratch", progress=False)  # fmt: skip
    assert scratch.best_val_accuracy < base.best_val_accuracy - 0.2
    other = {**frozen, "model.hidden_size": 24}
    with pytest.raises(TrainingError, match=r"best\.pt: init_from has other model settings than this run"):
        train(load_config(None, _overrides(tree, tmp_path / "cache", **other)), out_dir=tmp_path / "x", progress=False)


@pytest.mark.slow
def test_resume_after_sigkill_restores_state_and_keeps_the_log(
    tree: Path, tmp_path: Path, repo_env: dict[str, str]
) -> None:
    out = tmp_path / "run"
    args = _overrides(tree, tmp_path / "cache", **{"optim.epochs": 4, "model.hidden_size": 16, "optim.ema_decay": 0.9})
    command = [sys.executable, "-m", "training.train", "--out", str(out), "--quiet"]
    for item in args:
        command += ["--set", item]
    process = subprocess.Popen(command, cwd=REPO, env=repo_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last = out / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=30)
    assert last.exists(), err.decode()[-2000:]
    state = safe_torch_load(last)
    killed_epoch = state["epoch"]
    assert 1 <= killed_epoch < 4, "the run should have been killed mid-way"
    steps_per_epoch = state["step"] // killed_epoch
    opt_steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert opt_steps == {state["step"]}
    rows_before = _read_csv(out / "log.csv")
    assert len(rows_before) in (killed_epoch, killed_epoch + 1) or not rows_before

    config = load_config(None, args)
    result = train(config, out_dir=out, progress=False)
    assert result.resumed_from_epoch == killed_epoch and result.epochs_completed == 4
    final = safe_torch_load(last)
    assert final["epoch"] == 4 and final["step"] == 4 * steps_per_epoch
    assert {int(s["step"]) for s in final["optimizer"]["state"].values()} == {4 * steps_per_epoch}
    assert final["scheduler"]["last_epoch"] == 4 * steps_per_epoch
    # the weight average is saved with the state and carried through the resume
    assert set(final["ema"]) == set(final["model"])
    assert not torch.equal(final["ema"]["rnn.weight_hh_l0"], final["model"]["rnn.weight_hh_l0"])
    rows = _read_csv(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    kept = [r for r in rows_before if int(r["epoch"]) <= killed_epoch]
    assert rows[: len(kept)] == kept  # earlier rows kept as written, not overwritten


def test_non_finite_loss_stops_with_a_message(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from speechrnn.model import SpeechRNN

    original = SpeechRNN.forward

    def exploding(self: SpeechRNN, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return original(self, frames, lengths) * float("nan")

    monkeypatch.setattr(SpeechRNN, "forward", exploding)
    args = _overrides(tree, tmp_path / "cache", **{"optim.epochs": 2, "model.hidden_size": 16})
    with pytest.raises(TrainingError, match=r"non-finite training loss \(nan\) at epoch 1, step 1"):
        train(load_config(None, args), out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "best.pt").exists()
    assert not (tmp_path / "run" / "last.pt").exists()
    argv = ["--out", str(tmp_path / "run2"), "--quiet"] + [x for a in args for x in ("--set", a)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("speechrnn-train: error: non-finite training loss")


def test_cli_reports_bad_config_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--set", "optim.lrr=1", "--out", str(tmp_path)]) == 1
    assert "unknown config key 'optim.lrr'" in capsys.readouterr().err
    # a section's own checks name the key, not torch's message from deep inside the model
    for setting, message in (("model.dropout=2", "model.dropout must be in [0, 1), not 2"),
                             ("model.hidden_size=-1", "model.hidden_size must be at least 1, not -1"),
                             ('model.cell="foo"', "model.cell must be one of")):
        assert main(["--set", setting, "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"speechrnn-train: error: config: {message}") and err.count("\n") == 1, err
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "data folder not found" in capsys.readouterr().err
    # a bad init_from model fails at once, naming the file, before any data is read
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    for bad in (broken, tmp_path / "missing.pt"):
        argv = ["--data", str(tmp_path / "nowhere"), "--set", f'init_from="{bad}"', "--out", str(tmp_path / "o")]
        assert main([*argv, "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert str(bad) in err and len(err.splitlines()) == 1 and "data folder" not in err, err


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tree: Path, tmp_path: Path, repo_env: dict[str, str]) -> None:
    out = tmp_path / "ddp"
    args = _overrides(tree, tmp_path / "cache", **{"optim.epochs": 2, "model.hidden_size": 16})
    # decode once here so the two processes share the cache
    from training.data import SpeechCommandsData

    config = load_config(None, args)
    data = SpeechCommandsData(config.data, config.features, progress=False)
    n_train = len(data.split("training"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "training.train", "--out", str(out), "--quiet",
    ]  # fmt: skip
    for item in args:
        command += ["--set", item]
    env = {**repo_env, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _read_csv(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]  # one writer: rank 0
    # each of the 2 ranks took half the data: 16 examples per step per rank
    per_rank = -(-n_train // 2)
    assert int(rows[-1]["step"]) == 2 * -(-per_rank // 16)
    assert load_checkpoint(out / "best.pt").labels == LABELS
    assert done.stdout.count("best validation accuracy") == 1


def test_prefetcher_keeps_order_and_raises_errors() -> None:
    from training.train import Prefetcher

    assert list(Prefetcher(iter(range(20)), depth=3)) == list(range(20))
    assert list(Prefetcher(iter(range(5)), depth=0)) == list(range(5))

    def broken():
        yield 1
        raise ValueError("bad batch")

    feed = Prefetcher(broken(), depth=2)
    assert next(feed) == 1
    with pytest.raises(ValueError, match="bad batch"):
        next(feed)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where no CUDA GPU exists")
def test_cuda_request_without_gpu_is_a_clear_error(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--out", str(tmp_path / "run"), "--quiet", "--device", "cuda"]
    argv += [x for a in _overrides(tree, tmp_path / "cache") if not a.startswith("device=") for x in ("--set", a)]
    assert main(argv) == 1
    assert "CUDA was requested" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mixed_precision_training_on_cuda(tree: Path, tmp_path: Path) -> None:
    args = _overrides(tree, tmp_path / "cache", **{"device": '"cuda"', "optim.epochs": 2, "optim.amp": '"auto"'})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(load_config(None, args), out_dir=tmp_path / "gpu", progress=False)
    assert result.epochs_completed == 2
    # the weight average is a copy of the model: cuDNN must still see one weight buffer, or it
    # re-packs the weights on every call (and warns)
    assert not [w for w in caught if "single contiguous chunk" in str(w.message)]
    assert Classifier.from_file(result.best_path, device="cpu").labels == LABELS


# ---- resuming: the same run, or a clear refusal ---------------------------------------------------


def _argv(args: list[str], out: Path, *extra: str) -> list[str]:
    return ["--out", str(out), "--quiet", *[x for a in args for x in ("--set", a)], *extra]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def finished_run(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """A finished 2-epoch run (its command-line settings and its folder); tests copy the folder."""
    folder = tmp_path_factory.mktemp("finished")
    args = _overrides(tree, folder / "cache", **{"optim.epochs": 2, "model.hidden_size": 16})
    train(load_config(None, args), out_dir=folder / "run", progress=False)
    return args, folder / "run"


def _copy_of(finished_run: tuple[list[str], Path], tmp_path: Path) -> tuple[list[str], Path]:
    """The finished run's settings and a copy of its folder to work on."""
    args, run = finished_run
    shutil.copytree(run, tmp_path / "run")
    return args, tmp_path / "run"


def test_resume_with_other_settings_is_refused_naming_the_changes(
    finished_run: tuple[list[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, out = _copy_of(finished_run, tmp_path)
    before = _files(out)
    changed = ["optim.batch_size=16", "seed=5", 'data.holdout_words=["hiss"]', "augment.enabled=false"]
    assert main(_argv(args, out, "--epochs", "3", *[x for c in changed for x in ("--set", c)])) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out / "last.pt") in err, err
    # the first few changes, old -> new, in the config's order
    shown = 'data.holdout_words [] -> ["hiss"], augment.enabled true -> false, optim.batch_size 32 -> 16 and 1 more'
    assert shown in err
    assert "use another --out or --no-resume" in err
    assert _files(out) == before  # config.json, the log and the states are untouched


def test_resume_may_move_the_data_and_extend_the_run(
    finished_run: tuple[list[str], Path], tree: Path, tmp_path: Path
) -> None:
    args, out = _copy_of(finished_run, tmp_path)
    moved = shutil.copytree(tree, tmp_path / "moved")
    allowed = ["--data", str(moved), "--epochs", "3", "--set", "eval_batch_size=7", "--set", "prefetch=0"]
    assert main(_argv(args, out, *allowed)) == 0
    summary = load_checkpoint(out / "best.pt").summary
    assert summary["epochs"] == 3 and summary["data"] == str(moved.resolve())
    assert [int(r["epoch"]) for r in _read_csv(out / "log.csv")] == [1, 2, 3]
    assert safe_torch_load(out / "last.pt")["step"] == 3 * int(_read_csv(out / "log.csv")[0]["step"])


def _kill_while_plotting_the_last_epoch(args: list[str], out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``args`` (2 epochs) into ``out``, "killed" while the second epoch's curves are drawn."""
    import training.train as train_module

    real_plot = train_module.plot_curves

    def killed_at_epoch_2(rows: list[dict[str, object]], path: Path) -> Path:
        if len(rows) < 2:
            return real_plot(rows, path)
        (path.parent / f".{path.name}.tmp.png").write_bytes(b"")  # the kill leaves savefig's file empty
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "plot_curves", killed_at_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            train(load_config(None, args), out_dir=out, progress=False)
    assert safe_torch_load(out / "last.pt")["epoch"] == 2 and (out / ".curves.png.tmp.png").exists()


def test_the_final_lines_agree_on_the_model_in_best_pt(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _overrides(tree, tmp_path / "cache", **{"optim.epochs": 2, "model.hidden_size": 16})
    out = tmp_path / "run"
    _kill_while_plotting_the_last_epoch(args, out, monkeypatch)
    # completed on other clips under another folder name: best.pt is scored on those, and both
    # final lines must state that figure (not the one recorded on the earlier clips)
    moved = tmp_path / "moved"
    write_speech_commands_tree(moved, per_word=24, rng=np.random.default_rng(5))
    assert main(["--out", str(out), *[x for a in args for x in ("--set", a)], "--data", str(moved)]) == 0
    captured = capsys.readouterr()
    stated = [line for line in captured.err.splitlines() if line.startswith("best epoch")]
    on_stderr = float(stated[-1].split("validation accuracy ")[1].split(",")[0].split(" ")[0])
    on_stdout = float(captured.out.split("best validation accuracy ")[1].split(" ")[0])
    assert on_stderr == on_stdout == pytest.approx(load_checkpoint(out / "best.pt").summary["val_accuracy"], abs=5e-5)


def test_rerunning_a_finished_run_says_so_and_changes_nothing(
    finished_run: tuple[list[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, out = _copy_of(finished_run, tmp_path)
    before = _files(out)
    for epochs in ("1", "2"):
        assert main(_argv(args, out, "--epochs", epochs)) == 0
        captured = capsys.readouterr()
        assert captured.out.count("\n") == 1 and not captured.err
        assert "already finished (trained 2 epochs)" in captured.out and str(out / "best.pt") in captured.out
        assert _files(out) == before
    result = train(load_config(None, [*args, "optim.epochs=1"]), out_dir=out, progress=False)
    assert result.already_finished and result.epochs_completed == 2 and not result.stopped_early
    assert result.best_val_accuracy == load_checkpoint(out / "best.pt").summary["val_accuracy"]
    assert load_checkpoint(out / "best.pt").summary["epochs"] == 2


def test_an_early_stopped_run_stays_finished(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a learning rate so small that the validation score soon stops improving
    args = _overrides(tree, tmp_path / "cache", **{"optim.epochs": 6, "optim.lr": 1e-12, "optim.patience": 1,
                                                   "model.hidden_size": 16})  # fmt: skip
    out = tmp_path / "run"
    result = train(load_config(None, args), out_dir=out, progress=False)
    stopped = result.epochs_completed
    assert result.stopped_early and stopped < 6
    assert safe_torch_load(out / "last.pt")["stopped_early"] is True
    before = _files(out)
    for extra in ((), ("--epochs", "8")):
        assert main(_argv(args, out, *extra)) == 0
        assert f"already finished (stopped early at epoch {stopped})" in capsys.readouterr().out
        assert _files(out) == before
        assert len(_read_csv(out / "log.csv")) == stopped


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda state: state.pop("rng"), "not a complete training state (no rng)"),
        (lambda state: state.update(optimizer={"state": {}}), "not a complete training state (no param_groups)"),
    ],
)
def test_an_incomplete_training_state_is_one_line(
    finished_run: tuple[list[str], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[dict[str, object]], object],
    reason: str,
) -> None:
    args, out = _copy_of(finished_run, tmp_path)
    state = safe_torch_load(out / "last.pt")
    damage(state)
    torch.save(state, out / "last.pt")
    assert main(_argv(args, out, "--epochs", "3")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out / "last.pt") in err and reason in err, err
    assert "use another --out or --no-resume" in err


def test_a_run_killed_while_plotting_its_last_epoch_is_completed_without_leftovers(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _overrides(tree, tmp_path / "cache", **{"optim.epochs": 2, "model.hidden_size": 16})
    out = tmp_path / "run"
    _kill_while_plotting_the_last_epoch(args, out, monkeypatch)
    assert main(_argv(args, out)) == 0  # the same command again: no epoch left, the run is completed
    assert "best validation accuracy" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".lock", "best.pt", "config.json", "curves.png", "last.pt",
                                                     "log.csv"]
    assert [int(r["epoch"]) for r in _read_csv(out / "log.csv")] == [1, 2]
    summary = load_checkpoint(out / "best.pt").summary
    assert summary["epochs"] == 2 and "train_seconds" in summary and "test_accuracy" in summary
    assert (out / "curves.png").stat().st_size > 1000


def test_output_path_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("not a folder")
    assert main(["--out", str(tmp_path / "afile"), "--data", str(tmp_path), "--epochs", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"speechrnn-train: error: {tmp_path / 'afile'}: exists and is not a folder; choose another --out"


def test_a_second_run_on_the_same_folder_is_refused(tree: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs writing one folder would interleave their logs and checkpoints: the second stops at once."""
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running training run holds it
        assert main(_argv(_overrides(tree, tmp_path / "cache", **{"optim.epochs": 1}), out)) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"speechrnn-train: error: {out}: another training run is using this folder; wait for it to " \
        "end or choose another --out"
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_prefetcher_close_waits_for_its_thread() -> None:
    from training.train import Prefetcher

    def endless():
        while True:
            time.sleep(0.01)
            yield 0

    feed = Prefetcher(endless(), depth=2)
    assert next(feed) == 0
    feed.close()
    assert not [t for t in threading.enumerate() if t.name == "batch-prefetch"]


def _interrupt_on_batch(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make the n-th forward pass raise KeyboardInterrupt (Ctrl-C in the middle of an epoch)."""
    from speechrnn.model import SpeechRNN

    original, calls = SpeechRNN.forward, []

    def forward(self: SpeechRNN, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
        return original(self, frames, lengths)

    monkeypatch.setattr(SpeechRNN, "forward", forward)


def test_ctrl_c_mid_epoch_stops_the_batch_thread(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A batch thread left running inside torch while Python exits can abort the process (SIGABRT)."""
    _interrupt_on_batch(monkeypatch, 3)
    args = _overrides(tree, tmp_path / "cache", **{"optim.epochs": 2, "model.hidden_size": 16, "prefetch": 2})
    assert main(_argv(args, tmp_path / "run")) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted (rerun the same command to resume)")
    assert not [t for t in threading.enumerate() if t.name == "batch-prefetch"]


def test_no_resume_forgets_the_earlier_run_at_once(finished_run: tuple[list[str], Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--no-resume killed in its first epoch: a rerun must not resume the earlier run with its log gone."""
    args, out = _copy_of(finished_run, tmp_path)
    _interrupt_on_batch(monkeypatch, 2)
    assert main(_argv(args, out, "--no-resume")) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted (rerun without --no-resume to resume)")
    assert not any((out / name).exists() for name in ("last.pt", "best.pt", "log.csv", "curves.png"))
    monkeypatch.undo()
    result = train(load_config(None, args), out_dir=out, progress=False)
    assert result.resumed_from_epoch == 0 and [int(r["epoch"]) for r in _read_csv(out / "log.csv")] == [1, 2]


def test_an_empty_validation_split_is_refused(tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "speech_commands"
    shutil.copytree(tree, root)
    (root / "validation_list.txt").write_text("")
    args = _overrides(root, tmp_path / "cache", **{"optim.epochs": 1})
    with pytest.raises(TrainingError, match="the validation split of task 'custom' is empty"):
        train(load_config(None, args), out_dir=tmp_path / "run", progress=False)

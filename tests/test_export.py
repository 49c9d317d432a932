"""ONNX export and the ONNX Runtime backend: same probabilities as PyTorch, metadata, CLI, cache."""

from __future__ import annotations

import itertools
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrnn.checkpoint import load_checkpoint, save_checkpoint
from speechrnn.errors import SpeechRNNError
from speechrnn.features import FeatureConfig
from speechrnn.inference import Classifier, resolve_backend
from speechrnn.model import CELLS, POOLINGS, ModelConfig, SpeechRNN
from speechrnn.onnx_backend import onnx_available

needs_onnx = pytest.mark.skipif(
    not onnx_available(), reason="onnx and onnxruntime are not installed (pip install onnx onnxruntime)"
)
LABELS = ("_silence_", "_unknown_", "a", "b", "c")
FEATURES = FeatureConfig()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exports cached by these tests go to a temporary folder, not ~/.cache."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SPEECHRNN_CACHE", str(folder))
    monkeypatch.delenv("SPEECHRNN_BACKEND", raising=False)
    return folder / "onnx"


def make_model(path: Path, *, seed: int = 0, **overrides) -> Path:
    """A random-weight model file with non-trivial normalisation statistics."""
    torch.manual_seed(seed)
    options = {"hidden_size": 16, "head_size": 12, "conv_channels": 0, **overrides}
    config = ModelConfig(n_mels=FEATURES.n_mels, n_classes=len(LABELS), **options)
    model = SpeechRNN(config)
    model.set_normalization(torch.linspace(-9.0, -3.0, FEATURES.n_mels), torch.linspace(1.5, 3.0, FEATURES.n_mels))
    if model.frontend is not None:  # non-default batch-norm statistics, as after training
        norm = model.frontend[1]
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    save_checkpoint(path, model=model.eval(), feature_config=FEATURES, labels=LABELS)
    return path


def log_mel_like(batch: int, time: int, seed: int) -> np.ndarray:
    """Frames in the range of real log-mel features, float32 (batch, time, n_mels)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(-6.0, 3.0, size=(batch, time, FEATURES.n_mels))).astype(np.float32)


CONFIGS = [
    pytest.param(
        {"cell": cell, "pooling": pooling, "conv_channels": conv, "conv_stride": 2 if conv else 1,
         "bidirectional": bidirectional, "num_layers": 2 if bidirectional else 1},
        id=f"{cell}-{pooling}-{'conv' if conv else 'noconv'}-{'bi' if bidirectional else 'uni'}",
    )
    for cell, pooling, conv, bidirectional in itertools.product(CELLS, POOLINGS, (0, 8), (False, True))
]


@needs_onnx
@pytest.mark.parametrize("overrides", CONFIGS)
def test_onnx_runtime_gives_pytorch_probabilities(tmp_path: Path, overrides: dict) -> None:
    from speechrnn.onnx_backend import OnnxRunner, export_model_bytes

    checkpoint = load_checkpoint(make_model(tmp_path / "m.pt", **overrides))
    model = checkpoint.build_model()
    runner = OnnxRunner(export_model_bytes(checkpoint))
    for (batch, time), seed in zip(itertools.product((1, 3), (FEATURES.n_frames, 23)), itertools.count(), strict=False):
        frames = log_mel_like(batch, time, seed)
        with torch.inference_mode():
            logits = model(torch.from_numpy(frames))
            expected = torch.softmax(logits, dim=-1).numpy()
        got = runner.run(frames)
        assert got.shape == (batch, len(LABELS)) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(runner.run(frames, logits=True), logits.numpy(), atol=1e-4, rtol=1e-4)
        # rows are independent: each sequence alone gives its row of the batch
        np.testing.assert_allclose(runner.run(frames[-1:]), got[-1:], atol=1e-5, rtol=0)


@needs_onnx
def test_exported_file_describes_itself(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from speechrnn.export import export_onnx

    model = make_model(tmp_path / "m.pt", cell="lstm", conv_channels=8, conv_stride=2)
    out = export_onnx(model, tmp_path / "sub" / "m.onnx")
    assert out == tmp_path / "sub" / "m.onnx"
    onnx.checker.check_model(onnx.load(str(out)))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (frames,) = session.get_inputs()
    assert frames.name == "frames" and frames.shape == ["batch", "time", FEATURES.n_mels]
    assert [o.name for o in session.get_outputs()] == ["probabilities", "logits"]
    assert [o.shape for o in session.get_outputs()] == [["batch", len(LABELS)]] * 2
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["labels"]) == list(LABELS)
    assert FeatureConfig.from_dict(json.loads(meta["feature_config"])) == FEATURES
    assert ModelConfig.from_dict(json.loads(meta["model_config"])) == load_checkpoint(model).model_config
    # usable without speechrnn: features from the metadata's config, probabilities from the session
    from speechrnn.features import log_mel

    clip = np.random.default_rng(0).normal(0, 0.1, FEATURES.clip_samples).astype(np.float32)
    probabilities = session.run(["probabilities"], {"frames": log_mel(clip, FEATURES)[None]})[0]
    expected = Classifier.from_file(model, device="cpu", backend="torch").probabilities(clip[None])
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)


@needs_onnx
def test_cli_export_writes_a_loadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime as ort

    from speechrnn.cli import main

    model = make_model(tmp_path / "m.pt", cell="gru", pooling="mean")
    out = tmp_path / "m.onnx"
    assert main(["export", "--onnx", str(model), str(out)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "checked" in printed
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"frames": log_mel_like(2, 40, 0)})[0]
    assert probabilities.shape == (2, len(LABELS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("problem", ["missing", "not a model", "folder output", "old opset"])
def test_cli_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str) -> None:
    from speechrnn.cli import main

    model, out, extra = tmp_path / "m.pt", tmp_path / "m.onnx", []
    if problem == "missing":
        model = tmp_path / "nowhere.pt"
    elif problem == "not a model":
        model.write_text("hello")
    else:
        if not onnx_available():
            pytest.skip("onnx and onnxruntime are not installed (pip install onnx onnxruntime)")
        make_model(model)
        if problem == "folder output":
            out = tmp_path
        else:
            extra = ["--opset", "11"]
    status = main(["export", "--onnx", str(model), str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert status in (1, 2)
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    if problem in ("missing", "not a model"):
        assert str(model) in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_never_replaces_the_model_or_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    """`speechrnn export m.pt m.pt` wrote ONNX bytes over the model; an earlier .onnx export is still replaced."""
    if not onnx_available():
        pytest.skip("onnx and onnxruntime are not installed (pip install onnx onnxruntime)")
    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.errors import SpeechRNNError
    from speechrnn.export import export_onnx

    model = make_model(tmp_path / "m.pt")
    kept = model.read_bytes()
    with pytest.raises(SpeechRNNError, match="is the model file being exported"):
        export_onnx(model, model)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(SpeechRNNError, match=r"exists and is not an \.onnx file; not replaced"):
        export_onnx(model, notes)
    assert model.read_bytes() == kept and notes.read_text() == "mine"
    assert load_checkpoint(model).labels == LABELS
    out = tmp_path / "m.onnx"
    out.write_bytes(b"an earlier export")
    export_onnx(model, out)
    assert out.read_bytes() != b"an earlier export"


def test_cli_export_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from speechrnn.cli import main

    only = tmp_path / "only-one-path.pt"
    assert main(["export", "--onnx", str(only)]) == 2  # never taken as OUT with some default model
    assert capsys.readouterr().err.startswith("error: give both the model file and the ONNX file") and not only.exists()
    model = make_model(tmp_path / "m.pt")
    assert main(["export", "--model", str(model), str(model), str(tmp_path / "x.onnx")]) == 2
    assert "once" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


@needs_onnx
def test_cli_export_takes_the_model_as_an_option_and_refuses_unknown_opsets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from speechrnn.cli import main

    model = make_model(tmp_path / "m.pt")
    assert main(["export", "--model", str(model), str(tmp_path / "a.onnx")]) == 0
    assert (tmp_path / "a.onnx").stat().st_mode & 0o777 == 0o644  # readable by others, as model files are
    capsys.readouterr()
    assert main(["export", str(model), str(tmp_path / "b.onnx"), "--opset", "99"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: opset 99 is newer than this PyTorch can export")
    assert captured.err.count("\n") == 1 and not (tmp_path / "b.onnx").exists()


@needs_onnx
@pytest.mark.parametrize("cell", CELLS)
def test_classifier_onnx_backend_matches_torch(tmp_path: Path, cell: str) -> None:
    path = make_model(tmp_path / "m.pt", cell=cell, conv_channels=8, conv_stride=2, pooling="attention")
    fast = Classifier.from_file(path, device="cpu", backend="onnx")
    slow = Classifier.from_file(path, device="cpu", backend="torch")
    assert (fast.backend, slow.backend) == ("onnx", "torch")
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        clips = rng.normal(0, 0.1, (batch, FEATURES.clip_samples)).astype(np.float32)
        np.testing.assert_allclose(fast.probabilities(clips), slow.probabilities(clips), atol=1e-4, rtol=0)
        frames = log_mel_like(batch, FEATURES.n_frames, batch)
        np.testing.assert_allclose(
            fast.probabilities_from_frames(frames), slow.probabilities_from_frames(frames), atol=1e-4, rtol=0
        )
        np.testing.assert_allclose(
            fast.probabilities_from_frames(torch.from_numpy(frames)), slow.probabilities_from_frames(frames),
            atol=1e-4, rtol=0,
        )
    # batches above onnx_max_batch run in PyTorch: the same numbers either way
    small = Classifier(load_checkpoint(path), device="cpu", backend="onnx", onnx_max_batch=2)
    clips = rng.normal(0, 0.1, (5, FEATURES.clip_samples)).astype(np.float32)
    np.testing.assert_allclose(small.probabilities(clips), slow.probabilities(clips), atol=1e-4, rtol=0)
    predictions = fast.classify(list(clips))
    assert [p.label for p in predictions] == [p.label for p in slow.classify(list(clips))]


@needs_onnx
def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == "onnx"
    assert resolve_backend("torch", cpu) == "torch"
    assert resolve_backend("ONNX", cpu) == "onnx"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(SpeechRNNError, match="CPU only"):
        resolve_backend("onnx", torch.device("cuda"))
    with pytest.raises(SpeechRNNError, match="unknown backend"):
        resolve_backend("tensorrt", cpu)
    monkeypatch.setenv("SPEECHRNN_BACKEND", "torch")
    assert resolve_backend("auto", cpu) == "torch"
    assert resolve_backend("onnx", cpu) == "onnx"  # an explicit choice wins over the variable
    monkeypatch.setenv("SPEECHRNN_BACKEND", "fast")
    with pytest.raises(SpeechRNNError, match="SPEECHRNN_BACKEND"):
        resolve_backend("auto", cpu)


def test_without_onnxruntime_auto_is_torch_and_onnx_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    path = make_model(tmp_path / "m.pt")
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    assert Classifier.from_file(path, device="cpu").backend == "torch"
    with pytest.raises(SpeechRNNError, match=r"pip install onnx onnxruntime"):
        Classifier.from_file(path, device="cpu", backend="onnx")


@needs_onnx
def test_export_is_cached_and_a_bad_cache_entry_is_replaced(
    tmp_path: Path, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speechrnn import onnx_backend

    path = make_model(tmp_path / "m.pt", cell="gru")
    first = Classifier.from_file(path, device="cpu")
    assert first.backend == "onnx"
    (entry,) = private_cache.glob("*.onnx")

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds this model")

    with monkeypatch.context() as patch:
        patch.setattr(onnx_backend, "export_model_bytes", no_export)
        second = Classifier.from_file(path, device="cpu")
    frames = log_mel_like(2, 50, 3)
    np.testing.assert_array_equal(first.probabilities_from_frames(frames), second.probabilities_from_frames(frames))

    entry.write_bytes(b"not an onnx model")
    third = Classifier.from_file(path, device="cpu")
    assert third.backend == "onnx"
    assert entry.read_bytes() != b"not an onnx model"
    np.testing.assert_allclose(third.probabilities_from_frames(frames), first.probabilities_from_frames(frames),
                               atol=1e-6)
    # another model gets its own entry
    Classifier.from_file(make_model(tmp_path / "other.pt", cell="gru", seed=1), device="cpu")
    assert len(list(private_cache.glob("*.onnx"))) == 2


@needs_onnx
def test_a_cache_entry_holding_another_models_export_is_not_used(tmp_path: Path, private_cache: Path) -> None:
    """Entries are named by a model's fingerprint; one overwritten by another model's valid export was used."""
    path = make_model(tmp_path / "m.pt", cell="gru")
    expected = Classifier.from_file(path, device="cpu", backend="torch")
    Classifier.from_file(path, device="cpu")
    (entry,) = private_cache.glob("*.onnx")
    other = Classifier.from_file(make_model(tmp_path / "other.pt", cell="gru", seed=1), device="cpu")
    entry.write_bytes(other.onnx_bytes)  # same graph shape and metadata keys, other weights
    again = Classifier.from_file(path, device="cpu")
    assert again.backend == "onnx"
    frames = log_mel_like(2, 50, 3)
    np.testing.assert_allclose(again.probabilities_from_frames(frames), expected.probabilities_from_frames(frames),
                               atol=1e-4)
    assert entry.read_bytes() != other.onnx_bytes  # replaced by this model's own export


@needs_onnx
def test_export_that_disagrees_with_pytorch_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from speechrnn import onnx_backend

    path = make_model(tmp_path / "m.pt")
    wrong = onnx_backend.export_model_bytes(load_checkpoint(make_model(tmp_path / "other.pt", seed=5)))
    monkeypatch.setattr(onnx_backend, "export_model_bytes", lambda checkpoint, **kwargs: wrong)
    with pytest.raises(SpeechRNNError, match="differ"):
        Classifier.from_file(path, device="cpu", backend="onnx")
    with pytest.warns(RuntimeWarning, match="differ"):
        fallback = Classifier.from_file(path, device="cpu")
    assert fallback.backend == "torch"


@needs_onnx
def test_classifier_with_onnx_pickles(tmp_path: Path) -> None:
    classifier = Classifier.from_file(make_model(tmp_path / "m.pt", cell="lstm"), device="cpu")
    copy = pickle.loads(pickle.dumps(classifier))
    assert copy.backend == "onnx"
    frames = log_mel_like(1, FEATURES.n_frames, 4)
    np.testing.assert_array_equal(copy.probabilities_from_frames(frames), classifier.probabilities_from_frames(frames))


@needs_onnx
def test_int8_backend_is_close_to_float_and_runs_every_batch(tmp_path: Path) -> None:
    from speechrnn.onnx_backend import read_metadata

    path = make_model(tmp_path / "m.pt", cell="lstm", conv_channels=8, conv_stride=2, pooling="attention")
    int8 = Classifier.from_file(path, device="cpu", backend="int8")
    float32 = Classifier.from_file(path, device="cpu", backend="onnx")
    assert (int8.backend, float32.backend) == ("int8", "onnx")
    assert read_metadata(int8._onnx.model_bytes)["weights"] == "int8"
    import onnx

    ops = {node.op_type for node in onnx.load_from_string(int8._onnx.model_bytes).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops  # the recurrent weights are 8-bit
    frames = log_mel_like(40, FEATURES.n_frames, 7)
    quantized = int8.probabilities_from_frames(frames)
    # close to the float model, but not the float model
    assert 0 < np.abs(quantized - float32.probabilities_from_frames(frames)).max() < 0.05
    # every batch size runs the int8 graph (no switch to float PyTorch above ONNX_MAX_BATCH), and a
    # clip's answer does not depend on the others in its batch (activations are quantized per call)
    one_by_one = np.concatenate([int8.probabilities_from_frames(frames[i : i + 1]) for i in range(len(frames))])
    np.testing.assert_array_equal(quantized, one_by_one)
    np.testing.assert_array_equal(int8.probabilities_from_frames(frames[::-1])[::-1], quantized)
    copy = pickle.loads(pickle.dumps(int8))
    assert copy.backend == "int8"
    np.testing.assert_array_equal(copy.probabilities_from_frames(frames), quantized)


@needs_onnx
def test_int8_backend_gives_a_trained_models_answers(synthetic_model: Path) -> None:
    from synthetic import LABELS, make_class_clip

    rng = np.random.default_rng(5)
    clips = np.stack([make_class_clip(label, rng) for label in LABELS for _ in range(8)])
    truth = [label for label in LABELS for _ in range(8)]
    int8 = Classifier.from_file(synthetic_model, device="cpu", backend="int8")
    float32 = Classifier.from_file(synthetic_model, device="cpu", backend="torch")
    labels = [p.label for p in int8.classify(clips)]
    assert labels == [p.label for p in float32.classify(clips)]
    assert np.mean([a == b for a, b in zip(labels, truth, strict=True)]) >= 0.9


@needs_onnx
def test_int8_backend_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("INT8", cpu) == "int8"
    with pytest.raises(SpeechRNNError, match="int8 backend runs on the CPU only"):
        resolve_backend("int8", gpu)
    with pytest.raises(SpeechRNNError, match="auto, torch, onnx or int8"):
        resolve_backend("int4", cpu)
    monkeypatch.setenv("SPEECHRNN_BACKEND", "int8")
    assert resolve_backend("auto", cpu) == "int8"
    assert resolve_backend("auto", gpu) == "torch"  # the variable applies where it can
    assert Classifier.from_file(make_model(tmp_path / "m.pt"), device="cpu").backend == "int8"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(SpeechRNNError, match=r"pip install onnx onnxruntime"):
        Classifier.from_file(make_model(tmp_path / "m.pt"), device="cpu", backend="int8")

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from speechrnn.checkpoint import atomic_torch_save, load_checkpoint, save_checkpoint
from speechrnn.errors import CheckpointError
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, SpeechRNN

LABELS = ("_silence_", "_unknown_", "yes", "no")


def make_model() -> SpeechRNN:
    torch.manual_seed(3)
    model = SpeechRNN(ModelConfig(n_classes=4, hidden_size=16, conv_channels=8, conv_stride=2, cell="lstm"))
    model.set_normalization(torch.randn(40), torch.rand(40) + 0.5)
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = make_model()
    features = FeatureConfig(n_mels=40, hop_seconds=0.0125)
    path = save_checkpoint(tmp_path / "m.pt", model=model, feature_config=features, labels=LABELS,
                           summary={"metrics": {"val_accuracy": 0.9}})
    checkpoint = load_checkpoint(path)
    assert checkpoint.labels == LABELS
    assert checkpoint.feature_config == features
    assert checkpoint.model_config == model.config
    assert checkpoint.summary["metrics"]["val_accuracy"] == 0.9
    frames = torch.randn(3, 50, 40)
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.build_model()(frames), model(frames), atol=0, rtol=0)


def test_float16_storage_halves_the_weights_and_loads_as_float32(tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = SpeechRNN(ModelConfig(n_classes=4, hidden_size=96, conv_channels=32, conv_stride=2, cell="lstm")).eval()
    model.set_normalization(torch.randn(40) * 5, torch.rand(40) + 0.5)
    features = FeatureConfig()
    full = save_checkpoint(tmp_path / "full.pt", model=model, feature_config=features, labels=LABELS)
    half = save_checkpoint(tmp_path / "half.pt", model=model, feature_config=features, labels=LABELS,
                           weights_dtype="float16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    checkpoint = load_checkpoint(half)
    assert checkpoint.weights_dtype == "float16" and load_checkpoint(full).weights_dtype == "float32"
    assert all(v.dtype == torch.float32 for v in checkpoint.state_dict.values() if v.is_floating_point())
    # vectors (normalisation statistics, biases) are kept exactly; matrices to half precision
    mean = model.state_dict()["feature_mean"]
    torch.testing.assert_close(checkpoint.state_dict["feature_mean"], mean, atol=0, rtol=0)
    frames = torch.randn(8, 98, 40)
    with torch.no_grad():
        expected = torch.softmax(model(frames), dim=1)
        got = torch.softmax(checkpoint.build_model()(frames), dim=1)
    assert (got - expected).abs().max() < 2e-3
    with pytest.raises(ValueError, match="weights_dtype"):
        save_checkpoint(tmp_path / "x.pt", model=model, feature_config=features, labels=LABELS, weights_dtype="int8")


def test_label_count_must_match(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="3 labels"):
        save_checkpoint(tmp_path / "m.pt", model=make_model(), feature_config=FeatureConfig(), labels=LABELS[:3])


class Payload:
    """Unpickling this runs a command: the classic malicious model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_file_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "speechrnn-model", "weights": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    # a raw pickle (not a torch zip) carrying the same payload is refused too
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "file not found"),
        (b"", "empty file"),
        (b"this is not a model at all" * 10, "not a readable model file"),
    ],
)
def test_bad_files_name_the_file_and_reason(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", model=make_model(), feature_config=FeatureConfig(), labels=LABELS)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


def test_plain_tensor_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a speechrnn model file"):
        load_checkpoint(path)


def test_mismatched_weights_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", model=make_model(), feature_config=FeatureConfig(), labels=LABELS)
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["hidden_size"] = 32
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(path)


def test_future_format_version_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", model=make_model(), feature_config=FeatureConfig(), labels=LABELS)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(path)


def test_atomic_save_keeps_old_file_when_save_fails(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    atomic_torch_save({"step": 1}, path)

    class Unsaveable:
        def __reduce__(self) -> object:
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        atomic_torch_save({"step": 2, "bad": Unsaveable()}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_audio_file_opened_as_a_model_is_named_plainly(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    path = tmp_path / "yes.flac"
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(CheckpointError, match="not a PyTorch file") as info:
        load_checkpoint(path)
    assert "refused" not in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_with_nan_or_infinity_are_refused_by_every_command(
    tmp_path: Path, bad: float, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import soundfile as sf

    from speechrnn.cli import main

    model = make_model()
    with torch.no_grad():
        model.state_dict()["rnn.weight_hh_l0"][0, 0] = bad
    path = save_checkpoint(tmp_path / "broken.pt", model=model, feature_config=FeatureConfig(), labels=LABELS)
    with pytest.raises(CheckpointError, match=r"weights hold NaN or infinite values \(rnn\.weight_hh_l0\)") as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    # classify would otherwise write "score": NaN (invalid JSON) and exit 0
    clip = tmp_path / "clip.flac"
    sf.write(clip, np.zeros(16000, dtype=np.float32), 16000)
    assert main(["classify", "--model", str(path), str(clip), "--format", "jsonl"]) != 0
    captured = capsys.readouterr()
    assert "NaN" not in captured.out and "NaN or infinite" in captured.err and str(path) in captured.err
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "NaN or infinite" in err


def _doctored(tmp_path: Path, change: str) -> Path:
    """A model file saved normally, then edited the way a hand-made or damaged file could be."""
    path = save_checkpoint(tmp_path / f"{change}.pt", model=make_model(), feature_config=FeatureConfig(), labels=LABELS)
    payload = torch.load(path, weights_only=True)
    if change == "mels":
        payload["feature_config"]["n_mels"] = 64
    elif change == "hop":
        payload["feature_config"]["hop_seconds"] = 1e-5
    elif change == "rate":
        payload["feature_config"].update(sample_rate=0, fmin=0.0, fmax=0.0)
    elif change == "summary":
        payload["summary"] = [["task", "x"]]
    elif change == "extras":
        payload["extras"] = {"bank": [1.0, 2.0]}
    elif change == "labels":
        payload["labels"] = "abcd"  # as many characters as the model has outputs
    torch.save(payload, path)
    return path


DOCTORED = {
    "mels": "the features have 64 mel bands but the model takes 40",
    "hop": r"bad feature config \(hop_seconds 1e-05 rounds to 0 samples at 16000 Hz",
    "rate": r"bad feature config \(sample_rate must be a whole number of at least 1",
    "summary": "its summary must be a dict, not list",
    "extras": "its extras must map names to tensors",
    "labels": "labels must be a list, not str",
}


@pytest.mark.parametrize("change", sorted(DOCTORED))
def test_inconsistent_files_are_refused_when_loaded(tmp_path: Path, change: str) -> None:
    path = _doctored(tmp_path, change)
    with pytest.raises(CheckpointError, match=DOCTORED[change]) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("change", ["mels", "hop", "summary"])
def test_commands_report_an_inconsistent_file_in_one_line(
    tmp_path: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import soundfile as sf

    from speechrnn.cli import main

    path = _doctored(tmp_path, change)
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros(16000, dtype=np.float32), 16000)
    assert main(["info", str(path), "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().splitlines() == [captured.err.strip()]
    assert captured.err.startswith(f"error: {path}: ")
    assert main(["classify", "--model", str(path), str(clip), "--format", "jsonl"]) != 0
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert f"error: {path}: " in captured.err and "Traceback" not in captured.err


def test_save_refuses_features_the_model_cannot_take(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64 mel bands but the model takes 40"):
        save_checkpoint(tmp_path / "m.pt", model=make_model(), feature_config=FeatureConfig(n_mels=64), labels=LABELS)
    assert not (tmp_path / "m.pt").exists()


def test_a_training_state_given_as_a_model_says_which_file_to_use(tmp_path: Path) -> None:
    """`evaluate runs/x/last.pt`: last.pt is the run's resumable state; the message points at best.pt."""
    path = tmp_path / "last.pt"
    torch.save({"format": "speechrnn-train-state", "epoch": 3}, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert str(caught.value) == f"{path}: a training run's resumable state (last.pt), not a model file: use the " \
        "run's best.pt"


def test_an_onnx_export_given_as_a_model_says_what_it_is(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch")  # an ONNX protobuf starts like this
    with pytest.raises(CheckpointError, match=r"an ONNX export \(speechrnn export\), not a model file: give the .pt"):
        load_checkpoint(path)

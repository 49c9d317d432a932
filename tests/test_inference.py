from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from synthetic import LABELS, WORDS, make_class_clip

from speechrnn.errors import DeviceError
from speechrnn.inference import Classifier, predictions_from_probabilities, resolve_device


def test_classifies_synthetic_clips_from_arrays_and_files(
    synthetic_model: Path, tmp_path: Path, rng: np.random.Generator
) -> None:
    classifier = Classifier.from_file(synthetic_model, device="cpu")
    assert classifier.labels == LABELS
    names = [w for w in WORDS for _ in range(5)]
    clips = [make_class_clip(name, rng) for name in names]
    predictions = classifier.classify(clips)
    accuracy = np.mean([p.label == name for p, name in zip(predictions, names, strict=True)])
    assert accuracy >= 0.9
    for p in predictions:
        assert abs(sum(p.probabilities) - 1) < 1e-4
        assert p.score == max(p.probabilities)
        assert p.top_k(2)[0] == (p.label, p.score)

    path = tmp_path / "rise.wav"
    sf.write(path, clips[0], 16000)
    assert classifier.classify([path])[0].label == predictions[0].label


def test_short_clips_are_padded_long_ones_refused(synthetic_model: Path, rng: np.random.Generator) -> None:
    classifier = Classifier.from_file(synthetic_model, device="cpu")
    clip = make_class_clip("tone", rng)
    short = clip[np.abs(clip).argmax() - 4000: np.abs(clip).argmax() + 4000]
    assert classifier.classify(short)[0].label == "tone"
    with pytest.raises(ValueError, match="longer than the model's"):
        classifier.classify([np.zeros(20000, dtype=np.float32)])


def test_batch_equals_single(synthetic_model: Path, rng: np.random.Generator) -> None:
    classifier = Classifier.from_file(synthetic_model, device="cpu")
    clips = np.stack([make_class_clip(w, rng) for w in WORDS])
    batch = classifier.probabilities(clips)
    single = np.concatenate([classifier.probabilities(c[None]) for c in clips])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(synthetic_model: Path, rng: np.random.Generator) -> None:
    clips = np.stack([make_class_clip(w, rng) for w in WORDS])
    cpu = Classifier.from_file(synthetic_model, device="cpu").probabilities(clips)
    gpu = Classifier.from_file(synthetic_model, device="cuda").probabilities(clips)
    np.testing.assert_allclose(cpu, gpu, atol=1e-3)


def test_prediction_dict_and_top_k() -> None:
    probabilities = np.array([[0.1, 0.6, 0.3]], dtype=np.float32)
    (prediction,) = predictions_from_probabilities(probabilities, ("a", "b", "c"))
    assert prediction.label == "b"
    assert prediction.top_k(2) == [("b", pytest.approx(0.6)), ("c", pytest.approx(0.3))]
    assert prediction.as_dict(top_k=1) == {"label": "b", "score": pytest.approx(0.6),
                                           "top_k": [{"label": "b", "score": pytest.approx(0.6)}]}


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "speech_commands"


@pytest.mark.usefixtures("one_torch_thread")
def test_default_model_hears_a_quiet_voice_and_quiet_noise_is_silence() -> None:
    from speechrnn import default_model_path
    from speechrnn.audio import load_audio

    classifier = Classifier.from_file(default_model_path(), device="cpu")
    commands = [p for label in classifier.labels for p in sorted((FIXTURES / label).glob("*.flac"))]
    assert len(commands) >= 8, "tests/fixtures holds real clips of the commands"
    clips = [load_audio(p, sample_rate=classifier.feature_config.sample_rate) for p in commands]
    truth = [p.parent.name for p in commands]
    # a quiet talker or a low microphone gain: every command clip 35 dB down (peaks near -40 dBFS)
    quiet = [clip * 10 ** (-35 / 20) for clip in clips]
    predicted = [p.label for p in classifier.classify(quiet)]
    assert predicted == truth, f"quiet commands: {predicted} instead of {truth}"
    # and quiet rooms are still silence: white and brown noise at -90 to -60 dBFS RMS, and digital zeros
    rng = np.random.default_rng(5)
    n = classifier.feature_config.clip_samples
    white = rng.standard_normal(n)
    brown = np.cumsum(rng.standard_normal(n))
    brown = (brown - brown.mean()) / brown.std()
    noise = [np.zeros(n)] + [kind * 10 ** (db / 20) for kind in (white, brown) for db in (-90, -75, -60)]
    assert [p.label for p in classifier.classify([x.astype(np.float32) for x in noise])] == ["_silence_"] * 7

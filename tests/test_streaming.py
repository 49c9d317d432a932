"""The streaming recognizer: offline-equal features, chunk-size invariance, detections, state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from synthetic import place_clips

from speechrnn.decisions import DecisionConfig
from speechrnn.features import FeatureConfig, log_mel
from speechrnn.inference import Classifier
from speechrnn.streaming import StreamingRecognizer, StreamStep

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (random-weight) model file: enough for exactness tests."""
    import torch

    from speechrnn.checkpoint import save_checkpoint
    from speechrnn.model import ModelConfig, SpeechRNN

    torch.manual_seed(0)
    model = SpeechRNN(ModelConfig(n_classes=4, hidden_size=24, num_layers=1, conv_channels=16, conv_stride=2))
    path = tmp_path_factory.mktemp("random") / "random.pt"
    labels = ("_silence_", "_unknown_", "a", "b")
    save_checkpoint(path, model=model.eval(), feature_config=FeatureConfig(), labels=labels)
    return path


@pytest.fixture(scope="module")
def random_classifier(random_model: Path) -> Classifier:
    return Classifier.from_file(random_model, device="cpu")


@pytest.fixture(scope="module")
def synthetic_classifier(synthetic_model: Path) -> Classifier:
    return Classifier.from_file(synthetic_model, device="cpu")


@pytest.fixture(scope="module")
def command_stream() -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """Nine seconds with three commands and one unknown sound over quiet noise."""
    rng = np.random.default_rng(7)
    return place_clips([("rise", 0.4), ("tone", 2.5), ("_unknown_", 4.5), ("buzz", 6.6)], seconds=9.0, rng=rng)


def push_in_chunks(recognizer: StreamingRecognizer, audio: np.ndarray, sizes) -> list[StreamStep]:
    steps: list[StreamStep] = []
    pos = 0
    for size in sizes:
        if pos >= audio.shape[0]:
            break
        steps.extend(recognizer.push_steps(audio[pos : pos + size]))
        pos += size
    assert pos >= audio.shape[0]
    return steps


def test_streaming_frames_equal_offline_features(random_classifier: Classifier) -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(2.37 * 16000)) * 0.1).astype(np.float32)
    audio[8000:12000] += np.sin(np.arange(4000) * 0.3).astype(np.float32) * 0.5
    recognizer = StreamingRecognizer(random_classifier, hop_seconds=0.05)
    steps = push_in_chunks(recognizer, audio, [333] * 200)
    streamed = np.concatenate([step.frames for step in steps])
    offline = log_mel(audio, random_classifier.feature_config)
    # every frame completed at a hop boundary was computed, and equals the offline frame
    assert streamed.shape[0] == offline.shape[0] // recognizer.hop_frames * recognizer.hop_frames
    np.testing.assert_allclose(streamed, offline[: streamed.shape[0]], atol=1e-5, rtol=0)


def test_window_is_the_last_clip_of_offline_frames(random_classifier: Classifier) -> None:
    """Once a full clip has arrived, each step scores exactly the offline frames of the last clip."""
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(3 * 16000) * 0.05).astype(np.float32)
    recognizer = StreamingRecognizer(random_classifier, hop_seconds=0.1)
    steps = recognizer.push_steps(audio)
    offline = log_mel(audio, random_classifier.feature_config)
    n = random_classifier.feature_config.n_frames
    late = [(k, s) for k, s in enumerate(steps) if (k + 1) * recognizer.hop_frames >= n]
    assert len(late) >= 15
    for k, step in late[::5]:
        end = (k + 1) * recognizer.hop_frames
        expected = random_classifier.probabilities_from_frames(offline[None, end - n : end])[0]
        np.testing.assert_allclose(step.probabilities, expected, atol=1e-5)


def test_step_times_and_hop(random_classifier: Classifier) -> None:
    cfg = random_classifier.feature_config
    recognizer = StreamingRecognizer(random_classifier, hop_seconds=0.1)
    assert recognizer.hop_frames == 10 and recognizer.hop_seconds == pytest.approx(0.1)
    steps = recognizer.push_steps(np.zeros(16000, dtype=np.float32))
    # step k ends with frame k*10 - 1, whose last sample is (k*10 - 1) * hop + n_fft
    expected = [((k * 10 - 1) * cfg.hop_length + cfg.n_fft) / cfg.sample_rate for k in range(1, len(steps) + 1)]
    assert [s.time for s in steps] == pytest.approx(expected)
    assert steps[-1].time <= 1.0
    assert recognizer.time == pytest.approx(1.0)
    assert StreamingRecognizer(random_classifier, hop_seconds=0.05).hop_frames == 5
    with pytest.raises(ValueError, match="hop_seconds"):
        StreamingRecognizer(random_classifier, hop_seconds=0)


def test_first_step_comes_early_with_silence_padding(random_classifier: Classifier) -> None:
    recognizer = StreamingRecognizer(random_classifier, hop_seconds=0.05)
    steps = recognizer.push_steps(np.zeros(1600, dtype=np.float32))
    assert steps, "no model step in the first 100 ms"
    assert steps[0].time < 0.1
    assert steps[0].probabilities.shape == (4,)
    assert steps[0].probabilities.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("sizes", ["160", "1000", "16000", "random"])
def test_chunk_size_does_not_change_results(synthetic_classifier: Classifier, command_stream, sizes: str) -> None:
    audio, _ = command_stream
    whole = StreamingRecognizer(synthetic_classifier).push_steps(audio)
    if sizes == "random":
        chunks = np.random.default_rng(3).integers(1, 5000, size=audio.shape[0])
    else:
        chunks = [int(sizes)] * (audio.shape[0] // int(sizes) + 1)
    chunked = push_in_chunks(StreamingRecognizer(synthetic_classifier), audio, chunks)
    assert len(chunked) == len(whole) > 0
    assert [s.time for s in chunked] == [s.time for s in whole]
    np.testing.assert_allclose(
        np.stack([s.probabilities for s in chunked]), np.stack([s.probabilities for s in whole]), atol=1e-6
    )
    assert [s.detection for s in chunked] == [s.detection for s in whole]
    assert [s.level_db for s in chunked] == pytest.approx([s.level_db for s in whole], abs=1e-4)
    assert sum(s.detection is not None for s in whole) >= 3


def test_one_sample_chunks_match_whole_push(random_classifier: Classifier) -> None:
    rng = np.random.default_rng(4)
    audio = (rng.standard_normal(4000) * 0.1).astype(np.float32)
    whole = StreamingRecognizer(random_classifier, hop_seconds=0.05).push_steps(audio)
    single = push_in_chunks(StreamingRecognizer(random_classifier, hop_seconds=0.05), audio, [1] * audio.shape[0])
    assert len(single) == len(whole) >= 4
    np.testing.assert_allclose(
        np.stack([s.probabilities for s in single]), np.stack([s.probabilities for s in whole]), atol=1e-6
    )
    np.testing.assert_allclose(
        np.concatenate([s.frames for s in single]), np.concatenate([s.frames for s in whole]), atol=1e-6
    )


def test_push_detects_the_commands_in_order(synthetic_classifier: Classifier, command_stream) -> None:
    audio, spans = command_stream
    recognizer = StreamingRecognizer(synthetic_classifier)
    detections = recognizer.push(audio)
    assert [d.label for d in detections] == ["rise", "tone", "buzz"]
    truth = [span for span in spans if span[0] != "_unknown_"]
    for detection, (label, start, end) in zip(detections, truth, strict=True):
        assert detection.label == label
        assert start < detection.time < end + 1.0, (detection, start, end)
        assert 0.0 < detection.score <= 1.0


def test_word_at_the_very_start_is_detected_before_a_full_clip(synthetic_classifier: Classifier) -> None:
    rng = np.random.default_rng(11)
    audio, _spans = place_clips([("tone", 0.0)], seconds=2.0, rng=rng)
    recognizer = StreamingRecognizer(synthetic_classifier, hop_seconds=0.05)
    detections = recognizer.push(audio)
    assert [d.label for d in detections] == ["tone"]
    # Without left padding the first evaluation would come at 1 s and a decision needs
    # minimum_count evaluations, so nothing could be decided before this:
    unpadded_earliest = 1.0 + (recognizer.decision.minimum_count - 1) * 0.05
    assert detections[0].time < unpadded_earliest, "the left padding should let the first word be found early"


def test_reset_starts_over(synthetic_classifier: Classifier, command_stream) -> None:
    audio, _ = command_stream
    recognizer = StreamingRecognizer(synthetic_classifier)
    first = recognizer.push_steps(audio[:50000])
    recognizer.push(audio[50000:])
    recognizer.reset()
    assert recognizer.time == 0.0
    again = recognizer.push_steps(audio[:50000])
    assert [s.detection for s in again] == [s.detection for s in first]
    np.testing.assert_allclose(
        np.stack([s.probabilities for s in again]), np.stack([s.probabilities for s in first]), atol=1e-6
    )


def test_decision_settings_apply(synthetic_classifier: Classifier, command_stream) -> None:
    audio, _ = command_stream
    recognizer = StreamingRecognizer(synthetic_classifier, decision=DecisionConfig(threshold=1.0))
    assert recognizer.push(audio) == []
    recognizer.reset()
    recognizer.set_decision(replace(recognizer.decision, threshold=0.5))
    assert recognizer.decision.threshold == 0.5
    assert [d.label for d in recognizer.push(audio)] == ["rise", "tone", "buzz"]


def test_step_fields(random_classifier: Classifier) -> None:
    recognizer = StreamingRecognizer(random_classifier, hop_seconds=0.1)
    silent = recognizer.push_steps(np.zeros(3200, dtype=np.float32))
    assert all(s.level_db == -120.0 for s in silent)
    t = np.arange(16000) / 16000
    loud = recognizer.push_steps((0.1 * np.sqrt(2) * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    assert loud[-1].level_db == pytest.approx(-20.0, abs=0.1)
    step = loud[-1]
    assert step.frames.shape == (10, 40)
    assert step.average.shape == step.probabilities.shape == (4,)
    assert step.compute_seconds > 0
    for array in (step.frames, step.probabilities, step.average):
        assert not array.flags.writeable
    assert recognizer.recent_audio().shape == (16000,)


def test_bad_input_shape(random_classifier: Classifier) -> None:
    recognizer = StreamingRecognizer(random_classifier)
    with pytest.raises(ValueError, match="mono"):
        recognizer.push(np.zeros((100, 2), dtype=np.float32))
    assert recognizer.push(np.zeros(0, dtype=np.float32)) == []
    assert recognizer.push_steps(np.zeros((2000, 1), dtype=np.float32))[0].time > 0


def test_hops_that_could_never_detect_are_refused(random_classifier: Classifier) -> None:
    with pytest.raises(ValueError, match=r"a hop of 0\.3 s leaves at most 2 result"):
        StreamingRecognizer(random_classifier, hop_seconds=0.3)
    for bad in (float("inf"), float("nan"), 1e300):
        with pytest.raises(ValueError, match="hop_seconds must be"):
            StreamingRecognizer(random_classifier, hop_seconds=bad)
    recognizer = StreamingRecognizer(random_classifier, hop_seconds=0.1)
    with pytest.raises(ValueError, match="leaves at most 2 result"):
        recognizer.set_decision(DecisionConfig(average_window_seconds=0.1, minimum_count=3))
    recognizer.set_decision(DecisionConfig(average_window_seconds=0.1, minimum_count=2))
    assert recognizer.decision.minimum_count == 2

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechrnn.features import FeatureConfig, LogMel, LogMelNumpy, fit_clip, log_mel, log_mel_librosa

CONFIGS = [
    FeatureConfig(),
    FeatureConfig(n_mels=64, n_fft=400, window_seconds=0.025, hop_seconds=0.01, fmax=8000.0),
    FeatureConfig(n_mels=80, n_fft=1024, window_seconds=0.03, hop_seconds=0.015, fmin=0.0),
    FeatureConfig(sample_rate=8000, n_mels=32, n_fft=256, fmax=4000.0, clip_seconds=0.8),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.sample_rate}-{c.n_fft}-{c.n_mels}")
def test_torch_log_mel_equals_librosa(config: FeatureConfig, rng: np.random.Generator) -> None:
    t = np.arange(config.clip_samples) / config.sample_rate
    speechy = 0.3 * np.sin(2 * np.pi * (200 + 800 * t) * t) + 0.01 * rng.standard_normal(t.size)
    quiet = 1e-4 * rng.standard_normal(t.size)
    silent = np.zeros(t.size)
    for audio in (speechy, quiet, silent):
        audio = audio.astype(np.float32)
        reference = log_mel_librosa(audio, config)
        ours = log_mel(audio, config)
        assert ours.shape == reference.shape == (config.n_frames, config.n_mels)
        np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.sample_rate}-{c.n_fft}-{c.n_mels}")
def test_numpy_log_mel_equals_librosa_and_torch(config: FeatureConfig, rng: np.random.Generator) -> None:
    """The torch-free path (classification without importing torch) gives the same frames."""
    t = np.arange(config.clip_samples) / config.sample_rate
    speechy = 0.3 * np.sin(2 * np.pi * (200 + 800 * t) * t) + 0.01 * rng.standard_normal(t.size)
    batch = np.stack([speechy, 1e-4 * rng.standard_normal(t.size), np.zeros(t.size)]).astype(np.float32)
    log_mel_numpy = LogMelNumpy(config)
    ours = log_mel_numpy(batch)
    assert ours.shape == (3, config.n_frames, config.n_mels) and ours.dtype == np.float32
    for audio, frames in zip(batch, ours, strict=True):
        np.testing.assert_allclose(frames, log_mel_librosa(audio, config), atol=1e-4, rtol=0)
        np.testing.assert_array_equal(log_mel_numpy(audio), frames)  # one clip = its row of a batch
    np.testing.assert_allclose(ours, log_mel(batch, config), atol=1e-4, rtol=0)
    odd = batch[0, : config.n_fft + 3 * config.hop_length - 1]  # 3 whole frames, and a partial one dropped
    assert log_mel_numpy(odd).shape == (3, config.n_mels)
    with pytest.raises(ValueError, match="shorter than one frame"):
        log_mel_numpy(batch[0, : config.n_fft - 1])


def test_batched_equals_one_by_one(rng: np.random.Generator) -> None:
    config = FeatureConfig()
    clips = (0.1 * rng.standard_normal((5, config.clip_samples))).astype(np.float32)
    batched = log_mel(clips, config)
    for clip, frames in zip(clips, batched, strict=True):
        np.testing.assert_allclose(log_mel(clip, config), frames, atol=1e-5)


def test_frames_numpy_matches_stft_path(rng: np.random.Generator) -> None:
    config = FeatureConfig()
    audio = (0.1 * rng.standard_normal(config.clip_samples)).astype(np.float32)
    frames = np.stack([audio[i * config.hop_length: i * config.hop_length + config.n_fft]
                       for i in range(config.n_frames)])
    np.testing.assert_allclose(LogMel(config).frames_numpy(frames), log_mel(audio, config), atol=1e-5)


def test_derived_values() -> None:
    config = FeatureConfig()
    assert (config.win_length, config.hop_length, config.clip_samples) == (400, 160, 16000)
    assert config.n_frames == 1 + (16000 - 512) // 160 == 97
    assert config.frames_for(511) == 0
    assert FeatureConfig.from_dict(config.to_dict()) == config


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="longer than n_fft"):
        FeatureConfig(n_fft=256, window_seconds=0.025)
    with pytest.raises(ValueError, match="Nyquist"):
        FeatureConfig(sample_rate=8000, fmax=7600.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sample_rate": 0, "fmax": 0.0}, "sample_rate must be a whole number of at least 1"),
        ({"sample_rate": -16000}, "sample_rate must be a whole number"),
        ({"sample_rate": 16000.0}, "sample_rate must be a whole number"),
        ({"n_fft": 0}, "n_fft must be a whole number"),
        ({"n_mels": 0}, "n_mels must be a whole number"),
        ({"n_mels": True}, "n_mels must be a whole number"),
        ({"hop_seconds": 1e-5}, "hop_seconds 1e-05 rounds to 0 samples at 16000 Hz"),
        ({"hop_seconds": -0.01}, "hop_seconds -0.01 rounds to -160 samples"),
        ({"hop_seconds": float("nan")}, "hop_seconds must be a finite number"),
        ({"window_seconds": 0.0}, "window_seconds 0.0 rounds to 0 samples"),
        ({"clip_seconds": float("inf")}, "clip_seconds must be a finite number"),
        ({"clip_seconds": 0.01}, "at least one FFT long"),
        ({"fmin": -1.0}, "0 <= fmin < fmax"),
        ({"fmin": 7600.0}, "0 <= fmin < fmax"),
        ({"fmin": 5000.0, "fmax": 4000.0}, "0 <= fmin < fmax"),
        ({"log_floor": 0.0}, "log_floor must be positive"),
        ({"fmax": "7600"}, "fmax must be a finite number"),
    ],
)
def test_configs_that_cannot_compute_frames_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        FeatureConfig(**overrides)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_edge_configs_are_accepted() -> None:
    """The limits themselves are valid: fmin 0, fmax at Nyquist, a window as long as n_fft, a one-FFT clip."""
    config = FeatureConfig(fmin=0.0, fmax=8000.0, n_fft=400, clip_seconds=0.025, hop_seconds=1 / 16000)
    assert (config.win_length, config.hop_length, config.n_frames) == (400, 1, 1)
    assert FeatureConfig(sample_rate=np.int64(8000), n_fft=256, fmax=4000).sample_rate == 8000  # type: ignore[arg-type]


def test_too_short_audio_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than one frame"):
        LogMel(FeatureConfig())(torch.zeros(100))


def test_fit_clip_pads_and_refuses_long() -> None:
    padded = fit_clip(np.ones(10, dtype=np.float32), 16)
    assert padded.shape == (16,) and padded[:10].sum() == 10 and padded[10:].sum() == 0
    with pytest.raises(ValueError, match="longer"):
        fit_clip(np.ones(20), 16)


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(n_mels=64, n_fft=1024, window_seconds=0.03),
                                    FeatureConfig(sample_rate=8000, fmin=0.0, fmax=4000.0, n_fft=256, n_mels=20)])
def test_filterbank_and_window_equal_librosa_and_scipy(config: FeatureConfig) -> None:
    """The numpy filterbank and window (no librosa/scipy import at start-up) are the reference ones."""
    import librosa
    import scipy.signal

    from speechrnn.features import hann_window, mel_filterbank

    reference = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                    fmin=config.fmin, fmax=config.fmax)
    np.testing.assert_array_equal(mel_filterbank(config), reference.astype(np.float32))
    window = scipy.signal.get_window("hann", config.win_length, fftbins=True).astype(np.float32)
    left = (config.n_fft - config.win_length) // 2
    padded = hann_window(config)
    np.testing.assert_array_equal(padded[left : left + config.win_length], window)
    assert padded.shape == (config.n_fft,) and padded[:left].sum() == padded[left + config.win_length :].sum() == 0

"""training.reverb: synthetic room impulse responses and reverberation of clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.reverb import DECAY, impulse_responses, reverberate

SR = 16000


def test_impulse_responses_have_the_asked_decay_and_direct_to_reverberant_ratio() -> None:
    rng = np.random.default_rng(0)
    rt60 = np.array([0.3, 0.8, 0.8])
    drr = np.array([6.0, 0.0, -6.0])
    h = impulse_responses(rt60, drr, sample_rate=SR, rng=rng).double()
    assert h.shape == (3, int(np.ceil(0.8 * SR)))
    assert torch.all(h[:, 0] == 1.0)
    tail_energy = h[:, 1:].square().sum(dim=1)
    np.testing.assert_allclose(10 * np.log10(1.0 / tail_energy.numpy()), drr, atol=1e-6)
    # the shorter room's response ends at its own rt60 (zero-padded after)
    assert torch.all(h[0, int(0.3 * SR) + 1 :] == 0)
    # the envelope falls 60 dB over rt60: compare energy 0.1 s apart inside the 0.8 s tail
    early = h[1, int(0.10 * SR) : int(0.15 * SR)].square().mean()
    late = h[1, int(0.30 * SR) : int(0.35 * SR)].square().mean()
    expected = 10 * np.log10(np.exp(-2 * DECAY * 0.2 / 0.8))
    assert 10 * np.log10(float(late / early)) == pytest.approx(expected, abs=1.5)
    with pytest.raises(ValueError, match="> 0"):
        impulse_responses(np.array([0.0]), np.array([0.0]), sample_rate=SR, rng=rng)
    with pytest.raises(ValueError, match="same length"):
        impulse_responses(np.array([0.5, 0.5]), np.array([0.0]), sample_rate=SR, rng=rng)


def test_reverberate_adds_a_causal_tail_and_keeps_length_and_loudness() -> None:
    rng = np.random.default_rng(1)
    dry = torch.zeros(2, SR)
    dry[:, 4000:5600] = torch.from_numpy(rng.standard_normal((2, 1600)).astype(np.float32)) * 0.1
    h = impulse_responses(np.array([0.6, 0.6]), np.array([0.0, 40.0]), sample_rate=SR, rng=rng)
    wet = reverberate(dry, h)
    assert wet.shape == dry.shape
    torch.testing.assert_close(wet.square().mean(dim=1), dry.square().mean(dim=1), rtol=1e-4, atol=0)
    assert wet[:, :4000].abs().max() < 1e-6  # nothing before the sound: the room only adds what follows
    after = wet[:, 6000:12000].square().mean(dim=1)
    during = wet[:, 4000:5600].square().mean(dim=1)
    assert 10 * torch.log10(after[0] / during[0]) > -25  # DRR 0 dB: a loud tail after the burst ends
    assert 10 * torch.log10(after[1] / during[1]) < -45  # DRR +40 dB: nearly dry
    with pytest.raises(ValueError, match="expected"):
        reverberate(dry, h[:1])


def test_reverberate_is_the_linear_convolution_cut_to_the_clip() -> None:
    # lengths whose sum - 1 is not a fast FFT size: the padded FFT must still give the linear
    # convolution (a circular one would wrap the room's tail onto the clip's start)
    rng = np.random.default_rng(2)
    dry = rng.standard_normal((2, 1201))
    h = rng.standard_normal((2, 997)) * np.exp(-np.arange(997) / 200.0)
    wet = reverberate(torch.from_numpy(dry), torch.from_numpy(h)).numpy()
    for row in range(2):
        full = np.convolve(dry[row], h[row])[: dry.shape[1]]
        expected = full * np.sqrt(np.mean(dry[row] ** 2) / np.mean(full**2))
        np.testing.assert_allclose(wet[row], expected, rtol=1e-9, atol=1e-9)

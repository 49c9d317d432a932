"""Synthetic room reverberation, for augmentation and for measuring how a model copes with rooms.

A room impulse response here is the classic statistical model: a direct path (a unit impulse at
time 0), a short gap, then a reverberant tail of Gaussian noise whose amplitude falls by 60 dB
over the reverberation time ``rt60``. The tail's energy is set by the direct-to-reverberant
ratio ``drr_db``: a talker close to a laptop microphone in an office is about RT60 0.3-0.6 s
at +5..+10 dB; across a living room, 0.6-1.0 s at -5..0 dB. Speech Commands' own clips were
recorded in people's rooms, so they already carry some reverberation; this adds more.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.fft import next_fast_len

#: The reverberant tail starts this long after the direct path (the first reflections' delay).
TAIL_DELAY_SECONDS = 0.003
#: Amplitude decay constant: exp(-DECAY * t / rt60) is 60 dB down at t = rt60.
DECAY = 3.0 * math.log(10.0)


def impulse_responses(
    rt60: np.ndarray, drr_db: np.ndarray, *, sample_rate: int, rng: np.random.Generator
) -> torch.Tensor:
    """Random room impulse responses, one per ``(rt60, drr_db)`` pair.

    Parameters
    ----------
    rt60 : np.ndarray, shape (n,)
        Reverberation times in seconds (> 0).
    drr_db : np.ndarray, shape (n,)
        Direct-to-reverberant energy ratios in dB.
    sample_rate : int
        Hz.
    rng : np.random.Generator

    Returns
    -------
    torch.Tensor, shape (n, length), float32
        ``length`` covers the longest response (to ``rt60``, where the tail is 60 dB down); shorter
        ones are zero-padded. ``[:, 0]`` is the direct path, 1.0.
    """
    rt60 = np.asarray(rt60, dtype=np.float64)
    drr_db = np.asarray(drr_db, dtype=np.float64)
    if rt60.shape != drr_db.shape or rt60.ndim != 1:
        raise ValueError("rt60 and drr_db must be 1-D arrays of the same length")
    if not np.all(rt60 > 0):
        raise ValueError("reverberation times must be > 0 seconds")
    length = max(math.ceil(float(rt60.max(initial=0.01)) * sample_rate), 2)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal((rt60.size, length)) * np.exp(-DECAY * t[None, :] / rt60[:, None])
    tail[:, : max(1, int(TAIL_DELAY_SECONDS * sample_rate))] = 0.0
    tail[t[None, :] > rt60[:, None]] = 0.0  # each response ends where its tail is 60 dB down
    energy = np.maximum(np.square(tail).sum(axis=1), 1e-12)
    tail *= np.sqrt(np.power(10.0, -drr_db / 10.0) / energy)[:, None]
    tail[:, 0] = 1.0
    return torch.from_numpy(tail.astype(np.float32))


def play_in_rooms(
    audio: torch.Tensor,
    rows: np.ndarray,
    rt60: float | np.ndarray,
    drr_db: float | np.ndarray,
    *,
    sample_rate: int,
    rng: np.random.Generator,
) -> None:
    """Reverberate ``audio[rows]`` in place, each row through its own random room response.

    Parameters
    ----------
    audio : torch.Tensor, shape (n, samples)
    rows : np.ndarray of int
        Which clips (none: nothing happens, nothing is drawn).
    rt60, drr_db : float or np.ndarray, shape (len(rows),)
        The rooms (one value for all rows, or one per row), as in :func:`impulse_responses`.
    sample_rate : int
    rng : np.random.Generator
    """
    if rows.size == 0:
        return
    shape = (rows.size,)
    responses = impulse_responses(np.broadcast_to(np.asarray(rt60, dtype=np.float64), shape),
                                  np.broadcast_to(np.asarray(drr_db, dtype=np.float64), shape),
                                  sample_rate=sample_rate, rng=rng)  # fmt: skip
    audio[rows] = reverberate(audio[rows], responses)


def reverberate(audio: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
    """Convolve each clip with its impulse response, keeping the clip's length and loudness.

    Parameters
    ----------
    audio : torch.Tensor, shape (n, samples)
    responses : torch.Tensor, shape (n, length)
        From :func:`impulse_responses`.

    Returns
    -------
    torch.Tensor, shape (n, samples)
        The first ``samples`` of each convolution (the tail past the clip's end is cut, as a
        recording would be), scaled to the dry clip's RMS so that only the room changes, not the level.
    """
    if audio.ndim != 2 or responses.ndim != 2 or audio.shape[0] != responses.shape[0]:
        raise ValueError(f"expected (n, samples) audio and (n, length) responses, got {tuple(audio.shape)} "
                         f"and {tuple(responses.shape)}")  # fmt: skip
    samples = audio.shape[1]
    # any length >= samples + length - 1 gives the linear convolution; a smooth one keeps the FFT fast
    # (16,000 + 16,000 - 1 = 31,999 = 11 x 2,909 took 6x longer than 32,000 = 2^8 x 5^3)
    size = next_fast_len(samples + responses.shape[1] - 1, real=True)
    wet = torch.fft.irfft(torch.fft.rfft(audio, n=size) * torch.fft.rfft(responses, n=size), n=size)[:, :samples]
    dry_rms = audio.square().mean(dim=1, keepdim=True).sqrt()
    wet_rms = wet.square().mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
    return wet * (dry_rms / wet_rms)

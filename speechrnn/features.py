"""Log-mel spectrogram frames: the one feature function every path uses.

Training, file classification and streaming all use :class:`LogMel`: called on whole clips or
batches (batched torch, also through the :func:`log_mel` numpy wrapper), or its
:meth:`LogMel.frames_numpy` on frames already cut from a stream (the same arithmetic, frame by
frame). :class:`LogMelNumpy` is the same arithmetic without torch, for classifying files without
importing it. :func:`log_mel_librosa` is the reference implementation they are tested against.

Frames are *not* centred: frame ``i`` covers samples ``[i * hop_length, i * hop_length + n_fft)``,
so a stream can compute each frame as soon as its last sample arrives and get exactly the frames
the offline function computes on the same samples.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes log-mel frames.

    Parameters
    ----------
    sample_rate : int
        Audio sample rate in Hz.
    clip_seconds : float
        Length of one clip the model classifies, in seconds.
    window_seconds : float
        Analysis window length in seconds (a Hann window of ``win_length`` samples).
    hop_seconds : float
        Step between frames in seconds.
    n_fft : int
        FFT size in samples (>= ``win_length``; the window is zero-padded to it, centred).
    n_mels : int
        Number of mel bands.
    fmin, fmax : float
        Lowest and highest mel band edge in Hz.
    log_floor : float
        Added to the mel power before the natural log, so silence maps to ``log(log_floor)``.
    """

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    n_fft: int = 512
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float = 7600.0
    log_floor: float = 1e-6

    def __post_init__(self) -> None:
        """Refuse a config that could not compute frames (``ValueError``, one line naming the field).

        Sizes are whole numbers of at least 1 (``sample_rate``, ``n_fft``, ``n_mels``, and the
        window and hop once rounded to samples); times, band edges and ``log_floor`` are finite
        numbers; ``0 <= fmin < fmax <= sample_rate / 2``; ``log_floor > 0``; the window fits in
        ``n_fft`` and a clip holds at least one FFT.
        """
        for name in ("sample_rate", "n_fft", "n_mels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        for name in ("clip_seconds", "window_seconds", "hop_seconds", "fmin", "fmax", "log_floor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value!r}")
        for name, seconds, samples in (("window_seconds", self.window_seconds, self.win_length),
                                       ("hop_seconds", self.hop_seconds, self.hop_length)):
            if samples < 1:
                raise ValueError(f"{name} {seconds!r} rounds to {samples} samples at {self.sample_rate} Hz; "
                                 "it must be at least one sample")
        if self.win_length > self.n_fft:
            raise ValueError(f"window ({self.win_length} samples) is longer than n_fft ({self.n_fft})")
        if not 0 <= self.fmin < self.fmax:
            raise ValueError(f"the mel bands need 0 <= fmin < fmax, not fmin {self.fmin} Hz and fmax {self.fmax} Hz")
        if self.fmax > self.sample_rate / 2:
            raise ValueError(f"fmax {self.fmax} Hz is above the Nyquist frequency {self.sample_rate / 2} Hz")
        if not self.log_floor > 0:
            raise ValueError(f"log_floor must be positive, not {self.log_floor!r}")
        if self.clip_samples < self.n_fft:
            raise ValueError(f"a clip must be at least one FFT long ({self.clip_samples} samples, n_fft {self.n_fft})")

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return round(self.window_seconds * self.sample_rate)

    @property
    def hop_length(self) -> int:
        """Hop length in samples."""
        return round(self.hop_seconds * self.sample_rate)

    @property
    def clip_samples(self) -> int:
        """Samples in one clip."""
        return round(self.clip_seconds * self.sample_rate)

    @property
    def n_frames(self) -> int:
        """Frames in one clip."""
        return self.frames_for(self.clip_samples)

    def frames_for(self, n_samples: int) -> int:
        """Number of whole frames in ``n_samples`` samples (0 when shorter than one FFT)."""
        if n_samples < self.n_fft:
            return 0
        return 1 + (n_samples - self.n_fft) // self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints and JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return cls(**data)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    log_region = hz >= min_log_hz
    return np.where(log_region, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    log_region = mels >= min_log_mel
    return np.where(log_region, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """The Slaney-normalised mel filterbank, shape ``(n_mels, n_fft // 2 + 1)``, float32.

    The same arithmetic as ``librosa.filters.mel(htk=False, norm="slaney")`` (equal to it
    bit for bit, tested), in plain numpy so that building a :class:`LogMel` does not import
    librosa (seconds of start-up for ``speechrnn classify``).
    """
    n_mels = config.n_mels
    fft_freqs = np.fft.rfftfreq(n=config.n_fft, d=1.0 / config.sample_rate)
    mels = np.linspace(_hz_to_mel(config.fmin), _hz_to_mel(config.fmax), n_mels + 2)
    mel_f = _mel_to_hz(mels)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, config.n_fft // 2 + 1), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def hann_window(config: FeatureConfig) -> np.ndarray:
    """Periodic Hann window of ``win_length`` zero-padded (centred) to ``n_fft``, float32.

    Equal to ``scipy.signal.get_window("hann", win_length, fftbins=True)`` (computed in numpy,
    so that building a :class:`LogMel` does not import scipy).
    """
    n = config.win_length
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)
    left = (config.n_fft - config.win_length) // 2
    return np.pad(window, (left, config.n_fft - config.win_length - left))


def log_mel_librosa(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Reference log-mel frames computed with librosa.

    Parameters
    ----------
    audio : np.ndarray, shape (n_samples,)
        Mono float audio at ``config.sample_rate``.
    config : FeatureConfig

    Returns
    -------
    np.ndarray, shape (n_frames, n_mels), float32
        ``log(mel_power + log_floor)`` per frame.
    """
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32),
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window="hann",
        center=False,
        power=2.0,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
    )
    return np.log(mel + config.log_floor).T.astype(np.float32)


#: Clips per numpy FFT call in :class:`LogMelNumpy` (larger batches were slower per clip).
NUMPY_CHUNK = 4


class LogMelNumpy:
    """:class:`LogMel`'s arithmetic in numpy alone (float32 FFT), for classification without torch.

    Used by :class:`speechrnn.onnx_classifier.OnnxClassifier`, which classifies files without
    importing PyTorch. Equal to :class:`LogMel` within 1e-4, the tolerance both are tested to
    against :func:`log_mel_librosa`. The window and filterbank are built once.

    Parameters
    ----------
    config : FeatureConfig
    threads : int
        Threads of numpy's BLAS (the filterbank product) while this computes; the process's
        own setting is left alone. One by default: the product is small, and BLAS's default of a
        thread per core made one clip about 3x slower on a busy machine, and two worker processes
        of ``speechrnn classify`` 2-3x slower (2026-11-30).
    """

    def __init__(self, config: FeatureConfig, *, threads: int = 1) -> None:
        self.config = config
        self.threads = max(1, int(threads))
        self.window = hann_window(config)
        self.filterbank_t = np.ascontiguousarray(mel_filterbank(config).T)  # (n_fft // 2 + 1, n_mels)
        self._controller: Any = None  # threadpoolctl's, made on first use (not picklable)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_controller": None}

    def _blas_limit(self) -> Any:
        """A context in which numpy's BLAS uses :attr:`threads` threads (about 25 us to enter and leave)."""
        if self._controller is None:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        return self._controller.limit(limits=self.threads, user_api="blas")

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel frames of a clip or a batch of clips.

        Parameters
        ----------
        audio : np.ndarray, shape (n_samples,) or (batch, n_samples)
            Float audio at ``config.sample_rate``; at least ``n_fft`` samples.

        Returns
        -------
        np.ndarray, shape (n_frames, n_mels) or (batch, n_frames, n_mels), float32
        """
        from numpy.lib.stride_tricks import sliding_window_view

        cfg = self.config
        audio = np.asarray(audio, dtype=np.float32)
        squeeze = audio.ndim == 1
        if squeeze:
            audio = audio[np.newaxis]
        if audio.ndim != 2:
            raise ValueError(f"expected audio of shape (n,) or (batch, n), got {audio.shape}")
        if audio.shape[-1] < cfg.n_fft:
            raise ValueError(f"{audio.shape[-1]} samples is shorter than one frame ({cfg.n_fft})")
        frames = sliding_window_view(audio, cfg.n_fft, axis=-1)[:, :: cfg.hop_length]  # (batch, n_frames, n_fft)
        out = np.empty((*frames.shape[:2], cfg.n_mels), dtype=np.float32)
        for start in range(0, frames.shape[0], NUMPY_CHUNK):
            out[start : start + NUMPY_CHUNK] = self.frames_numpy(frames[start : start + NUMPY_CHUNK])
        return out[0] if squeeze else out

    def frames_numpy(self, frames: np.ndarray) -> np.ndarray:
        """Log-mel of already-cut frames, for streaming (as :meth:`LogMel.frames_numpy`).

        Parameters
        ----------
        frames : np.ndarray, shape (n, n_fft) or (batch, n, n_fft)
            Raw audio frames (not windowed). A batch's clips are computed one matrix each, so a
            clip's frames do not depend on the others in its batch.

        Returns
        -------
        np.ndarray, shape (n, n_mels) or (batch, n, n_mels), float32
        """
        frames = np.asarray(frames, dtype=np.float32)
        spec = np.fft.rfft(frames * self.window, n=self.config.n_fft, axis=-1)  # complex64
        power = np.square(spec.real) + np.square(spec.imag)
        with self._blas_limit():
            mel = power @ self.filterbank_t
        return np.log(mel + np.float32(self.config.log_floor))


#: CPU batches larger than this are computed in chunks of it (cache-friendly)
CPU_CHUNK = 32


class LogMel:
    """Batched torch log-mel on CPU or GPU, equal to :func:`log_mel_librosa` within 1e-4.

    The window and filterbank are built once per (config, device) and reused.

    Parameters
    ----------
    config : FeatureConfig
    device : str or torch.device
    """

    def __init__(self, config: FeatureConfig, *, device: str | torch.device = "cpu") -> None:
        import torch

        self.config = config
        self.device = torch.device(device)
        self.window = torch.from_numpy(hann_window(config)).to(self.device)
        self.filterbank = torch.from_numpy(mel_filterbank(config)).to(self.device)

    def __call__(self, audio: torch.Tensor) -> torch.Tensor:
        """Log-mel frames of a batch of clips.

        Parameters
        ----------
        audio : torch.Tensor, shape (batch, n_samples) or (n_samples,)
            Float audio at ``config.sample_rate``; at least ``n_fft`` samples.

        Returns
        -------
        torch.Tensor, shape (batch, n_frames, n_mels) or (n_frames, n_mels), float32
        """
        import torch

        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        audio = audio.to(self.device, torch.float32)
        cfg = self.config
        if audio.shape[-1] < cfg.n_fft:
            raise ValueError(f"{audio.shape[-1]} samples is shorter than one frame ({cfg.n_fft})")
        if audio.device.type == "cpu" and audio.shape[0] > CPU_CHUNK:
            # smaller batches stay in cache: measured 4x faster per clip at 32 than at 512
            out = torch.cat([self._log_mel(chunk) for chunk in audio.split(CPU_CHUNK)])
        else:
            out = self._log_mel(audio)
        return out[0] if squeeze else out

    def _log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        import torch

        cfg = self.config
        spec = torch.stft(
            audio,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            window=self.window,
            center=False,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (batch, n_fft // 2 + 1, frames)
        mel = torch.matmul(self.filterbank, power)  # (batch, n_mels, frames)
        return torch.log(mel + cfg.log_floor).transpose(1, 2).contiguous()

    def frames_numpy(self, frames: np.ndarray) -> np.ndarray:
        """Log-mel of already-cut frames, for streaming.

        Parameters
        ----------
        frames : np.ndarray, shape (n, n_fft)
            Raw audio frames (not windowed).

        Returns
        -------
        np.ndarray, shape (n, n_mels), float32
        """
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).to(self.device)
            spec = torch.fft.rfft(x * self.window, n=self.config.n_fft)
            power = spec.real.square() + spec.imag.square()
            mel = power @ self.filterbank.T
            return torch.log(mel + self.config.log_floor).cpu().numpy()


def log_mel(audio: np.ndarray | torch.Tensor, config: FeatureConfig) -> np.ndarray:
    """Log-mel frames of one clip or a batch, computed with the torch path on the CPU.

    Convenience wrapper over :class:`LogMel` for code that holds numpy arrays.

    Parameters
    ----------
    audio : array, shape (n_samples,) or (batch, n_samples)
    config : FeatureConfig

    Returns
    -------
    np.ndarray, shape (n_frames, n_mels) or (batch, n_frames, n_mels), float32
    """
    import torch

    with torch.inference_mode():
        tensor = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        return LogMel(config)(tensor).numpy()


def fit_clip(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad a clip at the end to ``n_samples`` (the Speech Commands recipe); longer is an error.

    Parameters
    ----------
    audio : np.ndarray, shape (n,)
    n_samples : int

    Returns
    -------
    np.ndarray, shape (n_samples,), float32
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[0] > n_samples:
        raise ValueError(f"clip of {audio.shape[0]} samples is longer than {n_samples}")
    if audio.shape[0] == n_samples:
        return audio
    return np.pad(audio, (0, n_samples - audio.shape[0]))

"""Load a model file and classify clips: the scoring half of every user-facing path.

:class:`Classifier` turns audio (arrays or files) into class probabilities. It makes no
decisions about streams; :mod:`speechrnn.decisions` does that from the probabilities.

Two backends run the model: PyTorch (every device) and, on the CPU, ONNX Runtime
(:mod:`speechrnn.onnx_backend`; ``onnx`` and ``onnxruntime`` are dependencies), which runs the recurrent
network 2 to 3 times faster at batch 1 on one thread. With ``backend="auto"`` (the default) a CPU
classifier uses ONNX Runtime for batches of up to :data:`ONNX_MAX_BATCH` sequences (live
listening, single clips) and PyTorch for larger batches, where PyTorch is as fast or faster;
the two agree within 1e-4 (checked when the model is loaded). ``backend="int8"`` runs every batch
in ONNX Runtime with the weights quantized to int8 (:func:`speechrnn.onnx_backend.quantize_int8`):
1.3-1.6x faster on one CPU thread, with answers that differ from the float model's on 0.1-0.3%
of clips; an option for slow machines, not the default. Features are always computed by
:class:`~speechrnn.features.LogMel`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from speechrnn.checkpoint import Checkpoint, load_checkpoint
from speechrnn.errors import DeviceError, SpeechRNNError
from speechrnn.features import FeatureConfig, LogMel, fit_clip
from speechrnn.model import ModelConfig
from speechrnn.onnx_backend import ONNX_BACKENDS, choose_backend

if TYPE_CHECKING:
    from speechrnn.onnx_backend import OnnxRunner

SILENCE = "_silence_"
UNKNOWN = "_unknown_"

#: Largest batch the ONNX Runtime backend runs; larger batches go to PyTorch. Measured with
#: benchmarks/bench_latency.py (2-core x86 CPU, one thread, the default LSTM model): ONNX Runtime
#: is about 2x faster at batch 1-3, 1.4x at 8, 1.1x at 32, and 10-20% slower from 64 on.
ONNX_MAX_BATCH = 32
#: Largest |ONNX Runtime - PyTorch| probability accepted when the ONNX backend is loaded.
ONNX_TOLERANCE = 1e-4


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Map ``auto`` | ``cpu`` | ``cuda`` (or ``cuda:N``) to a torch device.

    ``auto`` picks CUDA when it is available. Asking for CUDA where there is none raises
    :class:`DeviceError` with a one-line reason.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested (--device cuda) but no CUDA GPU is available to PyTorch")
        return torch.device(name)
    raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda")


def resolve_backend(name: str, device: torch.device) -> str:
    """Map ``auto`` | ``torch`` | ``onnx`` | ``int8`` to the backend a classifier on ``device`` uses.

    See :func:`speechrnn.onnx_backend.choose_backend` (``auto`` reads ``SPEECHRNN_BACKEND``, then
    picks ``onnx`` on the CPU when it is installed, else ``torch``).

    Raises
    ------
    SpeechRNNError
        An unknown name, or ``onnx``/``int8`` requested for a GPU.
    """
    return choose_backend(name, gpu=device.type != "cpu")


@dataclass(frozen=True)
class Prediction:
    """The scores for one clip.

    Parameters
    ----------
    label : str
        The most probable class.
    score : float
        Its probability, in [0, 1].
    probabilities : tuple of float
        Every class's probability, aligned with ``labels``.
    labels : tuple of str
    """

    label: str
    score: float
    probabilities: tuple[float, ...]
    labels: tuple[str, ...]

    def top_k(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(label, probability)`` pairs, best first."""
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def as_dict(self, *, top_k: int = 3) -> dict[str, Any]:
        """JSON-compatible form: label, score and top-k."""
        return {
            "label": self.label,
            "score": round(self.score, 6),
            "top_k": [{"label": name, "score": round(p, 6)} for name, p in self.top_k(top_k)],
        }


def predictions_from_probabilities(probabilities: np.ndarray, labels: tuple[str, ...]) -> list[Prediction]:
    """One :class:`Prediction` per row of ``probabilities`` (shape ``(batch, n_classes)``)."""
    best = probabilities.argmax(axis=1)
    return [
        Prediction(
            label=labels[int(i)],
            score=float(row[int(i)]),
            probabilities=tuple(float(p) for p in row),
            labels=labels,
        )
        for row, i in zip(probabilities, best, strict=True)
    ]


class Classifier:
    """A loaded model on a device, ready to score clips.

    Parameters
    ----------
    checkpoint : Checkpoint
        From :func:`speechrnn.checkpoint.load_checkpoint`.
    device : {"auto", "cpu", "cuda"}
        Compute device; ``auto`` picks CUDA when available.
    backend : {"auto", "torch", "onnx", "int8"}
        What runs the model (see :func:`resolve_backend`): ``auto`` uses ONNX Runtime on the
        CPU when it is installed, PyTorch otherwise; ``onnx`` insists (an error if it is missing,
        on a GPU, or if its results differ from PyTorch's by more than :data:`ONNX_TOLERANCE`;
        ``auto`` falls back to PyTorch with a warning instead). Loading with ONNX exports the
        model once, cached under ``~/.cache/speechrnn/onnx``. ``int8``: ONNX Runtime with int8
        weights for every batch size (CPU only; an error where it cannot load).
    onnx_max_batch : int
        With the ONNX backend, batches of up to this many sequences run in ONNX Runtime (one
        thread), larger ones in PyTorch (on torch's threads). Ignored by ``int8``, which runs
        every batch, so that its answers do not depend on the batch size.

    Attributes
    ----------
    model : SpeechRNN
        The PyTorch model (always present, whatever the backend).
    log_mel : LogMel
        The feature extractor on :attr:`device`.
    backend : {"torch", "onnx", "int8"}
        The backend in use.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        device: str | torch.device = "auto",
        backend: str = "auto",
        onnx_max_batch: int = ONNX_MAX_BATCH,
    ) -> None:
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self.model = checkpoint.build_model(device=self.device)
        self.log_mel = LogMel(checkpoint.feature_config, device=self.device)
        self.onnx_max_batch = int(onnx_max_batch)
        self._onnx: OnnxRunner | None = None
        choice = resolve_backend(backend, self.device)
        if choice in ONNX_BACKENDS:
            try:
                self._onnx = self._load_onnx(int8=choice == "int8")
            except SpeechRNNError as exc:
                if str(backend).strip().lower() != "auto":
                    raise
                warnings.warn(f"using PyTorch instead of ONNX Runtime: {exc}", RuntimeWarning, stacklevel=2)
        #: "onnx" (ONNX Runtime for batches up to ``onnx_max_batch``, PyTorch above), "int8" (ONNX
        #: Runtime with int8 weights, every batch) or "torch".
        self.backend: str = "torch" if self._onnx is None else choice
        if self.backend == "int8":
            self.onnx_max_batch = sys.maxsize

    def _load_onnx(self, *, int8: bool = False) -> OnnxRunner:
        """Export (or fetch from the cache) the ONNX graph and open it; a fresh export is checked."""
        from speechrnn.onnx_backend import load_runner

        return load_runner(self.checkpoint, self.model, threads=1, tolerance=ONNX_TOLERANCE, int8=int8)

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "auto",
        backend: str = "auto",
    ) -> Classifier:
        """Load a model file (the shipped default model when ``path`` is None).

        See :class:`Classifier` for ``device`` and ``backend``.
        """
        if path is None:
            from speechrnn import default_model_path

            path = default_model_path()
        return cls(load_checkpoint(path), device=device, backend=backend)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names, aligned with the probabilities."""
        return self.checkpoint.labels

    @property
    def feature_config(self) -> FeatureConfig:
        """How this model's features are computed."""
        return self.checkpoint.feature_config

    @property
    def model_config(self) -> ModelConfig:
        """This model's dimensions."""
        return self.checkpoint.model_config

    @property
    def summary(self) -> dict[str, Any]:
        """The training summary stored in the model file."""
        return dict(self.checkpoint.summary)

    @property
    def onnx_bytes(self) -> bytes | None:
        """The checked ONNX export this classifier runs (int8 bytes with ``int8``), or None with ``torch``."""
        return None if self._onnx is None else self._onnx.model_bytes

    def use_threads(self, threads: int) -> int:
        """Set the threads PyTorch computes with (process-wide); returns the previous count."""
        previous = torch.get_num_threads()
        torch.set_num_threads(max(1, int(threads)))
        return previous

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel frames (:class:`~speechrnn.features.LogMel` on :attr:`device`) as a numpy array.

        Parameters
        ----------
        audio : np.ndarray, shape (n_samples,) or (batch, n_samples)
            Float audio at the model's sample rate, at least ``n_fft`` samples.

        Returns
        -------
        np.ndarray, shape (n_frames, n_mels) or (batch, n_frames, n_mels), float32
        """
        with torch.inference_mode():
            tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.device)
            return self.log_mel(tensor).cpu().numpy()

    def probabilities_from_frames(self, frames: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class probabilities for log-mel frames.

        Parameters
        ----------
        frames : array, shape (batch, n_frames, n_mels)
            Full-length sequences (every frame is read).

        Returns
        -------
        np.ndarray, shape (batch, n_classes), float32
        """
        if not isinstance(frames, (torch.Tensor, np.ndarray)):
            frames = np.asarray(frames, dtype=np.float32)
        if self._onnx is not None and 0 < frames.shape[0] <= self.onnx_max_batch:
            if isinstance(frames, torch.Tensor):
                frames = frames.detach().cpu().numpy()
            return self._onnx.run(frames)
        with torch.inference_mode():
            x = torch.as_tensor(frames, dtype=torch.float32).to(self.device)
            return torch.softmax(self.model(x), dim=-1).float().cpu().numpy()

    def probabilities(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class probabilities for a batch of clips of exactly the model's clip length.

        Parameters
        ----------
        clips : array, shape (batch, clip_samples)
            Mono float audio at the model's sample rate.

        Returns
        -------
        np.ndarray, shape (batch, n_classes), float32
        """
        with torch.inference_mode():
            audio = torch.as_tensor(clips, dtype=torch.float32).to(self.device)
            frames = self.log_mel(audio)
            if self._onnx is not None and 0 < frames.shape[0] <= self.onnx_max_batch:
                return self._onnx.run(frames.numpy())
            return torch.softmax(self.model(frames), dim=-1).float().cpu().numpy()

    def classify(self, clips: Sequence[np.ndarray | str | os.PathLike[str]] | np.ndarray) -> list[Prediction]:
        """Classify clips given as arrays or file paths.

        Each clip is at most the model's clip length and is zero-padded at the end to it.
        Longer audio is refused here (``ValueError``): scan it with
        :func:`speechrnn.classify.scan_audio` or the streaming recognizer instead of
        truncating it silently.

        Parameters
        ----------
        clips : sequence of (np.ndarray of shape (n_samples,) or path), or array (batch, n_samples)

        Returns
        -------
        list of Prediction
        """
        from speechrnn.audio import load_audio

        cfg = self.feature_config
        if isinstance(clips, np.ndarray) and clips.ndim == 1:
            clips = [clips]
        batch = []
        for clip in clips:
            if isinstance(clip, (str, os.PathLike)):
                audio = load_audio(clip, sample_rate=cfg.sample_rate)
                name = str(Path(clip))
            else:
                audio = np.asarray(clip, dtype=np.float32)
                name = "clip"
            if audio.shape[0] > cfg.clip_samples:
                raise ValueError(
                    f"{name}: {audio.shape[0] / cfg.sample_rate:.2f} s is longer than the model's "
                    f"{cfg.clip_seconds:g} s clip; scan long audio instead of truncating it"
                )
            batch.append(fit_clip(audio, cfg.clip_samples))
        if not batch:
            return []
        return predictions_from_probabilities(self.probabilities(np.stack(batch)), self.labels)

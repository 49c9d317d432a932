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
1.3-1.6x faster on one CPU thread, with answers that differ from the float model's on up to 0.3%
of clips; an option for slow machines, not the default. Features are always computed by
:class:`~speechrnn.features.LogMel`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from speechrnn.checkpoint import Checkpoint, load_checkpoint
from speechrnn.errors import DeviceError, SpeechRNNError
from speechrnn.features import FeatureConfig, LogMel
from speechrnn.model import ModelConfig
from speechrnn.onnx_backend import ONNX_BACKENDS, choose_backend
from speechrnn.prediction import SILENCE, UNKNOWN, Prediction, clip_batch, predictions_from_probabilities

if TYPE_CHECKING:
    from speechrnn.onnx_backend import OnnxRunner

__all__ = [
    "ONNX_MAX_BATCH",
    "ONNX_TOLERANCE",
    "SILENCE",
    "UNKNOWN",
    "Classifier",
    "Prediction",
    "predictions_from_probabilities",
    "resolve_backend",
    "resolve_device",
]

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
    def parameter_count(self) -> int:
        """The model's weight count."""
        return sum(p.numel() for p in self.model.parameters())

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
        batch = clip_batch(clips, self.feature_config)
        return predictions_from_probabilities(self.probabilities(batch), self.labels) if len(batch) else []

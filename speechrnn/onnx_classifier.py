"""Classify files without importing PyTorch: ONNX Runtime on the cached export of a model file.

Importing torch takes about 3 s, most of the time of a one-file ``speechrnn classify``. The first
time a model file is loaded on the CPU with an ONNX backend, :func:`load_classifier` loads it with
PyTorch (:class:`speechrnn.inference.Classifier`, which exports the model and checks the export
against PyTorch), and stores that checked export under ``<onnx cache>/files``, named by
:func:`speechrnn.onnx_backend.file_cache_key` of the file's bytes. Later loads of the same bytes
need only numpy and ONNX Runtime. Either way it returns an :class:`OnnxClassifier` on that export,
whose labels and feature config come from the export's metadata and whose features are
:class:`speechrnn.features.LogMelNumpy`, so the first run and later ones give the same scores.

Any other case takes the PyTorch path: a GPU or a machine where one may be present
(``--device auto`` is resolved by PyTorch there), ``--backend torch``, ONNX not installed, a model
file not seen before or changed since, or a cache entry ONNX Runtime cannot load or that was not
stored for this file (each stored export carries its file's key in its metadata).

=====================  =====================================  ==============================
attribute              :class:`OnnxClassifier`                :class:`~.inference.Classifier`
=====================  =====================================  ==============================
``labels``             from the export's metadata             from the model file
``feature_config``     from the export's metadata             from the model file
``model_config``       from the export's metadata             from the model file
``summary``            from the export's metadata             from the model file
``parameter_count``    from the export's metadata             counted in the model
``device``             ``"cpu"``                              a ``torch.device``
``backend``            ``"onnx"`` or ``"int8"``               ``"torch"``, ``"onnx"``, ``"int8"``
=====================  =====================================  ==============================

Both have ``features``, ``probabilities``, ``probabilities_from_frames``, ``classify``,
``use_threads`` and ``log_mel.frames_numpy``, which is what :mod:`speechrnn.classify`,
:mod:`speechrnn.streaming`, :mod:`speechrnn.listen` and the desktop app use; the app's model panel
shows the three descriptions above. Only the PyTorch classifier has the model itself (``model``,
``checkpoint``): load with :class:`~speechrnn.inference.Classifier` for those.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from speechrnn.features import FeatureConfig, LogMelNumpy
from speechrnn.model_config import ModelConfig
from speechrnn.onnx_backend import (
    FILE_KEY_ENTRY,
    ONNX_BACKENDS,
    OnnxError,
    OnnxRunner,
    cached_file_export,
    choose_backend,
    file_cache_key,
    store_file_export,
    with_metadata,
)
from speechrnn.prediction import Prediction, clip_batch, predictions_from_probabilities

if TYPE_CHECKING:
    from speechrnn.inference import Classifier

__all__ = ["OnnxClassifier", "gpu_possible", "load_classifier"]

T = TypeVar("T")

#: Device files present when a GPU driver PyTorch could use is loaded (NVIDIA, AMD ROCm, WSL).
GPU_DEVICE_FILES: tuple[str, ...] = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def gpu_possible() -> bool:
    """False only where PyTorch certainly sees no GPU (checked without importing it).

    Linux without any of :data:`GPU_DEVICE_FILES`, or macOS (no CUDA builds). Elsewhere only
    PyTorch can tell, so True.
    """
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        return any(os.path.exists(name) for name in GPU_DEVICE_FILES)
    return True


class OnnxClassifier:
    """A model from its checked ONNX export, scoring clips with numpy features and ONNX Runtime.

    Made by :func:`load_classifier`; CPU only, every batch size in ONNX Runtime.

    Parameters
    ----------
    model_bytes : bytes
        A checked export (float or int8) with speechrnn's metadata (labels, feature_config).
    backend : {"onnx", "int8"}
        Which export it is.
    threads : int
        ONNX Runtime's intra-op threads, and numpy's BLAS threads while features are computed.

    Raises
    ------
    OnnxError
        ONNX Runtime cannot load the bytes, or their metadata is not speechrnn's.
    """

    device = "cpu"

    def __init__(self, model_bytes: bytes, *, backend: str = "onnx", threads: int = 1) -> None:
        if backend not in ONNX_BACKENDS:
            raise ValueError(f"backend must be one of {ONNX_BACKENDS}, not {backend!r}")
        self.backend: str = backend
        self._runner = OnnxRunner(model_bytes, threads=threads, per_sequence=backend == "int8")
        meta = self._runner.metadata()
        try:
            labels = json.loads(meta["labels"])
            self.feature_config: FeatureConfig = FeatureConfig.from_dict(json.loads(meta["feature_config"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise OnnxError(f"not a speechrnn export (metadata: {exc})") from None
        if not isinstance(labels, list) or not labels:
            raise OnnxError("not a speechrnn export (no labels in its metadata)")
        self.labels: tuple[str, ...] = tuple(str(label) for label in labels)
        #: The model's dimensions (None in an export without them).
        self.model_config: ModelConfig | None = _decoded(meta, "model_config", ModelConfig.from_dict)
        #: The model file's training summary ({} in an export made before it was stored there).
        self.summary: dict[str, Any] = _decoded(meta, "summary", dict) or {}
        #: The model's weight count (None in an export made before it was stored there).
        self.parameter_count: int | None = _decoded(meta, "parameters", int)
        #: The :func:`~speechrnn.onnx_backend.file_cache_key` of the model file it was stored for, if any.
        self.file_key: str | None = meta.get(FILE_KEY_ENTRY)
        #: The feature extractor (numpy); its ``frames_numpy`` serves :class:`~speechrnn.streaming.StreamingRecognizer`.
        self.log_mel = LogMelNumpy(self.feature_config, threads=threads)

    @property
    def onnx_bytes(self) -> bytes:
        """The export this classifier runs."""
        return self._runner.model_bytes

    def use_threads(self, threads: int) -> int:
        """Set the threads of ONNX Runtime and of the features' BLAS product; returns the previous count.

        Unlike :func:`torch.set_num_threads`, nothing process-wide changes.
        """
        previous = self._runner.threads
        threads = max(1, int(threads))
        if threads != previous:
            self._runner = OnnxRunner(self._runner.model_bytes, threads=threads,
                                      per_sequence=self._runner.per_sequence)
        self.log_mel.threads = threads
        return previous

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel frames, shape ``(n_frames, n_mels)`` or ``(batch, n_frames, n_mels)``, float32.

        See :class:`speechrnn.features.LogMelNumpy`.
        """
        return self.log_mel(audio)

    def probabilities_from_frames(self, frames: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(batch, n_classes)``, for frames ``(batch, n_frames, n_mels)``."""
        return self._runner.run(np.asarray(frames, dtype=np.float32))

    def probabilities(self, clips: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(batch, n_classes)``, for clips ``(batch, clip_samples)``."""
        return self.probabilities_from_frames(self.features(np.asarray(clips, dtype=np.float32)))

    def classify(self, clips: Sequence[np.ndarray | str | os.PathLike[str]] | np.ndarray) -> list[Prediction]:
        """Classify clips given as arrays or file paths, as :meth:`speechrnn.inference.Classifier.classify`.

        Parameters
        ----------
        clips : sequence of (np.ndarray of shape (n_samples,) or path), or array (batch, n_samples)
            Each at most the model's clip length (zero-padded at the end to it).

        Returns
        -------
        list of Prediction
        """
        batch = clip_batch(clips, self.feature_config)
        return predictions_from_probabilities(self.probabilities(batch), self.labels) if len(batch) else []


def _decoded(meta: dict[str, str], key: str, make: Callable[[Any], T]) -> T | None:
    """``make(json.loads(meta[key]))``, or None when the entry is missing or does not decode."""
    try:
        return make(json.loads(meta[key]))
    except (KeyError, TypeError, ValueError):
        return None


def load_classifier(
    path: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    backend: str = "auto",
) -> Classifier | OnnxClassifier:
    """Load a model file for classification, without PyTorch when its checked export is cached.

    Parameters
    ----------
    path : path-like, optional
        The model file (default: the shipped default model).
    device : {"auto", "cpu", "cuda"}
    backend : {"auto", "torch", "onnx", "int8"}
        As for :class:`speechrnn.inference.Classifier`.

    Returns
    -------
    OnnxClassifier or Classifier
        An :class:`OnnxClassifier` when the model runs on the CPU with an ONNX backend: from the
        cached export without importing PyTorch, or (the first time) from the export PyTorch
        has just made, checked and cached, so that the first and later runs compute the same
        scores. Otherwise (``--backend torch``, a GPU or a machine that may have one, ONNX not
        installed) a :class:`~speechrnn.inference.Classifier`.

    Raises
    ------
    speechrnn.errors.CheckpointError, speechrnn.errors.DeviceError, speechrnn.errors.SpeechRNNError
        As :meth:`speechrnn.inference.Classifier.from_file`.
    """
    if path is None:
        from speechrnn import default_model_path

        path = default_model_path()
    name = str(device).strip().lower()
    choice = None
    if name == "cpu" or (name == "auto" and not gpu_possible()):
        choice = choose_backend(backend, gpu=False)
    key = None
    if choice in ONNX_BACKENDS:
        try:
            key = file_cache_key(path, int8=choice == "int8")
        except OSError:
            key = None  # the PyTorch path reports it
        cached = None if key is None else cached_file_export(key)
        if cached is not None:
            try:
                lite = OnnxClassifier(cached, backend=choice)
            except OnnxError:
                lite = None  # an unreadable entry: load with PyTorch, which stores a fresh one
            if lite is not None and lite.file_key == key:  # not another model's export under this name
                return lite
    from speechrnn.inference import Classifier

    classifier = Classifier.from_file(path, device=device, backend=backend)
    exported = classifier.onnx_bytes
    if choice not in ONNX_BACKENDS or exported is None or classifier.backend != choice:
        return classifier  # PyTorch runs it (asked for, a GPU, or no ONNX Runtime)
    if key is not None:
        try:
            exported = with_metadata(exported, {FILE_KEY_ENTRY: key})
        except OnnxError:
            pass  # no onnx package to write the key: an entry without it would never be used, so none is stored
        else:
            if _unchanged(path, key, choice):
                store_file_export(key, exported)
    # the checked export, as later runs will load it: every run computes the same scores
    return OnnxClassifier(exported, backend=choice)


def _unchanged(path: str | os.PathLike[str], key: str, backend: str) -> bool:
    """Whether the file still has the key it had before loading (it was not replaced meanwhile)."""
    try:
        return file_cache_key(path, int8=backend == "int8") == key
    except OSError:
        return False

"""Self-describing model files.

A model file holds plain data only: the weights, the feature config, the model config, the labels,
a training summary (data, metrics) and a format version. Weight matrices may be stored as float16
(half the file, as openai/whisper ships its checkpoints); they are computed in float32 after
loading. It is written atomically (temporary file, fsync, rename) and read with
``torch.load(weights_only=True)``, so a file crafted to run code when unpickled is refused before
anything in it runs.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from speechrnn.errors import CheckpointError
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, SpeechRNN

if TYPE_CHECKING:
    from collections.abc import Mapping

FORMAT = "speechrnn-model"
#: The ``format`` of a training run's resumable state (``OUT/last.pt``, written by ``training.train``).
TRAINING_STATE_FORMAT = "speechrnn-train-state"
FORMAT_VERSION = 1
WEIGHT_DTYPES: tuple[str, ...] = ("float32", "float16")


@dataclass(frozen=True)
class Checkpoint:
    """The contents of a model file.

    Parameters
    ----------
    state_dict : dict of str to torch.Tensor
        Weights of :class:`~speechrnn.model.SpeechRNN`.
    feature_config : FeatureConfig
    model_config : ModelConfig
    labels : tuple of str
        Class names, index-aligned with the model's outputs.
    summary : dict
        Training summary: data, recipe, metrics (JSON-compatible values).
    extras : dict of str to torch.Tensor
        Optional tensors that travel with the model (e.g. a rehearsal bank for fine-tuning).
    weights_dtype : {"float32", "float16"}
        How the weight matrices are stored in the file; ``state_dict`` is always float32.
    """

    state_dict: Mapping[str, torch.Tensor]
    feature_config: FeatureConfig
    model_config: ModelConfig
    labels: tuple[str, ...]
    summary: Mapping[str, Any] = field(default_factory=dict)
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)
    weights_dtype: str = "float32"

    def build_model(self, *, device: str | torch.device = "cpu") -> SpeechRNN:
        """A :class:`SpeechRNN` with these weights, in eval mode, on ``device``."""
        model = SpeechRNN(self.model_config)
        model.load_state_dict(dict(self.state_dict))
        return model.to(device).eval()


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A reader sees either the old file or the new one, never a partial write, even if the
    process is killed mid-save.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, mapping every failure to :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "file not found")
    if path.is_dir():
        raise CheckpointError(path, "is a directory, not a model file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "empty file (0 bytes)")
    with path.open("rb") as handle:
        first = handle.read(1)
    if first != b"\x80" and not zipfile.is_zipfile(path):  # neither a torch archive nor a pickle
        if path.suffix.lower() == ".onnx":
            raise CheckpointError(path, "an ONNX export (speechrnn export), not a model file: give the .pt model "
                                        "it was exported from")
        raise CheckpointError(path, "not a readable model file (not a PyTorch file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise CheckpointError(
                path, "refused: the file holds code or objects, not plain model data (nothing in it was run)"
            ) from None
        raise CheckpointError(path, f"corrupt model file ({detail[:120]})") from None
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"not a readable model file ({detail[:120]})") from None


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: SpeechRNN,
    feature_config: FeatureConfig,
    labels: tuple[str, ...] | list[str],
    summary: Mapping[str, Any] | None = None,
    extras: Mapping[str, torch.Tensor] | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Write a model file atomically.

    Parameters
    ----------
    path : path-like
    model : SpeechRNN
        Its ``config`` is saved with its weights (moved to the CPU).
    feature_config : FeatureConfig
    labels : sequence of str
        One per model output.
    summary : mapping, optional
        JSON-compatible training summary (data, recipe, metrics).
    extras : mapping of str to torch.Tensor, optional
        Extra tensors stored beside the weights (see :class:`Checkpoint`).
    weights_dtype : {"float32", "float16"}
        ``"float16"`` stores every weight matrix (tensors of 2 or more dimensions) in half
        precision, halving the file; vectors (biases, normalisation statistics) stay float32.

    Returns
    -------
    pathlib.Path
    """
    labels = tuple(labels)
    if len(labels) != model.config.n_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model.config.n_classes} outputs")
    if weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype must be one of {', '.join(WEIGHT_DTYPES)}, not {weights_dtype!r}")
    if feature_config.n_mels != model.config.n_mels:
        raise ValueError(
            f"the features have {feature_config.n_mels} mel bands but the model takes {model.config.n_mels}"
        )

    def stored(value: torch.Tensor) -> torch.Tensor:
        value = value.detach().cpu().clone()
        if weights_dtype == "float16" and value.is_floating_point() and value.dim() >= 2:
            return value.half()
        return value

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_config": feature_config.to_dict(),
        "model_config": model.config.to_dict(),
        "labels": list(labels),
        "summary": dict(summary or {}),
        "weights_dtype": weights_dtype,
        "state_dict": {k: stored(v) for k, v in model.state_dict().items()},
        "extras": {k: v.detach().cpu().clone() for k, v in (extras or {}).items()},
    }
    atomic_torch_save(payload, path)
    return Path(path)


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (its type name when empty), at most ``limit`` characters."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a model file without executing anything in it.

    Raises
    ------
    CheckpointError
        Missing, empty, unsafe (pickled code), corrupt, not a speechrnn model file of a known
        version, a feature config that cannot compute frames, features whose mel-band count is
        not the model's, a summary that is not a dict, extras that are not named tensors, or
        weights holding NaN or infinite values (a model that would score nothing). The message
        is one line naming the file.
    """
    payload = safe_torch_load(path)
    if isinstance(payload, dict) and payload.get("format") == TRAINING_STATE_FORMAT:
        raise CheckpointError(path, "a training run's resumable state (last.pt), not a model file: "
                                    "use the run's best.pt")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, "not a speechrnn model file")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(path, f"model file format version {version} is not supported (need {FORMAT_VERSION})")
    try:
        feature_config = FeatureConfig.from_dict(payload["feature_config"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(path, f"bad feature config ({_one_line(exc)})") from None
    try:
        model_config = ModelConfig.from_dict(payload["model_config"])
        raw_labels = payload["labels"]
        if not isinstance(raw_labels, (list, tuple)):  # a string would give one label per character
            raise TypeError(f"labels must be a list, not {type(raw_labels).__name__}")
        labels = tuple(str(label) for label in raw_labels)
        state_dict = {
            str(k): v.float() if v.dtype == torch.float16 else v for k, v in dict(payload["state_dict"]).items()
        }
        weights_dtype = str(payload.get("weights_dtype", "float32"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(path, f"model file is incomplete or inconsistent ({_one_line(exc)})") from None
    if len(labels) != model_config.n_classes:
        raise CheckpointError(path, f"{len(labels)} labels but the model has {model_config.n_classes} outputs")
    if feature_config.n_mels != model_config.n_mels:
        raise CheckpointError(
            path, f"the features have {feature_config.n_mels} mel bands but the model takes {model_config.n_mels}"
        )
    summary = payload.get("summary")
    summary = {} if summary is None else summary
    if not isinstance(summary, dict):
        raise CheckpointError(path, f"its summary must be a dict, not {type(summary).__name__}")
    extras = payload.get("extras")
    extras = {} if extras is None else extras
    if not isinstance(extras, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in extras.items()
    ):
        raise CheckpointError(path, "its extras must map names to tensors")
    checkpoint = Checkpoint(
        state_dict=state_dict,
        feature_config=feature_config,
        model_config=model_config,
        labels=labels,
        summary=summary,
        extras=extras,
        weights_dtype=weights_dtype,
    )
    try:
        SpeechRNN(model_config).load_state_dict(dict(state_dict))
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(path, f"weights do not match the model config ({first[:120]})") from None
    broken = [name for name, value in state_dict.items() if value.is_floating_point() and not value.isfinite().all()]
    if broken:
        more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
        raise CheckpointError(path, f"its weights hold NaN or infinite values ({broken[0]}{more}): not a usable model")
    return checkpoint

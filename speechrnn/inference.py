"""Load a model file and classify clips: the scoring half of every user-facing path.

:class:`Classifier` turns audio (arrays or files) into class probabilities. It makes no
decisions about streams; :mod:`speechrnn.decisions` does that from the probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechrnn.checkpoint import Checkpoint, load_checkpoint
from speechrnn.errors import DeviceError
from speechrnn.features import FeatureConfig, LogMel, fit_clip
from speechrnn.model import ModelConfig

SILENCE = "_silence_"
UNKNOWN = "_unknown_"


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
    """

    def __init__(self, checkpoint: Checkpoint, *, device: str | torch.device = "auto") -> None:
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self.model = checkpoint.build_model(device=self.device)
        self.log_mel = LogMel(checkpoint.feature_config, device=self.device)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str] | None = None, *, device: str | torch.device = "auto"
    ) -> Classifier:
        """Load a model file (the shipped default model when ``path`` is None)."""
        if path is None:
            from speechrnn import default_model_path

            path = default_model_path()
        return cls(load_checkpoint(path), device=device)

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

    def probabilities_from_frames(self, frames: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class probabilities for log-mel frames.

        Parameters
        ----------
        frames : array, shape (batch, n_frames, n_mels)

        Returns
        -------
        np.ndarray, shape (batch, n_classes), float32
        """
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
            return torch.softmax(self.model(self.log_mel(audio)), dim=-1).float().cpu().numpy()

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

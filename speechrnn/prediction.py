"""Predictions for whole clips: what both classifiers return, and the clips they are made from.

Shared by :class:`speechrnn.inference.Classifier` (PyTorch) and
:class:`speechrnn.onnx_classifier.OnnxClassifier` (no PyTorch); this module imports no torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechrnn.features import fit_clip

if TYPE_CHECKING:
    from speechrnn.features import FeatureConfig

__all__ = ["SILENCE", "UNKNOWN", "Prediction", "clip_batch", "predictions_from_probabilities"]

SILENCE = "_silence_"
UNKNOWN = "_unknown_"


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


def clip_batch(clips: Sequence[np.ndarray | str | os.PathLike[str]] | np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Clips given as arrays or file paths, each zero-padded at the end to the clip length.

    Longer audio is refused (``ValueError``): scan it with :func:`speechrnn.classify.scan_audio`
    or the streaming recognizer instead of truncating it silently.

    Parameters
    ----------
    clips : sequence of (np.ndarray of shape (n_samples,) or path), or array (batch, n_samples)
        Audio at ``config.sample_rate`` (files are decoded and resampled to it).
    config : FeatureConfig

    Returns
    -------
    np.ndarray, shape (n_clips, clip_samples), float32
    """
    from speechrnn.audio import load_audio

    if isinstance(clips, np.ndarray) and clips.ndim == 1:
        clips = [clips]
    batch = []
    for clip in clips:
        if isinstance(clip, (str, os.PathLike)):
            audio = load_audio(clip, sample_rate=config.sample_rate)
            name = str(Path(clip))
        else:
            audio = np.asarray(clip, dtype=np.float32)
            name = "clip"
        if audio.shape[0] > config.clip_samples:
            raise ValueError(
                f"{name}: {audio.shape[0] / config.sample_rate:.2f} s is longer than the model's "
                f"{config.clip_seconds:g} s clip; scan long audio instead of truncating it"
            )
        batch.append(fit_clip(audio, config.clip_samples))
    return np.stack(batch) if batch else np.zeros((0, config.clip_samples), dtype=np.float32)

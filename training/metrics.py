"""Classification metrics and their plots: accuracy, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``, shape ``(n_classes, n_classes)``, int64."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def classification_report(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix, JSON-compatible.

    Parameters
    ----------
    truth, predicted : np.ndarray of int, shape (n,)
        Class indices.
    labels : sequence of str
        Class names by index.

    Returns
    -------
    dict
        ``accuracy``, ``examples``, ``macro_f1``, ``per_class`` ``{label: {precision, recall, f1,
        support}}`` and ``confusion`` (rows: true class, columns: predicted class).
    """
    matrix = confusion_matrix(truth, predicted, len(labels))
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    hits = np.diag(matrix)
    per_class = {}
    f1s = []
    for i, label in enumerate(labels):
        precision = hits[i] / predicted_count[i] if predicted_count[i] else 0.0
        recall = hits[i] / support[i] if support[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support": int(support[i]),
        }
        if support[i]:
            f1s.append(f1)
    total = int(matrix.sum())
    return {
        "accuracy": round(float(hits.sum() / total), 4) if total else 0.0,
        "examples": total,
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "per_class": per_class,
        "labels": list(labels),
        "confusion": matrix.tolist(),
    }


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: str | Path, *, title: str = "") -> Path:
    """Write a confusion-matrix PNG (rows normalised to recall; counts written in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    size = max(5.0, 0.45 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black",
                    )
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write the training-curve PNG (loss and accuracy per epoch, training and validation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [float(r["train_loss"]) for r in rows], label="training")
    left.plot(epochs, [float(r["val_loss"]) for r in rows], label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot(epochs, [float(r["train_accuracy"]) for r in rows], label="training")
    right.plot(epochs, [float(r["val_accuracy"]) for r in rows], label="validation")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path

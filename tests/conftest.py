"""Shared fixtures: a small model really trained on learnable synthetic classes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import LABELS, make_class_clip


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the test session's caches (ONNX exports, generated sets) out of the user's ~/.cache."""
    if "SPEECHRNN_CACHE" not in os.environ:
        os.environ["SPEECHRNN_CACHE"] = str(tmp_path_factory.mktemp("cache"))


def train_synthetic_model(path: Path, *, seed: int = 0, clips_per_class: int = 120, epochs: int = 12) -> Path:
    """Train a small GRU on the synthetic classes and save it as a normal model file.

    Parameters
    ----------
    path : Path
        Where to write the model file.
    seed : int
    clips_per_class : int
    epochs : int

    Returns
    -------
    Path
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is faster and immune to a busy machine
    try:
        return _train(path, seed=seed, clips_per_class=clips_per_class, epochs=epochs)
    finally:
        torch.set_num_threads(threads)


def _train(path: Path, *, seed: int, clips_per_class: int, epochs: int) -> Path:
    import torch

    from speechrnn.checkpoint import save_checkpoint
    from speechrnn.features import FeatureConfig, LogMel
    from speechrnn.model import ModelConfig, SpeechRNN

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    features = FeatureConfig()
    log_mel = LogMel(features)
    clips = np.stack([make_class_clip(label, rng) for label in LABELS for _ in range(clips_per_class)])
    targets = torch.arange(len(LABELS)).repeat_interleave(clips_per_class)
    with torch.no_grad():
        frames = log_mel(torch.from_numpy(clips))
    config = ModelConfig(n_mels=features.n_mels, n_classes=len(LABELS), cell="gru", hidden_size=48,
                         num_layers=1, conv_channels=32, conv_stride=2, pooling="attention", dropout=0.0)
    model = SpeechRNN(config)
    model.set_normalization(frames.mean(dim=(0, 1)), frames.std(dim=(0, 1)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(targets))
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            loss = torch.nn.functional.cross_entropy(model(frames[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    model.eval()
    test = np.stack([make_class_clip(label, rng) for label in LABELS for _ in range(20)])
    with torch.no_grad():
        predicted = model(log_mel(torch.from_numpy(test))).argmax(dim=1)
    accuracy = float((predicted == torch.arange(len(LABELS)).repeat_interleave(20)).float().mean())
    save_checkpoint(path, model=model, feature_config=features, labels=LABELS,
                    summary={"task": "synthetic", "metrics": {"test_accuracy": accuracy}})
    return path


@pytest.fixture
def repo_env() -> dict[str, str]:
    """Environment for a subprocess that runs this checkout's code: the repository first on PYTHONPATH."""
    repo = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)}


@pytest.fixture(scope="module")
def keep_torch_threads() -> Iterator[None]:
    """Put torch's intra-op thread count back after a module whose commands set it (``listen``, benchmarks)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for a module (``pytestmark = pytest.mark.usefixtures(...)``).

    Tiny models and one model call per streaming hop: on a busy 2-core machine one thread is much
    faster than several, as in ``speechrnn listen`` and ``classify``'s workers.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a model file trained on the synthetic classes of ``tests/synthetic.py``.

    Labels: ``("_silence_", "_unknown_", "rise", "fall", "tone", "buzz")``; it recognises
    fresh synthetic clips with more than 90% accuracy (asserted here).
    """
    path = train_synthetic_model(tmp_path_factory.mktemp("model") / "synthetic.pt")
    from speechrnn.checkpoint import load_checkpoint

    accuracy = load_checkpoint(path).summary["metrics"]["test_accuracy"]
    assert accuracy >= 0.9, f"synthetic model only reached {accuracy:.1%}"
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(1234)


@pytest.fixture
def deny_listing(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a folder fail to list as one without read permission does (tests may run as root, where
    chmod does not bite): ``deny_listing(folder)``."""
    denied: set[str] = set()
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) in denied:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return lambda folder: denied.add(os.fspath(folder))

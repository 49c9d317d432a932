"""The benchmark scripts time what they say they time (run on tiny inputs, no timing asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from speechrnn.checkpoint import save_checkpoint
from speechrnn.features import FeatureConfig
from speechrnn.model import ModelConfig, SpeechRNN

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench_features(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_features

    yield bench_features
    sys.modules.pop("bench_features", None)


def test_bench_features_uses_the_model_files_feature_settings(bench_features, tmp_path: Path) -> None:
    features = FeatureConfig(n_mels=32, sample_rate=8000, n_fft=256, fmax=3800.0)
    model = SpeechRNN(ModelConfig(n_mels=32, n_classes=3, cell="gru", hidden_size=8, num_layers=1))
    model_path = tmp_path / "m.pt"
    save_checkpoint(model_path, model=model, feature_config=features, labels=("_silence_", "_unknown_", "a"))
    out = tmp_path / "features.json"
    threads = torch.get_num_threads()
    code = bench_features.main(["--model", str(model_path), "--clips", "4", "--librosa-clips", "2",
                                "--rounds", "1", "--threads", "1", "--out", str(out)])
    torch.set_num_threads(threads)
    assert code == 0
    report = json.loads(out.read_text())
    assert FeatureConfig.from_dict(report["feature_config"]) == features
    assert report["model"] == str(model_path)
    # the timed paths compute the same features as librosa with those settings
    assert max(report["agreement"].values()) < 1e-3

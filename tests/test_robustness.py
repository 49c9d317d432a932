"""Tests for training.robustness: the OOV and silence evaluation sets and the report."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from synthetic import make_class_clip

from speechrnn.checkpoint import save_checkpoint
from speechrnn.features import FeatureConfig
from speechrnn.inference import Classifier
from speechrnn.model import ModelConfig, SpeechRNN
from training.robustness import (
    HELD_OUT_REAL_WORDS,
    NOISE_HOLDOUT_FRACTION,
    build_oov_set,
    build_silence_set,
    evaluate_robustness,
    level_bucket,
    main,
    rms_dbfs,
)
from training.synth import EVAL_PITCHES, EVAL_SPEEDS, EVAL_VOICES, NEGATIVE_WORDS, OOV_EVAL_WORDS, TRAIN_VOICES

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
RATE = 16000


def _white(rng, level_db, n=RATE):
    x = rng.standard_normal(n)
    return (x * 10 ** (level_db / 20) / np.sqrt(np.mean(x**2))).astype(np.float32)


def _write(path: Path, audio, subtype="FLOAT"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, RATE, subtype=subtype)
    return path


def _energy_model(path: Path) -> Path:
    """A hand-wired model that sorts white noise by loudness: a model whose answers we know.

    The one-unit tanh RNN averages ``tanh(0.1 * (mean log-mel + 9))`` over frames (mean log-mel is
    about -13.8 for silence and rises ~0.23 per dB above -60 dBFS): negative below about -45 dBFS
    (-> ``_silence_``), above 0.3 from about -31 dBFS (-> ``yes``), ``_unknown_`` between.
    """
    config = ModelConfig(n_mels=40, n_classes=3, cell="rnn", hidden_size=1, num_layers=1, dropout=0.0,
                         pooling="mean", head_size=2)  # fmt: skip
    model = SpeechRNN(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.rnn.weight_ih_l0.fill_(0.1 / 40)
        model.rnn.bias_ih_l0.fill_(0.9)
        model.head[1].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model.head[4].weight.copy_(torch.tensor([[0.0, 10.0], [10.0, 0.0], [20.0, 0.0]]))
        model.head[4].bias.copy_(torch.tensor([0.0, 0.0, -3.0]))
    return save_checkpoint(path, model=model, feature_config=FeatureConfig(), labels=("_silence_", "_unknown_", "yes"))


@pytest.fixture
def energy_model(tmp_path) -> Path:
    return _energy_model(tmp_path / "energy.pt")


def _fake_data_root(root: Path, rng) -> Path:
    """A tiny Speech Commands tree: held-out words, a command, a digit, one background recording."""
    for word, n in (("bed", 2), ("cat", 1), ("yes", 2), ("four", 1)):
        for i in range(n):
            _write(root / word / f"spk{i}_nohash_0.wav", _white(rng, -30.0, 12000), subtype="PCM_16")
    # 10 s: a 200 Hz tone for the first 80%, a 3 kHz tone in the held-out last 20%
    t = np.arange(10 * RATE) / RATE
    cut = round(len(t) * (1 - NOISE_HOLDOUT_FRACTION))
    noise = np.where(np.arange(len(t)) < cut, np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 3000 * t))
    _write(root / "_background_noise_" / "tones.wav", (0.1 * noise).astype(np.float32), subtype="PCM_16")
    return root


# -- silence set ------------------------------------------------------------------------------


def test_silence_set_spans_digital_silence_to_loud_without_clipping(tmp_path):
    paths = build_silence_set(tmp_path / "sil", data_root=None, seed=0, count=40)
    assert len(paths) == 40
    levels, kinds = [], Counter()
    for path in paths:
        info = sf.info(path)
        assert (info.samplerate, info.frames, info.channels) == (RATE, RATE, 1)
        audio, _ = sf.read(path, dtype="float64")
        assert np.abs(audio).max() < 1.0
        levels.append(rms_dbfs(audio))
        kinds[path.stem.rsplit("_", 1)[0]] += 1
        if path.stem.startswith("dither"):
            lsb = audio * 32768
            assert np.array_equal(lsb, np.round(lsb)) and np.abs(lsb).max() == 1
    assert -math.inf in levels  # exact digital zeros
    finite = [v for v in levels if v > -math.inf]
    assert min(finite) <= -90  # 1-LSB dither (about -93 dBFS)
    noise = [v for v, p in zip(levels, paths, strict=True) if p.stem.split("_")[0] in ("white", "pink", "brown", "hum")]
    assert min(noise) <= -82 and max(noise) >= -16
    assert len({level_bucket(v) for v in noise}) >= 7  # spread over the range, not bunched
    assert set(kinds) == {"white", "pink", "brown", "hum", "zeros", "dither"}


def test_silence_set_crops_only_the_held_out_end_of_the_recordings(tmp_path, rng):
    root = _fake_data_root(tmp_path / "data", rng)
    paths = build_silence_set(tmp_path / "sil", data_root=root, seed=1, count=20)
    real = [p for p in paths if p.parent.name == "real"]
    assert len(real) == 9 and all(p.stem.startswith("tones_") for p in real)
    for path in real:
        audio, _ = sf.read(path)
        spectrum = np.abs(np.fft.rfft(audio))
        assert abs(np.argmax(spectrum) - 3000) <= 2  # only the 3 kHz tail, never the 200 Hz head
        assert spectrum[195:206].max() < 1e-3 * spectrum.max()
    # cached by a manifest: the same call reuses the files, another count rebuilds
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert build_silence_set(tmp_path / "sil", data_root=root, seed=1, count=20) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    assert len(build_silence_set(tmp_path / "sil", data_root=root, seed=1, count=12)) == 12
    assert len(list((tmp_path / "sil").rglob("*.wav"))) == 12  # the old set's clips are gone
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        build_silence_set(tmp_path / "x", data_root=tmp_path / "missing", count=8)


def test_level_bucket_names():
    assert level_bucket(-math.inf) == "digital zero"
    assert level_bucket(-93.0) == "< -90 dBFS"
    assert level_bucket(-85.0) == "-90 to -80 dBFS"
    assert level_bucket(-10.5) == "-20 to -10 dBFS"
    assert level_bucket(-3.0) == ">= -10 dBFS"


# -- OOV set ----------------------------------------------------------------------------------


def test_oov_set_real_part_is_only_the_held_out_words(tmp_path, rng):
    root = _fake_data_root(tmp_path / "data", rng)
    clips = build_oov_set(tmp_path / "oov", data_root=root, words=(), progress=False)
    assert sorted((p.parent.name, source) for p, source in clips) == [
        ("bed", "real"),
        ("bed", "real"),
        ("cat", "real"),
    ]
    assert {"bed", "cat"} <= set(HELD_OUT_REAL_WORDS)


def test_oov_set_refuses_training_words_and_voices(tmp_path):
    with pytest.raises(ValueError, match="never be training negatives"):
        build_oov_set(tmp_path, data_root=None, words=(NEGATIVE_WORDS[0],), progress=False)
    with pytest.raises(ValueError, match="never be training voices"):
        build_oov_set(tmp_path, data_root=None, voices=(TRAIN_VOICES[0],), progress=False)


@needs_espeak
def test_oov_set_renders_only_eval_words_in_eval_voices(tmp_path, rng):
    root = _fake_data_root(tmp_path / "data", rng)
    clips = build_oov_set(tmp_path / "oov", data_root=root, words=OOV_EVAL_WORDS[:2], per_word=2, progress=False)
    synthetic = [p for p, source in clips if source == "synthetic"]
    assert len(synthetic) == 4 and len(clips) == 7
    for path in synthetic:
        assert path.parent.name in OOV_EVAL_WORDS[:2]
        voice, speed, pitch = path.name.split("_nohash_")[0].rsplit("-", 2)
        assert voice in EVAL_VOICES and int(speed) in EVAL_SPEEDS and int(pitch) in EVAL_PITCHES
        assert sf.info(path).frames == RATE


# -- evaluate_robustness ----------------------------------------------------------------------


def test_evaluate_matches_a_hand_count(tmp_path, rng, energy_model):
    # OOV clips: the energy model calls quiet ones _silence_, medium _unknown_, loud "yes"
    oov_levels = {"quiet": -60.0, "medium": -40.0, "loud": -15.0}
    oov = []
    for i, (word, source) in enumerate([("quiet", "real"), ("medium", "real"), ("medium", "synthetic"),
                                        ("loud", "synthetic"), ("medium", "synthetic")]):  # fmt: skip
        path = _write(tmp_path / "oov" / word / f"c{i}.wav", _white(rng, oov_levels[word]))
        oov.append((path, source))
    silence_levels = [-75.0, -65.0, -55.0, -35.0, -15.0, -12.0]
    silence = [_write(tmp_path / "sil" / "synthetic" / f"white_{i:04d}.wav", _white(rng, level))
               for i, level in enumerate(silence_levels)]  # fmt: skip
    silence.append(_write(tmp_path / "sil" / "synthetic" / "zeros_0006.wav", np.zeros(RATE, np.float32)))

    # the hand count, from the model itself
    classifier = Classifier.from_file(energy_model, device="cpu")
    oov_said = [p.label for p in classifier.classify([p for p, _ in oov])]
    sil_said = [p.label for p in classifier.classify(silence)]
    assert oov_said == ["_silence_", "_unknown_", "_unknown_", "yes", "_unknown_"]  # the model sorts by level
    assert sil_said == ["_silence_", "_silence_", "_silence_", "_unknown_", "yes", "yes", "_silence_"]

    report = evaluate_robustness(energy_model, oov_clips=oov, silence_clips=silence, batch_size=3)
    assert report.oov_total == 5 and report.oov_unknown_share == pytest.approx(3 / 5)
    assert report.oov_confusions == {"_silence_": 1, "yes": 1}
    assert report.oov_by_source == {"real": pytest.approx(1 / 2), "synthetic": pytest.approx(2 / 3)}
    assert report.oov_source_totals == {"real": 2, "synthetic": 3}
    assert report.oov_by_word == {"loud": 0.0, "quiet": 0.0, "medium": 1.0}
    assert report.silence_total == 7 and report.silence_share == pytest.approx(4 / 7)
    assert report.silence_confusions == {"yes": 2, "_unknown_": 1}
    assert report.silence_by_level == {
        "digital zero": 1.0,
        "-80 to -70 dBFS": 1.0,
        "-70 to -60 dBFS": 1.0,
        "-60 to -50 dBFS": 1.0,
        "-40 to -30 dBFS": 0.0,
        "-20 to -10 dBFS": 0.0,
    }
    assert report.silence_level_totals["-20 to -10 dBFS"] == 2
    assert report.silence_by_source == {"synthetic": pytest.approx(4 / 7)}
    assert report.silence_by_kind == {"white": pytest.approx(3 / 6), "zeros": 1.0}
    assert not report.meets_targets()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["command_accuracy"] is None and data["meets_targets"] is False
    assert "OOV words -> _unknown_" in report.format_table()


@pytest.mark.slow  # the shared fixture trains a small model once per session
def test_evaluate_with_a_trained_model(tmp_path, synthetic_model):
    rng = np.random.default_rng(7)
    oov = [(_write(tmp_path / word / f"{i}.wav", make_class_clip(word, rng)), "synthetic")
           for word in ("rise", "fall") for i in range(4)]  # fmt: skip
    silence = [_write(tmp_path / "synthetic" / f"noise_{i}.wav", make_class_clip("_silence_", rng)) for i in range(6)]
    classifier = Classifier.from_file(synthetic_model, device="cpu")
    oov_said = Counter(p.label for p in classifier.classify([p for p, _ in oov]))
    sil_said = Counter(p.label for p in classifier.classify(silence))
    report = evaluate_robustness(synthetic_model, oov_clips=oov, silence_clips=silence)
    assert report.oov_unknown_share == oov_said["_unknown_"] / 8
    assert report.oov_confusions == {k: v for k, v in oov_said.items() if k != "_unknown_"}
    assert report.oov_confusions.get("rise", 0) + report.oov_confusions.get("fall", 0) >= 6  # known words, not OOV
    assert report.silence_share == sil_said["_silence_"] / 6 >= 5 / 6
    # the int8 option is measured as such, and the report says which backend ran
    int8 = Classifier.from_file(synthetic_model, device="cpu", backend="int8")
    quantized = evaluate_robustness(int8, oov_clips=oov, silence_clips=silence)
    assert (report.backend, quantized.backend) == (classifier.backend, "int8")
    assert quantized.to_dict()["backend"] == "int8"
    assert quantized.oov_unknown_share == Counter(p.label for p in int8.classify([p for p, _ in oov]))["_unknown_"] / 8


def test_evaluate_refuses_a_model_without_unknown(tmp_path):
    model = SpeechRNN(ModelConfig(n_classes=2, hidden_size=4, num_layers=1))
    path = save_checkpoint(tmp_path / "m.pt", model=model, feature_config=FeatureConfig(), labels=("_silence_", "yes"))
    clip = _write(tmp_path / "w" / "a.wav", np.zeros(RATE, np.float32))
    with pytest.raises(ValueError, match="no _unknown_ class"):
        evaluate_robustness(path, oov_clips=[(clip, "real")], silence_clips=[])
    assert evaluate_robustness(path, oov_clips=[], silence_clips=[clip]).silence_total == 1


# -- command line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "missing", "what"),
    [(("_silence_", "yes"), "_unknown_", "OOV rejection"), (("_unknown_", "yes"), "_silence_", "silence")],
)
def test_cli_model_without_a_filler_class_is_named_before_any_set_is_built(tmp_path, capsys, labels, missing, what):
    model = SpeechRNN(ModelConfig(n_classes=2, hidden_size=4, num_layers=1))
    path = save_checkpoint(tmp_path / "two-words.pt", model=model, feature_config=FeatureConfig(), labels=labels)
    cache = tmp_path / "cache"
    assert main([str(path), "--cache-dir", str(cache), "--per-word", "1", "--silence-count", "4", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: the model has no {missing} class, so {what} cannot be measured"
    assert not cache.exists()  # said at once: no evaluation set was built


@needs_espeak
def test_cli_writes_a_json_report(tmp_path, rng, energy_model, capsys):
    root = _fake_data_root(tmp_path / "data", rng)
    out = tmp_path / "report.json"
    args = [str(energy_model), "--data", str(root), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
            "--per-word", "1", "--silence-count", "12", "--quiet"]  # fmt: skip
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert data["oov_total"] == len(OOV_EVAL_WORDS) + 3
    assert data["oov_source_totals"] == {"real": 3, "synthetic": len(OOV_EVAL_WORDS)}
    assert data["silence_total"] == 12 and data["command_total"] == 8  # the control: "yes" in 8 eval voices
    assert (tmp_path / "cache" / "seed-0" / "silence" / "manifest.json").is_file()
    assert "silence -> _silence_" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.pt"), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing.pt" in err and "\n" not in err

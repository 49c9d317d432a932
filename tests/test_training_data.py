"""The Speech Commands reader, task construction, caching and augmentation of training.data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from synthetic import WORDS, write_speech_commands_tree

from speechrnn.audio import load_audio
from speechrnn.features import FeatureConfig, LogMel, fit_clip
from training import data as data_module
from training.config import AugmentConfig, DataConfig, TrainConfig, load_config
from training.data import (
    KIND_CLIP,
    KIND_MADE,
    KIND_SILENCE,
    ClipDataset,
    DataError,
    EpochItems,
    SpeechCommandsData,
    hash_split,
    scan_speech_commands,
)

FEATURES = FeatureConfig()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("sc") / "speech_commands"
    splits = write_speech_commands_tree(root, per_word=40, rng=np.random.default_rng(3), short_fraction=0.2)
    return root, splits


def _config(root: Path, tmp_path: Path, **changes: object) -> DataConfig:
    base = DataConfig(data_dir=str(root), task="custom", words=WORDS, cache_dir=str(tmp_path / "cache"))
    return dataclasses.replace(base, **changes)


def test_scan_follows_the_lists_and_finds_noise(tree: tuple[Path, dict[str, list[str]]]) -> None:
    root, splits = tree
    scanned = scan_speech_commands(root)
    by_split = {name: sorted(c.path for c in scanned.clips if c.split == name) for name in splits}
    assert by_split == {name: sorted(paths) for name, paths in splits.items()}
    assert scanned.words == tuple(sorted((*WORDS, "hiss")))
    assert [p.name for p in scanned.noise_files] == ["pink_noise.wav", "white_noise.wav"]
    assert all(c.speaker and "_nohash_" not in c.speaker for c in scanned.clips)


def test_flac_tree_and_wav_lists_match(tmp_path: Path) -> None:
    """speech_commands_mini is FLAC; list entries are matched without their extension."""
    root = tmp_path / "flac"
    splits = write_speech_commands_tree(root, words=("rise",), per_word=10, rng=np.random.default_rng(0),
                                        extension="flac")  # fmt: skip
    listed = (root / "testing_list.txt").read_text().replace(".flac", ".wav")
    (root / "testing_list.txt").write_text(listed)
    scanned = scan_speech_commands(root)
    assert sorted(c.path for c in scanned.clips if c.split == "testing") == sorted(splits["testing"])


def test_list_entries_written_another_way_still_hold_their_clips_out(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """"./rise/a.wav" names rise/a.wav; entries naming no clip are counted in a warning, not dropped silently."""
    root = tmp_path / "dotted"
    splits = write_speech_commands_tree(root, words=("rise",), per_word=10, rng=np.random.default_rng(0))
    dotted = "".join(f"./{line}\n" for line in (root / "validation_list.txt").read_text().split())
    (root / "validation_list.txt").write_text(dotted + "rise/gone_nohash_0.wav\n")
    scanned = scan_speech_commands(root)
    assert sorted(c.path for c in scanned.clips if c.split == "validation") == sorted(splits["validation"])
    expected = len(splits["validation"]) + 1
    assert f"warning: 1 of {expected} entries of {root / 'validation_list.txt'} name no clip in {root} " \
        "(first: rise/gone_nohash_0)" in capsys.readouterr().err


def test_without_lists_the_speaker_hash_splits(tmp_path: Path) -> None:
    root = tmp_path / "nolists"
    write_speech_commands_tree(root, words=("rise", "fall"), per_word=30, rng=np.random.default_rng(1))
    (root / "validation_list.txt").unlink()
    (root / "testing_list.txt").unlink()
    scanned = scan_speech_commands(root)
    for clip in scanned.clips:
        assert clip.split == hash_split(clip.path)
    # one speaker never straddles splits
    per_speaker: dict[str, set[str]] = {}
    for clip in scanned.clips:
        per_speaker.setdefault(clip.speaker, set()).add(clip.split)
    assert all(len(s) == 1 for s in per_speaker.values())


def test_missing_or_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder not found"):
        scan_speech_commands(tmp_path / "nope")
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(DataError, match="no clips found"):
        scan_speech_commands(tmp_path / "empty")


def test_task_labels() -> None:
    assert DataConfig(task="mini").labels == (
        "_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "go", "stop",
    )  # fmt: skip
    assert len(DataConfig(task="v2-12").labels) == 12
    assert DataConfig(task="v2-12").labels[-2:] == ("stop", "go")
    v35 = DataConfig(task="v2-35").labels
    assert len(v35) == 35 and "_unknown_" not in v35
    assert DataConfig(task="custom", words=("a", "b"), fillers=False).labels == ("a", "b")
    with pytest.raises(ValueError, match=r"needs data\.words"):
        DataConfig(task="custom")
    with pytest.raises(ValueError, match="task must be one of"):
        DataConfig(task="v3")


def test_splits_unknown_capping_and_redrawing(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, splits = tree
    data = SpeechCommandsData(_config(root, tmp_path), FEATURES, progress=False)
    train = data.split("training")
    n_words = sum(1 for p in splits["training"] if p.split("/")[0] in WORDS)
    assert len(train.word_rows) == n_words
    # _unknown_ is capped at its share: 10% of the examples (words are the other 80%)
    expected = round(n_words / 0.8 * 0.1)
    assert train.n_unknown == expected < len(train.unknown_rows)
    counts = train.class_counts(0)
    assert counts["_unknown_"] == expected and counts["_silence_"] == round(n_words / 0.8 * 0.1)
    unknown_paths = {data.clips[i].path for i in train.unknown_rows}
    assert all(p.startswith("hiss/") for p in unknown_paths)
    # re-drawn every training epoch, from the split's own clips
    e0, e1 = train.items(0), train.items(1)
    u0 = set(e0.source[e0.label == 1].tolist())
    u1 = set(e1.source[e1.label == 1].tolist())
    assert u0 != u1 and u0 | u1 <= set(train.unknown_rows.tolist())
    # an evaluation split draws once
    val = data.split("validation")
    assert np.array_equal(val.items(0).source, val.items(5).source)
    assert all(data.clips[i].split == "validation" for i in val.items(0).source[val.items(0).kind == KIND_CLIP])
    # a small pool caps the share at the pool
    greedy = SpeechCommandsData(_config(root, tmp_path, unknown_fraction=0.6, silence_fraction=0.0), FEATURES,
                                progress=False).split("training")  # fmt: skip
    assert greedy.n_unknown == len(greedy.unknown_rows)


def test_train_on_validation_adds_the_validation_clips_to_training_only(
    tree: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    root, splits = tree
    plain = SpeechCommandsData(_config(root, tmp_path), FEATURES, progress=False)
    refit = SpeechCommandsData(_config(root, tmp_path, train_on_validation=True), FEATURES, progress=False)
    train, val = refit.split("training"), refit.split("validation")
    n_words = {s: sum(1 for p in splits[s] if p.split("/")[0] in WORDS) for s in ("training", "validation")}
    assert len(plain.split("training").word_rows) == n_words["training"]
    assert len(train.word_rows) == n_words["training"] + n_words["validation"]
    assert {refit.clips[i].split for i in train.unknown_rows} == {"training", "validation"}
    # the validation split is still the same clips, scored as before; testing is untouched
    assert np.array_equal(val.items(0).source, plain.split("validation").items(0).source)
    assert not any(refit.clips[i].split == "testing" for i in train.word_rows)
    assert len(refit.split("testing").word_rows) == len(plain.split("testing").word_rows)
    # training noise stays the head of the recordings (the tail is for evaluation)
    assert [len(s) for s in train.noise] == [len(s) for s in plain.split("training").noise]


def test_holdout_words_and_max_per_word(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path, holdout_words=("hiss",), max_per_word=5), FEATURES,
                              progress=False)  # fmt: skip
    assert not any(c.word == "hiss" for c in data.clips)
    per = {}
    for clip in data.clips:
        per[(clip.word, clip.split)] = per.get((clip.word, clip.split), 0) + 1
    assert max(per.values()) <= 5
    assert data.split("training").n_unknown == 0  # nothing left to draw _unknown_ from


def test_short_clips_are_zero_padded(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path), FEATURES, progress=False)
    short = [(i, c) for i, c in enumerate(data.clips) if sf.info(root / c.path).frames < FEATURES.clip_samples]
    assert short, "the synthetic tree should hold short clips"
    for i, clip in short[:5]:
        raw = load_audio(root / clip.path)
        row = data.audio[i].astype(np.float32) / 32767.0
        assert row.shape == (FEATURES.clip_samples,)
        np.testing.assert_allclose(row, fit_clip(raw, FEATURES.clip_samples), atol=1.0 / 32767)
        assert not data.audio[i, raw.shape[0] :].any()


def test_decoded_audio_is_cached(
    tree: tuple[Path, dict[str, list[str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    config = _config(root, tmp_path)
    first = SpeechCommandsData(config, FEATURES, progress=False)
    assert list((tmp_path / "cache").glob("clips-*.npy"))

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(data_module, "_decode_one", fail)
    second = SpeechCommandsData(config, FEATURES, progress=False)
    assert np.array_equal(first.audio, second.audio)


def test_unreadable_clip_is_skipped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "bad"
    write_speech_commands_tree(root, words=("rise", "fall"), per_word=10, rng=np.random.default_rng(2))
    broken = next((root / "rise").glob("*.wav"))
    broken.write_bytes(b"RIFF0000WAVEjunk")
    config = DataConfig(data_dir=str(root), task="custom", words=("rise", "fall"), cache_dir=str(tmp_path / "c"))
    data = SpeechCommandsData(config, FEATURES, progress=False)
    assert "skipped 1 unreadable clip" in capsys.readouterr().err
    bad = next(i for i, c in enumerate(data.clips) if c.path == f"rise/{broken.name}")
    assert not data.ok[bad]
    split = next(c.split for c in data.clips if c.path == f"rise/{broken.name}")
    assert bad not in data.split(split).word_rows


def test_silence_spans_wide_levels(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path, silence_rms=(1e-4, 0.3), silence_zero_prob=0.1), FEATURES,
                              progress=False)  # fmt: skip
    train = data.split("training")
    audio = train._silence(400, np.random.default_rng(0))
    rms = audio.square().mean(dim=1).sqrt().numpy()
    nonzero = rms[rms > 0]
    assert 0.02 < (rms == 0).mean() < 0.25
    assert nonzero.min() >= 0.9e-4 and nonzero.max() <= 0.31
    assert nonzero.max() / nonzero.min() > 300  # from near-digital silence to loud
    # evaluation splits cut silence from the held-out tail of the noise files
    val = data.split("validation")
    items = val.items(0)
    silence = items.take(np.flatnonzero(items.kind == KIND_SILENCE))
    assert len(silence) == val.n_silence > 0
    assert torch.equal(val.waveforms(silence), val.waveforms(silence))


def _aug_config() -> AugmentConfig:
    return AugmentConfig()


def test_augmentation_only_in_training(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path), FEATURES, progress=False)
    val = data.split("validation", augment=_aug_config())
    items = val.items(0)
    a, b = val.features_for(items), val.features_for(items)
    assert torch.equal(a, b)
    assert torch.equal(val.all_features()[0], a)
    # and they are exactly the inference features of the padded clip
    first = int(np.flatnonzero(items.kind == KIND_CLIP)[0])
    clip = fit_clip(load_audio(root / data.clips[items.source[first]].path), FEATURES.clip_samples)
    np.testing.assert_allclose(a[first].numpy(), LogMel(FEATURES)(torch.from_numpy(clip)).numpy(), atol=2e-3)

    train = data.split("training", augment=_aug_config())
    some = train.items(0).take(np.arange(16))
    x, y = train.features_for(some), train.features_for(some)
    assert x.shape == y.shape == (16, FEATURES.n_frames, FEATURES.n_mels)
    assert not torch.equal(x, y)
    off = data.split("training", augment=dataclasses.replace(_aug_config(), enabled=False))
    words = off.items(0).take(np.flatnonzero(off.items(0).kind == KIND_CLIP)[:16])
    assert torch.equal(off.features_for(words), off.features_for(words))


def test_waveform_augmentation_shift_gain_and_masks(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path), FEATURES, progress=False)
    only_shift = AugmentConfig(speed_prob=0.0, gain_db=(0.0, 0.0), noise_prob=0.0, shift_seconds=0.1,
                               time_masks=0, freq_masks=0)  # fmt: skip
    train = data.split("training", augment=only_shift)
    items = train.items(0).take(np.flatnonzero(train.items(0).kind == KIND_CLIP)[:8])
    clean = train.waveforms(items)
    shifted = train.augment_waveforms(clean.clone(), items, np.random.default_rng(0))
    for original, moved in zip(clean, shifted, strict=True):
        corr = np.correlate(moved.numpy(), original.numpy(), mode="full")
        lag = int(np.argmax(corr)) - (len(original) - 1)
        assert abs(lag) <= 0.1 * FEATURES.sample_rate + 1
    assert torch.allclose(shifted.square().sum(), clean.square().sum(), rtol=0.3)
    gain = dataclasses.replace(only_shift, shift_seconds=0.0, gain_db=(6.0, 6.0))
    louder = data.split("training", augment=gain).augment_waveforms(clean.clone(), items, np.random.default_rng(0))
    assert torch.allclose(louder, (clean * 10 ** (6 / 20)).clamp(-1, 1), atol=1e-5)
    masks = dataclasses.replace(only_shift, shift_seconds=0.0, time_masks=2, freq_masks=2)
    masked_set = data.split("training", augment=masks)
    masked_set.set_fill(torch.full((FEATURES.n_mels,), -99.0))
    frames = masked_set.log_mel(clean)
    masked = masked_set.spec_augment(frames, np.random.default_rng(1))
    changed = masked != frames
    assert (masked[changed] == -99.0).all() and changed.any()


def test_noise_mixing_respects_snr(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path), FEATURES, progress=False)
    noisy = AugmentConfig(speed_prob=0.0, gain_db=(0.0, 0.0), noise_prob=1.0, noise_snr_db=(10.0, 10.0),
                          shift_seconds=0.0)  # fmt: skip
    train = data.split("training", augment=noisy)
    items = train.items(0).take(np.flatnonzero(train.items(0).kind == KIND_CLIP)[:8])
    clean = train.waveforms(items)
    mixed = train.augment_waveforms(clean.clone(), items, np.random.default_rng(0))
    added = mixed - clean
    snr = 10 * torch.log10(clean.square().mean(1) / added.square().mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 10.0), atol=0.5)


def test_room_reverberation_reaches_words_only_and_only_when_asked(
    tree: tuple[Path, dict[str, list[str]]], tmp_path: Path
) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path), FEATURES, progress=False)
    dry_config = AugmentConfig(speed_prob=0.0, gain_db=(0.0, 0.0), noise_prob=0.0, shift_seconds=0.0)
    train = data.split("training", augment=dry_config)
    items = train.items(0)
    pick = np.concatenate([np.flatnonzero(items.kind == KIND_CLIP)[:6], np.flatnonzero(items.kind == KIND_SILENCE)[:2]])
    items = items.take(pick)
    burst = torch.zeros(len(pick), FEATURES.clip_samples)  # a short burst, then nothing: a room leaves a tail
    burst[:, 2000:3600] = torch.from_numpy(np.random.default_rng(3).standard_normal((len(pick), 1600))).float() * 0.1
    # off (the default): the waveforms pass untouched
    assert torch.equal(train.augment_waveforms(burst.clone(), items, np.random.default_rng(0)), burst)
    room = dataclasses.replace(dry_config, reverb_prob=1.0, reverb_rt60=(0.8, 0.8), reverb_drr_db=(0.0, 0.0))
    wet = data.split("training", augment=room).augment_waveforms(burst.clone(), items, np.random.default_rng(0))
    tail = wet[:, 5000:12000].square().mean(dim=1)
    words = torch.from_numpy(items.kind != KIND_SILENCE)
    assert bool((tail[words] > 1e-5).all())  # every word example got a reverberant tail ...
    assert torch.equal(wet[~words], burst[~words])  # ... and _silence_ stays what it was
    torch.testing.assert_close(wet.square().mean(dim=1), burst.square().mean(dim=1), rtol=1e-3, atol=1e-9)
    with pytest.raises(ValueError, match="reverb_rt60"):
        AugmentConfig(reverb_rt60=(0.0, 1.0))
    with pytest.raises(ValueError, match="reverb_prob"):
        AugmentConfig(reverb_prob=1.5)
    config = load_config(None, ["augment.reverb_prob=0.3", "augment.reverb_drr_db=[-3, 12]"])
    assert (config.augment.reverb_prob, config.augment.reverb_drr_db) == (0.3, (-3.0, 12.0))


def test_made_negatives_and_extra_unknown(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    extra = tmp_path / "extra" / "word"
    extra.mkdir(parents=True)
    for i in range(30):
        sf.write(extra / f"x_nohash_{i}.wav", np.full(8000, 0.1 * (i + 1) / 30, np.float32), 16000)
    config = _config(root, tmp_path, made_unknown_share=0.25, extra_unknown_dirs=(str(tmp_path / "extra"),),
                     extra_unknown_share=0.25)  # fmt: skip
    data = SpeechCommandsData(config, FEATURES, progress=False)
    train = data.split("training")
    items = train.items(0)
    assert (items.kind == KIND_MADE).sum() == train.n_made > 0
    assert train.n_extra > 0 and len(train.extra_rows) == 30
    made = items.take(np.flatnonzero(items.kind == KIND_MADE))
    audio = train.waveforms(made)
    assert (audio.abs().amax(dim=1) > 0).all()
    assert (made.label == train.unknown_label).all()
    assert data.split("validation").n_made == 0 and len(data.split("validation").extra_rows) == 0


def _made_rows(root: Path, tmp_path: Path, **changes: object) -> tuple[SpeechCommandsData, ClipDataset, EpochItems]:
    """The data set, its training split (no augmentation) and the first epoch's made negatives."""
    data = SpeechCommandsData(_config(root, tmp_path, made_unknown_share=0.5, **changes), FEATURES, progress=False)
    train = data.split("training", augment=AugmentConfig(enabled=False))
    items = train.items(0)
    made = items.take(np.flatnonzero(items.kind == KIND_MADE))
    assert len(made) == train.n_made > 0 and (made.label == train.unknown_label).all()
    return data, train, made


def _assert_edge_fragment(row: np.ndarray) -> None:
    """A piece of a word against the end or the start of the clip, nothing in the middle."""
    n, nonzero = row.shape[0], np.flatnonzero(row)
    assert nonzero.size and (nonzero[-1] >= n - 1 - n // 20 or nonzero[0] <= n // 20)
    assert nonzero[-1] - nonzero[0] < 0.5 * n


def test_made_fragments_sit_at_the_clip_edges(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    _, train, made = _made_rows(tree[0], tmp_path, made_reverse_share=0.0, made_fragment_share=1.0)
    for row in train.waveforms(made).numpy():
        _assert_edge_fragment(row)
    with pytest.raises(ValueError, match=r"made_reverse_share \+ data\.made_fragment_share"):
        DataConfig(made_reverse_share=0.6, made_fragment_share=0.5)


def test_made_negatives_of_a_single_word_task(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    """One command word cannot be spliced: the splices' share becomes reversals, fragments stay fragments."""
    data, train, made = _made_rows(tree[0], tmp_path, words=WORDS[:1], made_reverse_share=0.0,
                                   made_fragment_share=0.5)  # fmt: skip
    sources = data.audio[train.word_rows].astype(np.float32) / 32767.0
    n_reversed = round(train.n_made * 0.5)
    kinds = set()
    for row, index in zip(train.waveforms(made).numpy(), made.source, strict=True):
        if index < n_reversed:  # a whole command clip played backwards
            assert np.abs(sources - row[::-1]).max(axis=1).min() < 1e-6
            kinds.add("reversed")
        else:
            _assert_edge_fragment(row)
            kinds.add("fragment")
    assert kinds == {"reversed", "fragment"}


def test_batches_shard_over_processes(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path), FEATURES, progress=False)
    train = data.split("training", augment=AugmentConfig(enabled=False))
    single = torch.cat([y for _, y in train.batches(0, batch_size=64)])
    assert len(single) == len(train)
    shards = [list(train.batches(0, batch_size=16, rank=r, world=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == train.n_batches(16, world=2)
    labels = torch.cat([y for shard in shards for _, y in shard])
    assert len(labels) >= len(train)
    assert sorted(labels.tolist())[: len(single)] != [] and set(labels.tolist()) == set(single.tolist())


def test_config_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('seed = 3\n[data]\ntask = "mini"\nholdout_words = ["bed"]\n[model]\ncell = "lstm"\n')
    config = load_config(path, ["optim.lr=1e-3", "model.hidden_size=64", "data.data_dir=/x/y", "augment.enabled=false"])
    assert config.seed == 3 and config.model.cell == "lstm" and config.model.hidden_size == 64
    assert config.optim.lr == 1e-3 and config.data.data_dir == "/x/y" and not config.augment.enabled
    assert config.data.holdout_words == ("bed",)
    assert config.resolved().model.n_classes == 10
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown config key 'optim\.lrr'"):
        load_config(path, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="not key=value"):
        load_config(path, ["optim.lr"])
    with pytest.raises(ValueError, match="config file not found"):
        load_config(tmp_path / "missing.toml")


def test_shipped_configs_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an installed package: no training/configs/ under the working folder
    shipped = Path(__file__).resolve().parents[1] / "training" / "configs" / "mini.toml"
    for name in ("mini", "mini.toml", "training/configs/mini.toml"):
        assert load_config(name) == load_config(shipped)
    assert load_config("v2-12").data.task == "v2-12"
    (tmp_path / "mini.toml").write_text("seed = 7\n")  # a file of the user's wins over the shipped one
    assert load_config("mini.toml").seed == 7
    with pytest.raises(ValueError, match=r"nosuch\.toml: config file not found"):
        load_config("nosuch.toml")
    with pytest.raises(ValueError, match="config file not found"):  # a mistyped path of the user's: not ours
        load_config("my-configs/mini.toml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.epochs=1.5", "optim.epochs must be a whole number, not 1.5"),
        ('optim.epochs="1"', "optim.epochs must be a whole number, not '1'"),
        ("seed=abc", "seed must be a whole number, not 'abc'"),
        ("optim.lr=inf", "optim.lr must be a finite number, not inf"),
        ("optim.lr=nan", "optim.lr must be a finite number, not nan"),
        ("model.hidden_size=16.5", "model.hidden_size must be a whole number, not 16.5"),
        ("augment.speed=[0.9]", "augment.speed must be a list of 2 values, e.g. [low, high], not [0.9]"),
        ("augment.enabled=1", "augment.enabled must be true or false, not 1"),
        ('data.words=["yes", 3]', "data.words[1] must be a string, not 3"),
        ("model.cell=3", "model.cell must be a string, not 3"),
        ("optim.patience=-1", "optim.patience must be >= 0"),
        ("eval_batch_size=0", "eval_batch_size must be at least 1"),
        ("device=gpu", "device must be auto, cpu or cuda, not 'gpu'"),
        ("optim=3", "config section optim must be a table"),
    ],
)
def test_wrong_values_are_one_line_errors_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        load_config(None, [override])
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_section_that_is_not_a_table_cannot_take_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("optim = 3\n")
    with pytest.raises(ValueError, match=r"c\.toml: cannot set optim\.lr: 'optim' is 3, not a table"):
        load_config(path, ["optim.lr=1e-3"])


def test_numbers_are_taken_in_any_spelling() -> None:
    config = load_config(None, ["optim.batch_size=1e3", "optim.lr=1", "augment.gain_db=[-5, 5]"])
    assert config.optim.batch_size == 1000 and isinstance(config.optim.batch_size, int)
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float)
    assert config.augment.gain_db == (-5.0, 5.0)


@pytest.mark.parametrize("written", ['["yes", "no"]', "yes,no", "[yes,no]", "yes, no"])
def test_word_lists_in_every_shell_spelling(written: str) -> None:
    config = load_config(None, ["data.task=custom", f"data.words={written}", "data.holdout_words=bed"])
    assert config.data.words == ("yes", "no") and config.data.holdout_words == ("bed",)
    assert config.data.labels == ("_silence_", "_unknown_", "yes", "no")


def test_word_list_mistakes_are_refused() -> None:
    only_custom = r'data\.words is only used with data\.task = "custom".*--set data\.task=custom'
    with pytest.raises(ValueError, match=only_custom):
        load_config(None, ['data.words=["yes", "no"]'])  # the default task is "mini"
    with pytest.raises(ValueError, match=r"data\.words lists yes more than once"):
        load_config(None, ["data.task=custom", "data.words=yes,no,yes"])
    with pytest.raises(ValueError, match=r"data\.words must not hold _unknown_"):
        load_config(None, ["data.task=custom", "data.words=yes,_unknown_"])
    with pytest.raises(ValueError, match=r"bed: both a command word and in data\.holdout_words"):
        load_config(None, ["data.task=custom", "data.words=yes,bed", "data.holdout_words=bed,cat"])
    with pytest.raises(ValueError, match=r"yes: both a command word"):
        load_config(None, ["data.holdout_words=yes"])  # mini's own words cannot be held out either


def test_a_word_without_clips_is_an_error(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    config = _config(root, tmp_path, words=(*WORDS, "banana"))
    with pytest.raises(DataError, match=r"no clips of banana \(every command word needs a folder"):
        SpeechCommandsData(config, FEATURES, progress=False)


@pytest.mark.parametrize("missing", ["testing_list.txt", "validation_list.txt"])
def test_one_missing_list_falls_back_to_the_hash_rule(tmp_path: Path, missing: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Without testing_list.txt the test clips must not silently become training clips."""
    root = tmp_path / "onelist"
    write_speech_commands_tree(root, words=("rise", "fall"), per_word=40, rng=np.random.default_rng(2))
    (root / missing).unlink()
    kept = "validation" if missing == "testing_list.txt" else "testing"
    listed = {line.rsplit(".", 1)[0] for line in (root / f"{kept}_list.txt").read_text().split()}
    scanned = scan_speech_commands(root)
    assert f"{missing} not found" in capsys.readouterr().err
    gone = missing.removesuffix("_list.txt")
    for clip in scanned.clips:
        key = clip.path.rsplit(".", 1)[0]
        if key in listed:
            assert clip.split == kept
        elif hash_split(clip.path) == gone:
            assert clip.split == gone
        else:
            assert clip.split == "training"
    assert sum(c.split == gone for c in scanned.clips) > 0


@pytest.mark.parametrize("name", ["mini", "default", "v2-12", "v2-35"])
def test_shipped_configs_parse(name: str) -> None:
    path = Path(__file__).resolve().parents[1] / "training" / "configs" / f"{name}.toml"
    config = load_config(path).resolved()
    assert config.model.n_classes == len(config.data.labels)
    if name.startswith("v2"):  # the full-data configs scale the shipped architecture up, not another one
        default = load_config(path.with_name("default.toml")).resolved()
        same = ("cell", "bidirectional", "pooling", "num_layers", "conv_kernel", "conv_stride")
        assert [getattr(config.model, k) for k in same] == [getattr(default.model, k) for k in same]
        assert config.model.hidden_size > default.model.hidden_size and config.optim.ema_decay > 0


def test_synthetic_noise_is_coloured_and_unit_rms() -> None:
    rng = np.random.default_rng(0)
    noise = data_module.synthetic_noise(64, 16000, rng)
    assert noise.shape == (64, 16000)
    assert torch.allclose(noise.square().mean(dim=1).sqrt(), torch.ones(64), atol=1e-3)
    power = torch.fft.rfft(noise).abs().square()
    low, high = power[:, 10:200].mean(dim=1), power[:, 4000:8000].mean(dim=1)
    assert (low / high).max() > 100 and (low / high).min() < 10  # brown-ish and white-ish rows


def test_synthetic_noise_share_feeds_silence(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path, synthetic_noise_share=1.0, silence_zero_prob=0.0), FEATURES,
                              progress=False)  # fmt: skip
    train = data.split("training")
    crops = train._noise_crops(8, np.random.default_rng(1))
    recorded = torch.from_numpy(np.concatenate(data.noise_segments("training")))
    assert not any(bool(torch.isin(c[:50], recorded).all()) for c in crops)


def test_synthetic_command_clips_are_training_examples(tree: tuple[Path, dict[str, list[str]]], tmp_path: Path) -> None:
    from training.synth import espeak_available

    if not espeak_available():
        pytest.skip("espeak-ng is not installed")
    root, _ = tree
    data = SpeechCommandsData(_config(root, tmp_path, synth_commands_per_word=2), FEATURES, progress=False)
    spoken = np.flatnonzero(np.arange(len(data.clip_label)) >= len(data.clips))
    assert len(spoken) == 2 * len(WORDS)
    assert sorted(data.labels[i] for i in data.clip_label[spoken]) == sorted(WORDS * 2)
    assert set(data.clip_split[spoken]) == {"training"} and data.clip_is_word[spoken].all()
    assert set(spoken) <= set(data.split("training").word_rows.tolist())
    assert not set(spoken) & set(data.split("validation").word_rows.tolist())

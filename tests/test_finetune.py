"""Teaching new words: fine-tuning from a few recordings, with exact rehearsal of the old classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from synthetic import LABELS, make_class_clip, write_speech_commands_tree

from speechrnn.checkpoint import load_checkpoint, save_checkpoint
from speechrnn.inference import Classifier
from speechrnn.trim import trim_to_speech
from training.finetune import (
    FinetuneCancelled,
    FinetuneConfig,
    FinetuneError,
    add_rehearsal_bank,
    build_rehearsal_bank,
    finetune,
    load_recordings,
    main,
)

SR = 16000
NEW_WORD = "warble"


def make_warble(rng: np.random.Generator) -> np.ndarray:
    """A trill: a ~1 kHz tone whose pitch wobbles 10-14 times a second (unlike every fixture class)."""
    seconds = rng.uniform(0.35, 0.55)
    t = np.arange(round(seconds * SR)) / SR
    freq = 1000 * rng.uniform(0.9, 1.1) + 350 * rng.uniform(0.8, 1.2) * np.sin(2 * np.pi * rng.uniform(10, 14) * t)
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.03)
    return (np.sin(2 * np.pi * np.cumsum(freq) / SR) * envelope).astype(np.float32)


def make_take(rng: np.random.Generator, *, seconds: float = 1.5) -> np.ndarray:
    """A recording of the new word as a user makes it: room noise, the word somewhere in the middle."""
    audio = (rng.standard_normal(round(seconds * SR)) * 10 ** rng.uniform(-3.5, -2.5)).astype(np.float32)
    word = make_warble(rng) * rng.uniform(0.1, 0.6)
    start = round(rng.uniform(0.2, seconds - 0.2 - word.size / SR) * SR)
    audio[start:start + word.size] += word
    return audio


def fresh_word_clips(rng: np.random.Generator, n: int) -> np.ndarray:
    """One-second clips of never-seen takes: trimmed like the app does, at a random place over noise."""
    clips = []
    for _ in range(n):
        take = make_take(rng)
        word = trim_to_speech(take, SR)
        clip = (rng.standard_normal(SR) * float(np.sqrt(np.mean(take[:1600] ** 2)))).astype(np.float32)
        offset = int(rng.integers(0, SR - word.size))
        clip[offset:offset + word.size] = word
        clips.append(clip)
    return np.stack(clips)


def write_takes(folder: Path, rng: np.random.Generator, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"take-{i + 1:03d}.wav"
        sf.write(path, make_take(rng), SR, subtype="PCM_16")
        paths.append(path)
    return paths


def old_class_accuracy(model: Path, rng: np.random.Generator, per_class: int = 30) -> tuple[float, float]:
    """Accuracy on fresh clips of the fixture's classes, and how often a new word wins on them."""
    clips = np.stack([make_class_clip(label, rng) for label in LABELS for _ in range(per_class)])
    truth = np.repeat(np.arange(len(LABELS)), per_class)
    predicted = Classifier.from_file(model, device="cpu").probabilities(clips).argmax(axis=1)
    return float((predicted == truth).mean()), float((predicted >= len(LABELS)).mean())


@pytest.fixture(scope="session")
def rehearsal_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic Speech Commands tree of the fixture's classes ("hiss" is the unknown word)."""
    root = tmp_path_factory.getbasetemp() / "finetune-tree"
    if not (root / "testing_list.txt").exists():
        write_speech_commands_tree(root, per_word=40, rng=np.random.default_rng(5))
    return root


@pytest.fixture(scope="session")
def banked_model(synthetic_model: Path, rehearsal_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic model with a rehearsal bank (and a held-out bank) stored in its file, its
    weights stored as float16 like the shipped model's."""
    path = tmp_path_factory.getbasetemp() / "banked-synthetic.pt"
    if not path.exists():
        base = load_checkpoint(synthetic_model)
        half = save_checkpoint(tmp_path_factory.getbasetemp() / "half-synthetic.pt", model=base.build_model(),
                               feature_config=base.feature_config, labels=base.labels, summary=base.summary,
                               weights_dtype="float16")
        add_rehearsal_bank(half, rehearsal_tree, path, per_class=100, heldout_per_class=40, progress=False)
        assert load_checkpoint(path).weights_dtype == "float16"  # the bank keeps the base's storage
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded-audio caches go to a temporary folder, not the user's."""
    monkeypatch.setenv("SPEECHRNN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


# ---------------------------------------------------------------------------------------------- embed


def test_embed_then_head_is_forward(synthetic_model: Path) -> None:
    model = load_checkpoint(synthetic_model).build_model()
    frames = torch.randn(3, 101, 40)
    lengths = torch.tensor([101, 60, 30])
    with torch.no_grad():
        for lens in (None, lengths):
            embedded = model.embed(frames, lens)
            assert embedded.shape == (3, model.config.output_size)
            assert torch.equal(model.head(embedded), model(frames, lens))


# ---------------------------------------------------------------------------------------------- bank


def test_rehearsal_bank_holds_every_class(synthetic_model: Path, rehearsal_tree: Path, banked_model: Path) -> None:
    bank = build_rehearsal_bank(synthetic_model, rehearsal_tree, per_class=20, progress=False)
    embeddings, labels = bank["rehearsal_embeddings"], bank["rehearsal_labels"]
    assert embeddings.dtype == torch.float16 and labels.dtype == torch.int64
    assert embeddings.shape == (labels.numel(), 48)
    counts = torch.bincount(labels, minlength=len(LABELS))
    assert (counts > 0).all() and counts.max() <= 20
    # the old head recognises the stored vectors: they really are what the model computes
    checkpoint = load_checkpoint(banked_model)
    head = checkpoint.build_model().head
    with torch.no_grad():
        accuracy = (head(checkpoint.extras["heldout_embeddings"].float()).argmax(1)
                    == checkpoint.extras["heldout_labels"]).float().mean()
    assert accuracy > 0.7
    assert checkpoint.labels == load_checkpoint(synthetic_model).labels
    assert checkpoint.summary["rehearsal_bank"]["examples"] == checkpoint.extras["rehearsal_labels"].numel()


# ---------------------------------------------------------------------------------------------- learning


def test_script_teaches_a_new_word_without_forgetting(banked_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(7)
    words = tmp_path / "words"
    write_takes(words / NEW_WORD, rng, 10)
    room = (rng.standard_normal(5 * SR) * 0.003).astype(np.float32)
    sf.write(tmp_path / "room.wav", room, SR)
    out = tmp_path / "taught.pt"
    code = main(["--base", str(banked_model), "--words", str(words), "--out", str(out),
                 "--noise", str(tmp_path / "room.wav"), "--quiet", "--json", "--seed", "1"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["new_words"] == [NEW_WORD]
    assert report["takes"] == {NEW_WORD: 10} and report["heldout_takes"][NEW_WORD] >= 2
    assert report["mode"] == "head"
    assert report["new_word_accuracy"] >= 0.9
    assert report["builtin_accuracy_after"] >= report["builtin_accuracy_before"] - 0.05
    assert report["false_accept_rate"] <= 0.05

    checkpoint = load_checkpoint(out)
    assert checkpoint.labels == (*LABELS, NEW_WORD)
    assert checkpoint.summary["finetune"]["new_words"] == [NEW_WORD]
    files = checkpoint.summary["finetune"]["files"]  # names, not the user's folder layout
    assert len(files) == 10 and all(f.startswith(f"{NEW_WORD}/") and str(tmp_path) not in f for f in files)
    assert checkpoint.weights_dtype == "float16"  # a taught model stays as small as its base
    assert checkpoint.summary["metrics"]["new_word_accuracy"] == report["new_word_accuracy"]
    # the bank travels on, now with the new word, so a later word does not erase this one
    assert (checkpoint.extras["rehearsal_labels"] == len(LABELS)).sum() > 0

    # never-seen takes of the new word are recognised ...
    evaluation = np.random.default_rng(99)
    probabilities = Classifier.from_file(out, device="cpu").probabilities(fresh_word_clips(evaluation, 40))
    assert (probabilities.argmax(axis=1) == len(LABELS)).mean() >= 0.9
    # ... and the old classes keep their accuracy on held-out clips; the new word does not fire on them
    before, _ = old_class_accuracy(banked_model, np.random.default_rng(11))
    after, fires = old_class_accuracy(out, np.random.default_rng(11))
    assert after >= before - 0.05
    assert fires <= 0.03

    # `speechrnn info` says what was taught onto what, and the figures the teaching measured
    from speechrnn.info import format_info, model_info

    text = format_info(model_info(out))
    assert f"taught:       {NEW_WORD} (10 takes) onto {banked_model}" in text
    assert f"new words on held-out takes {100 * report['new_word_accuracy']:.2f}%" in text
    assert "built-in words before" in text and "new words firing on other sounds" in text

    # no silent overwrite of the output
    assert main(["--base", str(banked_model), "--words", str(words), "--out", str(out), "--quiet"]) == 1
    assert "already exists" in capsys.readouterr().err

    # a word taught on top of a taught model still names the trained model at the root of the chain
    second = tmp_path / "second"
    write_takes(second / "whirr", np.random.default_rng(8), 5)
    assert main(["--base", str(out), "--words", str(second), "--out", str(tmp_path / "twice.pt"), "--quiet"]) == 0
    capsys.readouterr()
    summary = load_checkpoint(tmp_path / "twice.pt").summary
    assert summary["base_model"]["path"] == str(out) and summary["original_model"]["path"] == str(banked_model)
    assert f"onto {banked_model}" in format_info(model_info(tmp_path / "twice.pt"))


def test_base_without_bank_uses_rehearsal_data(synthetic_model: Path, rehearsal_tree: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    takes = [make_take(rng) for _ in range(8)]
    progress: list[float] = []
    report = finetune(base=synthetic_model, words_dir={NEW_WORD: takes}, out=tmp_path / "m.pt",
                      rehearsal_data=rehearsal_tree, progress=lambda f, _m: progress.append(f),
                      config=FinetuneConfig(variants_per_take=32))
    assert report.mode == "head" and report.new_word_accuracy >= 0.9
    assert report.builtin_accuracy_after is not None
    assert report.builtin_accuracy_after >= report.builtin_accuracy_before - 0.05
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len(progress) > 10  # the app's progress bar moves during the work
    assert any("room" in w for w in report.warnings)  # no room recording: synthetic noise, and it says so


def test_base_without_bank_or_data_freezes_the_old_classes(synthetic_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    out = tmp_path / "frozen.pt"
    report = finetune(base=synthetic_model, words_dir={NEW_WORD: [make_take(rng) for _ in range(6)]}, out=out,
                      config=FinetuneConfig(variants_per_take=24))
    assert report.mode == "frozen-head"
    assert any("no rehearsal bank" in w and "--rehearsal-data" in w for w in report.warnings)
    assert any("recordings" in w and "only 6" in w for w in report.warnings)  # fewer than 8 takes
    # the old classes' logits are exactly the base model's
    frames = torch.randn(4, 101, 40)
    with torch.no_grad():
        old = load_checkpoint(synthetic_model).build_model()(frames)
        new = load_checkpoint(out).build_model()(frames)
    assert torch.allclose(new[:, : len(LABELS)], old, atol=1e-5)


def test_cancel_writes_nothing(banked_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    out = tmp_path / "cancelled.pt"
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(FinetuneCancelled):
        finetune(base=banked_model, words_dir={NEW_WORD: [make_take(rng) for _ in range(4)]}, out=out,
                 should_stop=stop)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- bad input


def expect_error(match: str, **kwargs: object) -> None:
    with pytest.raises(FinetuneError, match=match):
        finetune(**kwargs)  # type: ignore[arg-type]


def test_too_few_recordings(banked_model: Path, tmp_path: Path) -> None:
    write_takes(tmp_path / "words" / NEW_WORD, np.random.default_rng(0), 2)
    expect_error(r"'warble': only 2 recording\(s\); record at least 3", base=banked_model,
                 words_dir=tmp_path / "words", out=tmp_path / "o.pt")
    assert not (tmp_path / "o.pt").exists()


def test_silent_and_clipped_recordings_are_named(banked_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "words" / NEW_WORD
    write_takes(folder, rng, 4)
    sf.write(folder / "quiet.wav", np.zeros(SR, dtype=np.float32), SR)
    loud = np.clip(make_take(rng) * 20, -1, 1)
    sf.write(folder / "loud.wav", loud, SR, subtype="FLOAT")
    with pytest.raises(FinetuneError) as caught:
        finetune(base=banked_model, words_dir=tmp_path / "words", out=tmp_path / "o.pt")
    message = str(caught.value)
    assert f"{folder / 'quiet.wav'}: silent" in message
    assert f"{folder / 'loud.wav'}: clipped" in message
    assert "2 problems" in message


def test_existing_and_reserved_and_invalid_words(banked_model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    takes = [make_take(rng) for _ in range(3)]
    expect_error("'rise' is already a word of the base model", base=banked_model, words_dir={"rise": takes},
                 out=tmp_path / "o.pt")
    expect_error("reserved", base=banked_model, words_dir={"_silence_": takes}, out=tmp_path / "o.pt")
    expect_error("not a valid word name", base=banked_model, words_dir={"two words": takes}, out=tmp_path / "o.pt")
    (tmp_path / "empty").mkdir()
    expect_error("no word folders", base=banked_model, words_dir=tmp_path / "empty", out=tmp_path / "o.pt")


def test_missing_base_model(tmp_path: Path) -> None:
    expect_error("no base model", base=tmp_path / "nope.pt", words_dir={NEW_WORD: []}, out=tmp_path / "o.pt")


def test_unreadable_recording_is_named(banked_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "words" / NEW_WORD
    write_takes(folder, np.random.default_rng(3), 3)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    with pytest.raises(FinetuneError, match=r"broken\.wav"):
        finetune(base=banked_model, words_dir=tmp_path / "words", out=tmp_path / "o.pt")


def test_a_broken_link_among_the_takes_is_named(banked_model: Path, tmp_path: Path) -> None:
    """A take that is a dangling link (a recording moved away) is an error naming it, not silently skipped."""
    folder = tmp_path / "words" / NEW_WORD
    write_takes(folder, np.random.default_rng(5), 3)
    (folder / "moved.wav").symlink_to(tmp_path / "elsewhere" / "moved.wav")
    with pytest.raises(FinetuneError, match=r"moved\.wav: broken link \(to .*elsewhere.*which does not exist\)"):
        finetune(base=banked_model, words_dir=tmp_path / "words", out=tmp_path / "o.pt")
    assert not (tmp_path / "o.pt").exists()


def test_folders_that_differ_only_in_case_are_one_word_with_a_warning(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    write_takes(tmp_path / "words" / "Warble", rng, 3)
    write_takes(tmp_path / "words" / "warble", rng, 3)
    recordings, warnings = load_recordings(tmp_path / "words", sample_rate=SR, clip_seconds=1.0)
    assert {r.word for r in recordings} == {NEW_WORD} and len(recordings) == 6
    assert any("'Warble' and 'warble' are the same word 'warble'" in w for w in warnings)
    _, separate = load_recordings({"warble": [make_take(rng) for _ in range(3)]}, sample_rate=SR, clip_seconds=1.0)
    assert not any("same word" in w for w in separate)


def test_a_room_recording_too_short_and_a_folder_as_out_are_named(banked_model: Path, tmp_path: Path) -> None:
    takes = {NEW_WORD: [make_take(np.random.default_rng(4)) for _ in range(3)]}
    sf.write(tmp_path / "room.wav", np.zeros(SR // 20, dtype=np.float32), SR)  # 0.05 s: not a room recording
    expect_error(r"room\.wav: room recording too short \(0\.05 s", base=banked_model, words_dir=takes,
                 noise=tmp_path / "room.wav", out=tmp_path / "o.pt")
    (tmp_path / "models").mkdir()
    expect_error(r"models: is a folder; give the new model's file name", base=banked_model, words_dir=takes,
                 out=tmp_path / "models", overwrite=True)
    assert not (tmp_path / "o.pt").exists()


def test_command_line_values_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0 epochs or 0 rehearsal clips per class is a usage error naming the option, not torch's message."""
    for argv, option in ((["--words", str(tmp_path), "--epochs", "0"], "--epochs"),
                         (["--make-bank", str(tmp_path), "--per-class", "0"], "--per-class")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert f"argument {option}: must be a positive integer, not '0'" in capsys.readouterr().err
    take = tmp_path / "take.wav"
    sf.write(take, make_take(np.random.default_rng(3)), SR)
    assert main(["--words", str(take), "--out", str(tmp_path / "m.pt")]) == 1
    assert capsys.readouterr().err == f"finetune: error: {take}: a file; --words takes a folder of <word>/*.wav " \
        "recordings\n"


def _other_sound_take(rng: np.random.Generator) -> np.ndarray:
    """A take of another "word" in the same voice: the warble's carrier with a slow 4 Hz wobble."""
    seconds = rng.uniform(0.35, 0.55)
    t = np.arange(round(seconds * SR)) / SR
    freq = 1000 * rng.uniform(0.9, 1.1) + 350 * rng.uniform(0.8, 1.2) * np.sin(2 * np.pi * 4.0 * t)
    envelope = np.minimum(1.0, np.minimum(t, seconds - t) / 0.03)
    audio = (rng.standard_normal(round(1.5 * SR)) * 10 ** rng.uniform(-3.5, -2.5)).astype(np.float32)
    word = (np.sin(2 * np.pi * np.cumsum(freq) / SR) * envelope).astype(np.float32) * rng.uniform(0.1, 0.6)
    start = round(rng.uniform(0.2, 1.5 - 0.2 - word.size / SR) * SR)
    audio[start:start + word.size] += word
    return audio


def test_other_words_in_the_takes_voice_teach_the_new_word_not_to_fire_on_them(banked_model: Path,
                                                                             tmp_path: Path) -> None:
    """Without examples of the voice saying something else, the new word fires on look-alikes; --others fixes it."""
    rng = np.random.default_rng(5)
    takes = [make_take(rng) for _ in range(8)]
    others = [_other_sound_take(rng) for _ in range(12)]
    fresh = np.stack([_other_sound_take(np.random.default_rng(77 + i))[:SR] for i in range(30)])
    fired = {}
    for name, given in (("without", None), ("with", others)):
        out = tmp_path / f"{name}.pt"
        report = finetune(base=banked_model, words_dir={NEW_WORD: takes}, out=out, others=given, seed=1)
        assert report.new_word_accuracy >= 0.9
        probabilities = Classifier.from_file(out, device="cpu").probabilities(fresh)
        fired[name] = float((probabilities.argmax(axis=1) == len(LABELS)).mean())
        if given is None:
            assert report.other_false_accept_rate is None and "were not given (--others" in report.describe()
        else:  # a quarter of the pieces was held out to say how often the new word still fires on them
            assert report.other_pieces == 12 and report.other_false_accept_rate is not None  # one per take
            assert "your other words (held-out pieces" in report.describe()
    assert fired["without"] >= 0.4 and fired["with"] <= fired["without"] - 0.25, fired


def test_other_words_folder_and_command_line(banked_model: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(6)
    words = tmp_path / "words"
    write_takes(words / NEW_WORD, rng, 6)
    (words / "_other_").mkdir()
    sf.write(words / "_other_" / "talking.wav", np.concatenate([_other_sound_take(rng) for _ in range(6)]), SR)
    out = tmp_path / "m.pt"
    assert main(["--base", str(banked_model), "--words", str(words), "--out", str(out), "--quiet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["new_words"] == [NEW_WORD]  # _other_ is no word to learn
    assert report["other_pieces"] >= 6 and report["other_false_accept_rate"] is not None
    from speechrnn.info import format_info, model_info

    shown = f"on your other words {100 * report['other_false_accept_rate']:.2f}%"
    assert shown in format_info(model_info(out))  # `speechrnn info` shows it too
    assert main(["--base", str(banked_model), "--words", str(words), "--out", str(tmp_path / "n.pt"), "--quiet",
                 "--others", str(tmp_path / "nowhere.wav")]) == 1
    assert f"{tmp_path / 'nowhere.wav'}: other words file or folder not found" in capsys.readouterr().err

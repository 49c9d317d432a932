"""The "Teach a word" dialog driven like a user would, with file-backed audio instead of a microphone."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from synthetic import LABELS, make_class_clip
from test_finetune import (  # noqa: F401
    NEW_WORD,
    banked_model,
    make_take,
    private_cache,
    rehearsal_tree,
)

from gui.teach import TeachWordDialog, default_model_name
from speechrnn.inference import Classifier
from speechrnn.microphone import FileSource
from speechrnn.streaming import StreamingRecognizer
from training.finetune import FinetuneConfig

SR = 16000


class ScriptedSources:
    """A ``source_factory`` that plays the queued arrays, one per opened source, as fast as read."""

    def __init__(self) -> None:
        self.queue: list[np.ndarray] = []
        self.opened = 0

    def __call__(self, device: str | int | None, sample_rate: int) -> FileSource:
        assert sample_rate == SR
        self.opened += 1
        return FileSource(self.queue.pop(0), sample_rate=sample_rate, realtime=False, tail_silence_seconds=0.0)


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "user"
    monkeypatch.setenv("SPEECHRNN_DATA_DIR", str(root))
    return root


@pytest.fixture
def dialog(qtbot, banked_model: Path, user_dir: Path) -> Iterator[tuple[TeachWordDialog, ScriptedSources]]:  # noqa: F811
    sources = ScriptedSources()
    answers: list[bool] = []
    widget = TeachWordDialog(
        banked_model, source_factory=sources, countdown_seconds=0, take_seconds=1.5, room_seconds=3.0,
        others_seconds=4.5,
        finetune_options={"config": FinetuneConfig(variants_per_take=32)},
        confirm=lambda _title, _text: answers.pop(0),
    )
    widget.answers = answers  # type: ignore[attr-defined]
    qtbot.addWidget(widget)
    widget.show()
    yield widget, sources
    assert widget.shutdown()


def record(qtbot, widget: TeachWordDialog, sources: ScriptedSources, audio: np.ndarray, *, room: bool = False,
           others: bool = False) -> None:
    sources.queue.append(audio)
    button = widget.room_button if room else widget.others_button if others else widget.record_button
    assert button.isEnabled()
    opened = sources.opened
    from PySide6.QtCore import Qt

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: sources.opened == opened + 1 and not widget.is_recording, timeout=5000)


def _spoken_other(rng: np.random.Generator) -> np.ndarray:
    """1.5 s with another "word" in it: a 300-450 Hz buzz burst, nothing like the warble or the built-ins."""
    audio = (rng.standard_normal(round(1.5 * SR)) * 0.002).astype(np.float32)
    t = np.arange(round(rng.uniform(0.3, 0.5) * SR)) / SR
    burst = np.sign(np.sin(2 * np.pi * rng.uniform(300, 450) * t)) * np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.03)
    start = round(rng.uniform(0.3, 0.6) * SR)
    audio[start:start + t.size] += (0.3 * burst).astype(np.float32)
    return audio


def stream_detections(classifier: Classifier, audio: np.ndarray) -> list[str]:
    """Labels a live recognizer reports when ``audio`` is played to it through an audio source."""
    recognizer = StreamingRecognizer(classifier, hop_seconds=0.05)
    labels = []
    with FileSource(audio, sample_rate=SR, realtime=False, tail_silence_seconds=1.0) as source:
        while (block := source.read(0.0)) is not None:
            labels += [d.label for d in recognizer.push(block)]
    return labels


def test_record_learn_and_recognize_live(qtbot, dialog: tuple[TeachWordDialog, ScriptedSources],
                                         user_dir: Path) -> None:
    widget, sources = dialog
    rng = np.random.default_rng(21)
    from PySide6.QtCore import Qt

    assert not widget.record_button.isEnabled()  # no word yet
    qtbot.keyClicks(widget.word_edit, "Rise")
    assert not widget.record_button.isEnabled()
    assert "already knows" in widget.status_label.text()
    widget.word_edit.clear()
    qtbot.keyClicks(widget.word_edit, "Warble")
    assert widget.record_button.isEnabled() and not widget.learn_button.isEnabled()

    # a silent take is refused with a plain message and not counted
    record(qtbot, widget, sources, np.zeros(round(1.5 * SR), dtype=np.float32))
    assert widget.takes == [] and "silent" in widget.prompt_label.text()

    for i in range(8):
        record(qtbot, widget, sources, make_take(rng))
        assert len(widget.takes) == i + 1
        trimmed = widget.takes[-1].trimmed
        assert 0.3 * SR < trimmed.size < 0.9 * SR  # trimmed to the word, shown in the plot
        _x, y = widget.curve.getData()
        assert y.size == trimmed.size and np.allclose(y, trimmed)
    # redo replaces the last take
    record_redo = make_take(rng)
    sources.queue.append(record_redo)
    qtbot.mouseClick(widget.redo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.is_recording and len(widget.takes) == 8, timeout=5000)
    assert np.array_equal(widget.takes[-1].audio, record_redo[: round(1.5 * SR)])
    record(qtbot, widget, sources, (rng.standard_normal(3 * SR) * 0.003).astype(np.float32), room=True)
    assert widget.room_audio is not None and widget.room_audio.size == 3 * SR
    # the user saying other words (three other "words", 4.5 s): the new word learns not to fire on them
    record(qtbot, widget, sources, np.concatenate([_spoken_other(rng) for _ in range(3)]), others=True)
    assert widget.others_audio is not None and "other words: 4.5 s recorded" in widget.status_label.text()
    assert widget.word_edit.isEnabled() is False  # the word is fixed once takes exist

    # learning runs on a worker thread: the GUI keeps processing events and the bar moves
    values: list[int] = []
    widget.progress_bar.valueChanged.connect(values.append)
    assert widget.learn_button.isEnabled()
    with qtbot.waitSignal(widget.model_ready, timeout=180_000) as ready:
        qtbot.mouseClick(widget.learn_button, Qt.MouseButton.LeftButton)
        assert widget.is_learning and not widget.record_button.isEnabled()
    path = Path(ready.args[0])
    assert values and values[-1] == 1000 and len(set(values)) > 5
    qtbot.waitUntil(lambda: not widget.is_learning, timeout=5000)

    # the model and the takes are in the user's folder, nothing overwritten
    assert path.parent == user_dir / "models" and path.exists()
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["words"] == [NEW_WORD] and sidecar["name"] == path.stem
    takes = sorted((user_dir / "recordings" / NEW_WORD).glob("take-*.wav"))
    assert [p.name for p in takes] == [f"take-{i:03d}.wav" for i in range(1, 9)]
    assert (user_dir / "recordings" / "_background_" / "room-001.wav").exists()
    assert (user_dir / "recordings" / "_other_" / "other-001.wav").exists()
    assert widget.last_report.other_pieces == 3
    assert widget.last_report.new_word_accuracy >= 0.9
    assert widget.base_model == path and NEW_WORD in widget.base_labels
    assert widget.prompt_label.text().startswith(f"Learned '{NEW_WORD}'")  # not the last take's "more to go"
    assert widget.selected_model_name() is None and widget.models_list.count() == 1

    # the new word is detected live, next to the built-in ones, and silence stays silent
    classifier = Classifier.from_file(path, device="cpu")
    assert classifier.labels == (*LABELS, NEW_WORD)
    fresh = np.concatenate([np.zeros(SR // 2, np.float32), make_take(np.random.default_rng(500)),
                            np.zeros(SR // 2, np.float32)])
    assert NEW_WORD in stream_detections(classifier, fresh)
    built_in = np.concatenate([make_class_clip("rise", np.random.default_rng(501)), np.zeros(SR // 2, np.float32)])
    detected = stream_detections(classifier, built_in)
    assert "rise" in detected and NEW_WORD not in detected
    quiet = (np.random.default_rng(502).standard_normal(3 * SR) * 0.003).astype(np.float32)
    assert stream_detections(classifier, quiet) == []


def test_my_models_rename_export_remove(qtbot, dialog: tuple[TeachWordDialog, ScriptedSources],
                                        user_dir: Path, banked_model: Path, tmp_path: Path) -> None:  # noqa: F811
    from speechrnn import userdata

    widget, _ = dialog
    for name in ("mine", "other"):
        path = userdata.model_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(banked_model, path)
        userdata.write_model_sidecar(path, name=name, words=["w"])
    widget.refresh_models()
    assert widget.models_list.count() == 2
    assert widget.select_model("mine")
    assert widget.use_button.isEnabled()

    with qtbot.waitSignal(widget.model_ready) as used:
        widget.use_button.click()
    assert used.args == [str(userdata.model_path("mine"))]
    assert widget.base_model == userdata.model_path("mine") and "rise" in widget.base_labels

    assert not widget.rename_selected_model("other")  # taken: refused, both files intact
    assert "already exists" in widget.last_error
    assert widget.rename_selected_model("renamed")
    assert widget.selected_model_name() == "renamed" and widget.base_model == userdata.model_path("renamed")

    target = tmp_path / "export.pt"
    target.write_bytes(b"keep me")
    widget.answers.append(False)  # "Replace file?" -> No
    assert widget.export_selected_model(target) is None and target.read_bytes() == b"keep me"
    widget.answers.append(True)
    assert widget.export_selected_model(target) == target
    assert target.read_bytes() == userdata.model_path("renamed").read_bytes()

    widget.answers.append(False)  # "Remove model?" -> No
    assert not widget.remove_selected_model() and userdata.model_path("renamed").exists()
    widget.answers.append(True)
    assert widget.remove_selected_model() and not userdata.model_path("renamed").exists()
    assert widget.models_list.count() == 1
    # new words were to be added to the removed model: they go to the model the dialog opened with
    assert widget.base_model == banked_model and widget.base_label.text() == banked_model.name
    assert f"New words now add to {banked_model.name}" in widget.report_label.text()


def test_microphone_failure_is_reported(qtbot, banked_model: Path, user_dir: Path) -> None:  # noqa: F811
    from speechrnn.errors import DeviceError

    def broken(_device: object, _rate: int) -> FileSource:
        raise DeviceError("no audio input device found")

    needed: list[bool] = []
    widget = TeachWordDialog(banked_model, source_factory=broken, countdown_seconds=0)
    widget.microphone_needed.connect(needed.append)
    qtbot.addWidget(widget)
    qtbot.keyClicks(widget.word_edit, "hello")
    widget.record_take()
    assert "no audio input device found" in widget.prompt_label.text()
    assert needed == [True, False] and not widget.is_recording and widget.record_button.isEnabled()


def test_default_model_name_is_free() -> None:
    assert default_model_name(Path("/x/default.pt"), "hello", set()) == "default+hello"
    assert default_model_name(Path("/x/default+hello.pt"), "bye", {"default+bye"}) == "default+bye-2"
    assert default_model_name(None, "hi", set()) == "model+hi"


def test_closing_while_learning_returns_at_once(qtbot, dialog: tuple[TeachWordDialog, ScriptedSources]) -> None:
    """Close (or Esc) during learning stops it and returns as soon as it stops, not after a frozen timeout."""
    import time

    from PySide6.QtCore import Qt

    widget, sources = dialog
    rng = np.random.default_rng(31)
    qtbot.keyClicks(widget.word_edit, "Warble")
    for _ in range(5):
        record(qtbot, widget, sources, make_take(rng))
    values: list[int] = []
    widget.progress_bar.valueChanged.connect(values.append)
    qtbot.mouseClick(widget.learn_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(values) > 2, timeout=60_000)  # learning is under way
    started = time.monotonic()
    assert widget.shutdown()
    assert time.monotonic() - started < 3.0
    # the bar no longer names the step learning stopped in
    qtbot.waitUntil(lambda: widget.progress_bar.format() == "%p%", timeout=5000)

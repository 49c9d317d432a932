"""The desktop app, driven offscreen with pytest-qt: listening, detections, files, models, recording."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("pytestqt")
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from synthetic import make_class_clip, place_clips

from gui.main_window import MainWindow
from speechrnn.decisions import DecisionConfig
from speechrnn.errors import DeviceError
from speechrnn.microphone import FileSource, InputDevice

VIRTUAL_MIC = Path("/work/shared/tools/virtual-mic.sh")
CLIP_DEVICE = InputDevice(index=0, name="test clip", channels=1, default_samplerate=16000.0, is_default=True)


@pytest.fixture(autouse=True)
def isolated_settings_path(tmp_path: Path) -> None:
    """Any QSettings created without a file (the app's default) lands in a temporary folder."""
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "user-settings"))


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """An isolated settings file."""
    return QSettings(str(tmp_path / "speechrnn-gui.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def command_audio(rng: np.random.Generator) -> np.ndarray:
    """Half a second of silence, then a one-second synthetic "rise" clip (16 kHz)."""
    return np.concatenate([np.zeros(8000, dtype=np.float32), make_class_clip("rise", rng)])


@pytest.fixture
def rise_wav(tmp_path: Path, command_audio: np.ndarray) -> Path:
    """The command clip as a WAV file."""
    path = tmp_path / "rise.wav"
    sf.write(path, command_audio, 16000)
    return path


def file_factory(audio: np.ndarray | Path, **options: object):
    """A source factory playing ``audio`` through the microphone interface."""

    def factory(device: object, sample_rate: int) -> FileSource:
        return FileSource(audio, sample_rate=sample_rate, **options)

    return factory


def clip_lister(refresh: bool) -> list[InputDevice]:
    """The input picker's list when the input is a file."""
    return [CLIP_DEVICE]


def make_window(qtbot, settings: QSettings, model: Path | None, *, wait: bool = True, **kwargs: object) -> MainWindow:
    """A shown window; waits until ``model`` is loaded unless ``wait`` is False."""
    kwargs.setdefault("device_lister", clip_lister)
    window = MainWindow(settings=settings, model_path=model, compute_device="cpu", **kwargs)
    qtbot.addWidget(window)
    window.show()
    if model is not None and wait:
        qtbot.waitUntil(lambda: window.classifier is not None, timeout=20000)
    return window


def write_folder(root: Path, rng: np.random.Generator) -> Path:
    """A folder with two good clips (rise, fall), a corrupt WAV and a long recording (rise, then tone)."""
    folder = root / "clips"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a_rise.wav", make_class_clip("rise", rng), 16000)
    sf.write(folder / "sub" / "b_fall.wav", make_class_clip("fall", rng), 16000)
    (folder / "c_broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk-not-audio")
    long, _ = place_clips([("rise", 1.0), ("tone", 4.0)], seconds=6.0, rng=rng)
    sf.write(folder / "d_long.flac", long, 16000)
    (folder / "notes.txt").write_text("not audio, not listed")
    return folder


def drop_paths(window: MainWindow, paths: list[Path]) -> None:
    """Drag ``paths`` onto the window and drop them, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    actions = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(pos.toPoint(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()


# ------------------------------------------------------------------------------------------ window


def test_window_builds_and_shows_the_model(qtbot, settings, synthetic_model) -> None:
    import torch

    window = make_window(qtbot, settings, synthetic_model)
    assert window.prob_bars.labels == ("_silence_", "_unknown_", "rise", "fall", "tone", "buzz")
    assert "rise" in window.model_fields["labels"].text()
    from speechrnn.checkpoint import load_checkpoint

    recorded = load_checkpoint(synthetic_model).summary["metrics"]["test_accuracy"]
    assert window.model_fields["accuracy"].text() == f"test {recorded:.1%}"  # from the model file's summary
    assert window.listen_button.isEnabled()
    gpu = window.compute_combo.model().item(1)
    assert gpu.isEnabled() == torch.cuda.is_available()
    if not torch.cuda.is_available():
        assert "CUDA" in window.compute_combo.toolTip()
    assert window.device_combo.currentText() == "test clip (default)"
    assert not window.banner.isVisible()


def test_buttons_name_their_shortcuts_and_the_spectrogram_takes_no_focus(qtbot, settings, synthetic_model) -> None:
    """Start listening and Record did not say Ctrl+L / Ctrl+R; Tab stopped on the (keyboard-less) spectrogram."""
    window = make_window(qtbot, settings, synthetic_model)
    assert "Ctrl+L" in window.listen_button.toolTip()
    assert "Ctrl+R" in window.record_button.toolTip() and "Ctrl+R" in window.record_tab_button.toolTip()
    assert window.spectrogram.focusPolicy() == Qt.FocusPolicy.NoFocus


def test_int8_backend_from_the_environment_is_used_and_shown(qtbot, settings, synthetic_model, monkeypatch) -> None:
    monkeypatch.setenv("SPEECHRNN_BACKEND", "int8")
    window = make_window(qtbot, settings, synthetic_model)
    assert window.classifier is not None and window.classifier.backend == "int8"
    assert window.status_labels["compute"].text() == "Compute: CPU (int8)"
    assert window.model_fields["compute"].text() == "CPU (int8)"


def test_missing_default_model_says_so_and_keeps_working(qtbot, settings, tmp_path, rng) -> None:
    window = make_window(qtbot, settings, tmp_path / "absent.pt", wait=False)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10000)
    assert "no model loaded" in window.banner.text.lower()
    assert window.classifier is None
    assert not window.listen_button.isEnabled()
    assert window.start_listening() is False


def test_listening_to_a_file_detects_the_command(qtbot, settings, synthetic_model, command_audio) -> None:
    window = make_window(
        qtbot,
        settings,
        synthetic_model,
        source_factory=file_factory(command_audio, realtime=True, tail_silence_seconds=1.0),
    )
    seen: list[float] = []

    def rise_shown() -> bool:
        seen.append(window.prob_bars.values()["rise"])
        return bool(window.log_entries) and max(seen) > 0.5

    assert window.start_listening()
    assert window.listen_button.isChecked()
    painted, started = window.paint_count, time.monotonic()
    qtbot.waitUntil(rise_shown, timeout=10000)
    fps = (window.paint_count - painted) / (time.monotonic() - started)
    assert fps > 10, f"the live view repainted only {fps:.1f} times a second"
    entry = window.log_entries[0]
    assert entry.label == "rise"
    assert entry.score > window.threshold
    assert 0.5 < entry.stream_time < 2.6
    assert window.detections_table.rowCount() == 1
    assert window.detections_table.item(0, 2).text() == "rise"
    assert window.decision_display.label == "rise"
    assert max(seen) > 0.5 and min(seen) < max(seen)  # the bars moved
    qtbot.waitUntil(lambda: not window.is_listening, timeout=10000)  # the file ended
    assert window.spectrogram.frames_received >= 240  # 2.5 s of audio at 100 frames/s
    assert "ms/hop" in window.status_labels["inference"].text()
    assert window.status_labels["inference"].text() != "Inference: — ms/hop"
    assert not window.listen_button.isChecked()


def test_status_bar_shows_the_device_rate_and_the_model_rate(qtbot, settings, synthetic_model, command_audio) -> None:
    """A 44.1 kHz microphone resampled for a 16 kHz model: the status bar says both."""

    def device_at_44k(device: object, sample_rate: int) -> FileSource:
        source = FileSource(command_audio, sample_rate=sample_rate, realtime=True)  # still open when checked
        source.native_rate = 44100  # as a Microphone opened at the device's own rate reports it
        return source

    window = make_window(qtbot, settings, synthetic_model, source_factory=device_at_44k)
    assert window.start_listening()
    qtbot.waitUntil(lambda: "Hz →" in window.status_labels["rate"].text(), timeout=10000)
    assert window.status_labels["rate"].text() == "44100 Hz → 16000 Hz"


def test_listening_thread_runs_torch_on_one_thread(qtbot, settings, synthetic_model, command_audio,
                                                   monkeypatch) -> None:
    import torch

    from speechrnn.inference import Classifier

    monkeypatch.setenv("SPEECHRNN_BACKEND", "torch")  # the default (ONNX Runtime) sets its own threads
    seen: list[int] = []

    class RecordingSource(FileSource):
        def start(self) -> None:  # called on the listening thread, before the first hop
            seen.append(torch.get_num_threads())
            super().start()

    window = make_window(qtbot, settings, synthetic_model,
                         source_factory=lambda device, rate: RecordingSource(command_audio, sample_rate=rate))
    assert isinstance(window.classifier, Classifier) and window.classifier.backend == "torch"
    assert window.start_listening()
    qtbot.waitUntil(lambda: not window.is_listening, timeout=10000)
    # one intra-op thread where the hops run, as in `speechrnn listen`: with more, each hop's features
    # waited for a core the GUI thread was painting on (3x slower, and more CPU)
    assert seen == [1]


APP_LOAD_SCRIPT = """
import json, sys
from PySide6.QtCore import QSettings
from gui.app import create_application, process_events_until
from gui.main_window import MainWindow
app = create_application([])
window = MainWindow(settings=QSettings(sys.argv[2], QSettings.Format.IniFormat), model_path=sys.argv[1],
                    compute_device="auto", device_lister=lambda refresh: [])
window.show()
assert process_events_until(app, lambda: window.classifier is not None or bool(window.last_error), 60.0)
print(json.dumps({"torch": "torch" in sys.modules, "classifier": type(window.classifier).__name__,
                  "fields": {key: label.text() for key, label in window.model_fields.items()}}))
window.close()
"""


@pytest.mark.timeout(240)
def test_the_app_opens_a_model_without_torch_once_its_export_is_cached(synthetic_model, tmp_path, repo_env) -> None:
    """Importing torch was about half of the app's start; the model panel reads the export's metadata."""
    from gui.workers import summarize_model
    from speechrnn.inference import Classifier
    from speechrnn.onnx_classifier import gpu_possible

    if gpu_possible():
        pytest.skip("a GPU driver is loaded here: the app asks PyTorch whether the GPU is usable")
    env = {**repo_env, "SPEECHRNN_CACHE": str(tmp_path / "cache"), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("SPEECHRNN_BACKEND", None)
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", APP_LOAD_SCRIPT, str(synthetic_model), str(tmp_path / "s.ini")],
                              env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["torch"] and not second["torch"]  # the first start exports and checks the model with PyTorch
    assert first["classifier"] == second["classifier"] == "OnnxClassifier"
    assert second["fields"] == first["fields"] and second["fields"]["status"] == "Loaded"
    torch_facts = summarize_model(Classifier.from_file(synthetic_model, device="cpu", backend="torch"))
    for key, text in torch_facts.items():  # what the panel showed when the app loaded with PyTorch
        assert second["fields"][key] == text, key
    assert second["fields"]["compute"] == "CPU"


def test_detection_log_exports_csv_and_clears(qtbot, settings, synthetic_model, command_audio, tmp_path) -> None:
    window = make_window(qtbot, settings, synthetic_model, source_factory=file_factory(command_audio, realtime=False))
    window.start_listening()
    qtbot.waitUntil(lambda: not window.is_listening and bool(window.log_entries), timeout=10000)
    out = window.export_log_csv(tmp_path / "log.csv")
    rows = list(csv.DictReader(out.open()))
    assert [r["command"] for r in rows] == ["rise"]
    assert float(rows[0]["confidence"]) > 0.6
    window.clear_log()
    assert window.detections_table.rowCount() == 0 and not window.log_entries


def test_threshold_change_reaches_the_running_recognizer(qtbot, settings, synthetic_model, rng) -> None:
    audio = np.concatenate([np.zeros(24000, dtype=np.float32), make_class_clip("rise", rng)])
    window = make_window(qtbot, settings, synthetic_model, source_factory=file_factory(audio, realtime=True))
    window.start_listening()
    window.threshold_slider.setValue(99)  # while listening, before the command arrives
    window.smoothing_spin.setValue(1.5)
    qtbot.waitUntil(lambda: not window.is_listening, timeout=10000)
    assert [e for e in window.log_entries if e.score <= 0.99] == []
    assert float(settings.value("threshold")) == pytest.approx(0.99)
    assert float(settings.value("smoothing")) == pytest.approx(1.5)


# ------------------------------------------------------------------------------------------ files


def test_dropping_a_folder_classifies_it_with_errors_shown(qtbot, settings, synthetic_model, tmp_path, rng) -> None:
    window = make_window(qtbot, settings, synthetic_model)
    folder = write_folder(tmp_path, rng)
    drop_paths(window, [folder])
    assert window.is_classifying()
    qtbot.waitUntil(lambda: not window.is_classifying(), timeout=20000)
    results = {Path(r.path).name: r for r in window.file_results}
    assert set(results) == {"a_rise.wav", "b_fall.wav", "c_broken.wav", "d_long.flac"}
    assert [d.label for d in results["d_long.flac"].detections] == ["rise", "tone"]
    assert results["a_rise.wav"].label == "rise"
    assert results["b_fall.wav"].label == "fall"
    assert results["c_broken.wav"].label is None
    assert results["c_broken.wav"].error  # the reason, e.g. "truncated or corrupt header"
    table = window.files_table
    assert table.rowCount() == 4
    rows = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    assert set(rows) == {"a_rise.wav", str(Path("sub") / "b_fall.wav"), "c_broken.wav", "d_long.flac"}
    assert table.item(rows["d_long.flac"], 3).text().startswith("found rise at ")
    assert table.item(rows["c_broken.wav"], 1).text() == "error"
    assert table.item(rows["c_broken.wav"], 3).text() in results["c_broken.wav"].error
    assert table.item(rows["c_broken.wav"], 3).toolTip() == results["c_broken.wav"].error
    assert table.item(rows["a_rise.wav"], 1).text() == "rise"
    assert table.item(rows["a_rise.wav"], 3).text().startswith("top: rise")
    # the corrupt file was counted as classified ("4 files classified, 1 with errors")
    assert window.files_summary.text() == "3 files classified, 1 could not be read"
    out = window.export_results(tmp_path / "results.csv")
    exported = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert exported["a_rise.wav"]["label"] == "rise"
    assert exported["c_broken.wav"]["error"]
    assert exported["b_fall.wav"]["top_k"].startswith("fall:")


def test_exported_results_are_the_command_lines_csv_and_json(qtbot, settings, synthetic_model, tmp_path,
                                                             rng) -> None:
    """The Files tab exported its own CSV (path,label,score,top_k,detections,error; detections as
    label@time:score) and no JSON; it now writes what `speechrnn classify --format csv|json` writes."""
    import io

    from speechrnn.classify import CSV_COLUMNS, run_classify

    window = make_window(qtbot, settings, synthetic_model)
    folder = write_folder(tmp_path, rng)
    window.classify_paths([folder])
    qtbot.waitUntil(lambda: not window.is_classifying(), timeout=20000)
    assert len(window.file_results) == 4
    for fmt in ("csv", "json"):
        app = window.export_results(tmp_path / f"app.{fmt}")  # the format follows the extension
        cli = tmp_path / f"cli.{fmt}"
        status = run_classify(paths=[folder], recursive=True, classifier=window.classifier, fmt=fmt, output=cli,
                              stdout=io.StringIO(), stderr=io.StringIO())
        assert status == 1  # the corrupt file
        assert app.read_text(encoding="utf-8") == cli.read_text(encoding="utf-8"), fmt
    with (tmp_path / "app.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    long = next(row for row in rows if row[0].endswith("d_long.flac"))
    assert long[CSV_COLUMNS.index("n_detections")] == "2"
    assert window.export_results(tmp_path / "named.txt", fmt="json").read_text() == (tmp_path / "app.json").read_text()


def test_files_progress_is_empty_until_a_run_and_after_clear(qtbot, settings, synthetic_model, tmp_path,
                                                              rng) -> None:
    """A fresh window said "0 / 1 files", and Clear left the last run's "2 / 2 files"."""
    window = make_window(qtbot, settings, synthetic_model)
    assert window.files_progress.text() == ""
    clips = [tmp_path / "a_rise.wav", tmp_path / "b_fall.wav"]
    for clip, kind in zip(clips, ("rise", "fall"), strict=True):
        sf.write(clip, make_class_clip(kind, rng), 16000)
    window.classify_paths(clips)
    qtbot.waitUntil(lambda: not window.is_classifying(), timeout=20000)
    assert window.files_progress.text() == "2 / 2 files"
    window.files_summary.setText("28 files classified, 1 could not be read")  # wraps: the window stays narrow
    assert window.files_summary.minimumSizeHint().width() < window.files_summary.fontMetrics().horizontalAdvance(
        window.files_summary.text())
    window.clear_results()
    assert window.files_progress.text() == "" and window.files_summary.text() == ""
    assert window.files_table.rowCount() == 0


def table_rows(table) -> list[tuple[str, ...]]:
    """The table's cells' texts, row by row, as shown."""
    return [tuple(table.item(r, c).text() for c in range(table.columnCount())) for r in range(table.rowCount())]


def test_files_table_sorts_by_a_clicked_header_and_keeps_rows_whole(qtbot, settings, synthetic_model, tmp_path,
                                                                    rng) -> None:
    """The Files table could not be sorted; rows added while it is sorted must land whole, in place."""
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QStyleOptionViewItem

    window = make_window(qtbot, settings, synthetic_model)
    window.classify_paths([write_folder(tmp_path / "first", rng)])
    qtbot.waitUntil(lambda: not window.is_classifying(), timeout=20000)
    table = window.files_table
    header = table.horizontalHeader()
    assert header.sortIndicatorSection() == -1  # in the order classified until the user sorts
    click = QPoint(header.sectionViewportPosition(2) + 10, 5)
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=click)  # on "Confidence"
    assert header.sortIndicatorSection() == 2

    def check() -> None:
        rows = table_rows(table)
        scores = [-1.0 if row[2] == "—" else float(row[2].rstrip("%")) for row in rows]
        descending = header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
        assert scores == sorted(scores, reverse=descending)  # by value: "9.5%" sorts below "85.0%"
        by_name = {Path(r.path).name: r for r in window.file_results}
        for name, command, confidence, _ in rows:  # each row's cells are one file's
            record = by_name[Path(name).name]
            assert command == (record.label or "error")
            assert confidence == ("—" if record.score is None else f"{record.score * 100:.1f}%")

    check()
    second = tmp_path / "second"
    second.mkdir()
    for i, kind in enumerate(("tone", "buzz", "rise")):
        sf.write(second / f"z{i}_{kind}.wav", make_class_clip(kind, rng) * (0.3 + 0.3 * i), 16000)
    window.classify_paths([second])  # rows arrive while the table is sorted
    qtbot.waitUntil(lambda: not window.is_classifying(), timeout=20000)
    assert table.rowCount() == 7
    check()
    click = QPoint(header.sectionViewportPosition(1) + 10, 5)
    QTest.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=click)  # on "Command": sorted as text
    commands = [row[1] for row in table_rows(table)]
    assert commands == sorted(commands, reverse=header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder)
    option = QStyleOptionViewItem()
    table.itemDelegateForColumn(0).initStyleOption(option, table.model().index(0, 0))
    assert option.textElideMode == Qt.TextElideMode.ElideMiddle  # a long path keeps its file name


def test_classifying_without_a_model_is_refused(qtbot, settings, tmp_path, rng) -> None:
    window = make_window(qtbot, settings, tmp_path / "absent.pt", wait=False)
    assert window.classify_paths([write_folder(tmp_path, rng)]) is False
    assert "open a model file" in window.last_error


def write_long_scan(root: Path, rng: np.random.Generator, *, minutes: float = 20.0) -> list[Path]:
    """A clip (sorted first) and a long silent recording whose scan takes many seconds (a few KB of FLAC)."""
    root.mkdir(parents=True, exist_ok=True)
    clip = root / "a_rise.wav"
    sf.write(clip, make_class_clip("rise", rng), 16000)
    long = root / "b_long.flac"
    block = np.zeros(16000 * 60, dtype=np.float32)
    with sf.SoundFile(long, "w", samplerate=16000, channels=1, format="FLAC") as handle:
        for _ in range(round(minutes)):
            handle.write(block)
    return [clip, long]


def test_cancelling_stops_a_long_scan_promptly(qtbot, settings, synthetic_model, tmp_path, rng) -> None:
    """Cancel interrupts the scan of a long recording (it was only checked between files)."""
    window = make_window(qtbot, settings, synthetic_model)
    clip, _long = write_long_scan(tmp_path / "files", rng)
    window.classify_paths([tmp_path / "files"])
    qtbot.waitUntil(lambda: window.files_summary.text().startswith("Scanning b_long.flac: "), timeout=20000)
    window.cancel_classification()
    qtbot.waitUntil(lambda: not window.is_classifying(), timeout=2000)
    assert [Path(r.path).name for r in window.file_results] == [clip.name]  # no half-scanned row, no error row
    assert window.files_table.rowCount() == 1
    assert window.files_summary.text() == "Cancelled: 1 file classified"
    assert window.files_progress.text() == "Cancelled at 1 / 2 files"


def test_closing_during_a_long_scan_stops_and_joins_the_thread(qtbot, settings, synthetic_model, tmp_path,
                                                              rng) -> None:
    """Closing the window mid-scan used to leave the thread running (and abort: 'QThread: Destroyed while ...')."""
    window = make_window(qtbot, settings, synthetic_model)
    write_long_scan(tmp_path / "files", rng)
    window.classify_paths([tmp_path / "files"])
    qtbot.waitUntil(lambda: len(window.file_results) == 1, timeout=20000)  # the long file's scan is next
    threads = [runner.thread for runner in window._threads]
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 2.0
    assert all(thread.isFinished() for thread in threads)
    assert not window.is_busy()


# ------------------------------------------------------------------------------------------ models


def test_bad_model_is_refused_and_the_old_one_keeps_working(
    qtbot, settings, synthetic_model, tmp_path, command_audio
) -> None:
    window = make_window(qtbot, settings, synthetic_model, source_factory=file_factory(command_audio, realtime=False))
    old = window.classifier
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"this is not a model file at all")
    window.open_model(bad)
    qtbot.waitUntil(lambda: "garbage.pt" in window.last_error, timeout=10000)
    assert window.classifier is old
    assert window.model_path == synthetic_model
    assert "garbage.pt" in window.banner.text and window.banner.level == "error"
    assert window.model_fields["file"].text() == str(synthetic_model)
    window.start_listening()  # the old model still recognizes
    qtbot.waitUntil(lambda: not window.is_listening, timeout=10000)
    assert [e.label for e in window.log_entries] == ["rise"]


def test_model_choice_is_remembered(qtbot, settings, synthetic_model) -> None:
    window = make_window(qtbot, settings, synthetic_model)
    # a first start uses the library's decision defaults (chosen on the validation stream)
    defaults = DecisionConfig()
    assert window.decision_config() == defaults
    assert window.threshold_label.text() == f"{defaults.threshold:.2f}"
    # the shortest smoothing (0.1 s holds two results at the 0.1 s hop) still detects
    window.smoothing_spin.setValue(0.1)
    assert window.decision_config().minimum_count == 2
    window.decision_config().check_hop(window.hop_seconds)
    window.smoothing_spin.setValue(defaults.average_window_seconds)
    window.threshold_slider.setValue(72)
    window.close()
    again = make_window(qtbot, settings, None)
    qtbot.waitUntil(lambda: again.classifier is not None, timeout=20000)
    assert again.model_path == synthetic_model
    assert again.threshold == pytest.approx(0.72)
    assert settings.value("input_device") == "test clip"
    assert settings.value("compute_device") == "cpu"


def test_the_shipped_model_is_remembered_as_the_default_not_as_a_path(qtbot, settings, tmp_path) -> None:
    from speechrnn import default_model_path

    # a start of the app from another copy (an old checkout) remembered that copy's default model
    old_copy = tmp_path / "old-checkout" / "speechrnn" / "models" / "default.pt"
    old_copy.parent.mkdir(parents=True)
    shutil.copy(default_model_path(), old_copy)
    settings.setValue("model_path", str(old_copy))
    window = make_window(qtbot, settings, None)
    qtbot.waitUntil(lambda: window.classifier is not None, timeout=20000)
    assert window.model_path.resolve() == default_model_path().resolve()  # this installation's own
    assert settings.value("model_path") == ""  # and the next start takes whichever default is installed then
    window.close()
    assert settings.value("model_path") == ""


# ------------------------------------------------------------------------------------------ audio problems


def test_no_input_device_is_reported_and_files_still_work(qtbot, settings, synthetic_model, tmp_path, rng) -> None:
    def no_device(device: object, sample_rate: int) -> FileSource:
        raise DeviceError("no audio input device found (is a microphone connected and a sound server running?)")

    def no_inputs(refresh: bool) -> list[InputDevice]:
        return []

    window = make_window(qtbot, settings, synthetic_model, source_factory=no_device, device_lister=no_inputs)
    qtbot.waitUntil(lambda: "No audio input device" in window.banner.text, timeout=10000)
    assert window.device_combo.currentText() == "No input device found"
    # nothing to open: Start listening and Record wait for a refresh that finds an input, and say so
    assert not window.listen_button.isEnabled() and not window.record_button.isEnabled()
    assert window.listen_button.toolTip() == "Not now: no audio input device found; connect a microphone and press ⟳"
    window.start_listening()  # called anyway (a script): the input's own error, as before
    qtbot.waitUntil(lambda: not window.is_listening, timeout=10000)
    assert "no audio input device found" in window.banner.text
    assert window.banner.level == "error"
    assert window.decision_display.idle_text == "Input failed"
    window.classify_paths([write_folder(tmp_path, rng)])
    qtbot.waitUntil(lambda: not window.is_classifying(), timeout=20000)
    labels = {Path(r.path).name: r.label for r in window.file_results}
    assert (labels["a_rise.wav"], labels["b_fall.wav"], labels["c_broken.wav"]) == ("rise", "fall", None)


def test_unreadable_folder_is_an_error_row_and_the_rest_classified(qtbot, settings, synthetic_model, tmp_path,
                                                                   rng, deny_listing) -> None:
    folder = write_folder(tmp_path, rng)
    deny_listing(folder / "sub")
    window = make_window(qtbot, settings, synthetic_model)
    window.classify_paths([folder])
    qtbot.waitUntil(lambda: not window.is_classifying(), timeout=20000)
    rows = {Path(r.path).name: (r.label, r.error) for r in window.file_results}
    assert rows["sub"] == (None, "cannot list folder (Permission denied)")
    assert rows["a_rise.wav"][0] == "rise" and "b_fall.wav" not in rows
    assert window.files_summary.text() == "2 files classified, 2 could not be read"  # the folder, the corrupt file


def test_missing_input_device_falls_back_to_the_system_default_and_says_so(qtbot, settings, synthetic_model) -> None:
    """A device asked for (or remembered) that is not there now: the system default, with a warning."""
    usb = InputDevice(index=0, name="USB mic", channels=1, default_samplerate=48000.0, is_default=False)
    system = InputDevice(index=1, name="default", channels=2, default_samplerate=44100.0, is_default=True)

    def lister(refresh: bool) -> list[InputDevice]:
        return [usb, system]

    window = make_window(qtbot, settings, synthetic_model, device_lister=lister, input_device="nosuchmic")
    qtbot.waitUntil(lambda: window.device_combo.count() == 2, timeout=10000)
    assert window.device_combo.currentData() == "default"
    assert "'nosuchmic' not found: using default" in window.banner.text and window.banner.level == "warning"
    window.close()
    # unplugged, then plugged in again and refreshed: the device is taken back, the warning goes
    present = [system]
    window = make_window(qtbot, settings, synthetic_model, device_lister=lambda refresh: list(present),
                         input_device="USB mic")
    qtbot.waitUntil(lambda: window.device_combo.count() == 1, timeout=10000)
    assert "'USB mic' not found" in window.banner.text
    window.refresh_devices()  # still unplugged: still wanted, still said
    qtbot.waitUntil(lambda: window.refresh_button.isEnabled(), timeout=10000)
    assert "'USB mic' not found" in window.banner.text
    present.insert(0, usb)
    window.refresh_devices()
    qtbot.waitUntil(lambda: window.device_combo.count() == 2, timeout=10000)
    assert window.device_combo.currentData() == "USB mic" and "not found" not in window.banner.text
    window.close()
    again = make_window(qtbot, settings, synthetic_model, device_lister=lister, input_device="usb")
    qtbot.waitUntil(lambda: again.device_combo.count() == 2, timeout=10000)
    assert again.device_combo.currentData() == "USB mic" and "not found" not in again.banner.text


def test_choosing_another_input_device_answers_the_not_found_banner(qtbot, settings, synthetic_model) -> None:
    """The "not found: choose another in the list" banner stayed after the user chose another device."""
    usb = InputDevice(index=0, name="USB mic", channels=1, default_samplerate=48000.0, is_default=False)
    system = InputDevice(index=1, name="default", channels=2, default_samplerate=44100.0, is_default=True)
    window = make_window(qtbot, settings, synthetic_model, device_lister=lambda refresh: [usb, system],
                         input_device="nosuchmic")
    qtbot.waitUntil(lambda: window.device_combo.count() == 2, timeout=10000)
    assert "'nosuchmic' not found" in window.banner.text
    window.device_combo.setCurrentIndex(0)  # as the user would, in the list
    assert window.selected_input_device == "USB mic"
    assert "not found" not in window.banner.text and not window.banner.isVisible()


def test_a_recording_failure_is_answered_by_the_next_successful_recording(qtbot, settings, synthetic_model,
                                                                        command_audio, tmp_path) -> None:
    """'Recording failed' stayed in the banner after a later recording was saved, and 'Recording 1 s…'
    stayed in the status bar after the failure."""
    fail = [True]

    def factory(device: object, sample_rate: int) -> FileSource:
        if fail[0]:
            raise DeviceError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        return FileSource(command_audio, sample_rate=sample_rate, realtime=False)

    window = make_window(qtbot, settings, synthetic_model, source_factory=factory)
    window.record_folder.setText(str(tmp_path / "recordings"))
    assert window.record_clip()
    qtbot.waitUntil(lambda: not window.is_recording() and "Recording failed" in window.banner.text, timeout=10000)
    assert window.statusBar().currentMessage().startswith("Recording failed: ")
    fail[0] = False
    assert window.record_clip()
    qtbot.waitUntil(lambda: not window.is_recording(), timeout=10000)
    assert window.record_status.text().startswith("Saved ")
    assert "Recording failed" not in window.banner.text and not window.banner.isVisible()


def test_a_failed_startup_load_replaces_the_loading_message(qtbot, settings, tmp_path) -> None:
    """The status bar said "Loading model …" for good when the model given at start could not be loaded."""
    window = make_window(qtbot, settings, tmp_path / "absent.pt", wait=False)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10000)
    message = window.statusBar().currentMessage()
    assert not message.startswith("Loading model") and message.startswith("Model not loaded: ")


def test_a_wide_window_shows_the_whole_input_device_name(qtbot, settings, synthetic_model) -> None:
    """The input picker was capped at 260 px: "… (default)" was cut even on a 1920 px wide window."""
    mic = InputDevice(index=0, name="Built-in Microphone (Analog Stereo)", channels=2, default_samplerate=44100.0,
                      is_default=True)
    window = make_window(qtbot, settings, synthetic_model, device_lister=lambda refresh: [mic])
    qtbot.waitUntil(lambda: window.device_combo.currentData() == mic.name, timeout=10000)
    combo = window.device_combo
    assert combo.currentText() == "Built-in Microphone (Analog Stereo) (default)"
    assert combo.currentText() in combo.toolTip()  # the whole name, whatever the width
    window.resize(1920, 1200)
    qtbot.waitUntil(lambda: combo.width() >= combo.sizeHint().width(), timeout=5000)
    assert combo.sizeHint().width() > 260
    window.resize(800, 600)  # a small window keeps its toolbar: the picker does not grow past its share
    qtbot.waitUntil(lambda: combo.width() <= 260, timeout=5000)


def test_input_list_is_not_refreshed_while_an_input_is_open(qtbot, settings, synthetic_model, command_audio,
                                                            tmp_path, monkeypatch) -> None:
    """Refreshing re-initialises PortAudio, which must not happen with a stream open (it was only refused
    while listening, not during a recording or a teach take)."""
    pytest.importorskip("gui.teach")
    monkeypatch.setenv("SPEECHRNN_DATA_DIR", str(tmp_path / "user"))
    listings: list[bool] = []

    def lister(refresh: bool) -> list[InputDevice]:
        listings.append(refresh)
        return [CLIP_DEVICE]

    window = make_window(qtbot, settings, synthetic_model, device_lister=lister,
                         source_factory=file_factory(command_audio, realtime=True, loop=True))
    qtbot.waitUntil(lambda: window.refresh_button.isEnabled(), timeout=10000)

    def refused(why: str) -> None:
        assert not window.refresh_button.isEnabled() and not window.refresh_action.isEnabled()
        assert window.refresh_devices() is False
        message = window.statusBar().currentMessage()
        assert message.startswith("Cannot refresh the input devices now: ") and why in message

    window.record_folder.setText(str(tmp_path / "recordings"))
    assert window.record_clip()  # the input is opened for the recording alone
    refused("recording")
    qtbot.waitUntil(lambda: not window.is_recording(), timeout=10000)
    assert window.refresh_button.isEnabled()

    dialog = window.open_teach_dialog()
    dialog.countdown_seconds, dialog.take_seconds = 0, 0.5
    dialog.word_edit.setText("lights")
    dialog.record_take()
    assert dialog.is_recording
    refused("Teach a word")
    qtbot.waitUntil(lambda: not dialog.is_recording, timeout=10000)
    assert window.refresh_button.isEnabled()
    dialog.close()

    window.start_listening()
    refused("listening")
    window.stop_listening()
    qtbot.waitUntil(lambda: not window.is_listening, timeout=10000)
    assert listings == [False]  # only the listing at start-up, which does not re-initialise PortAudio
    assert window.refresh_devices() is True
    qtbot.waitUntil(lambda: window.refresh_button.isEnabled(), timeout=10000)
    assert listings == [False, True]


def test_no_input_is_opened_while_the_input_list_is_refreshed(qtbot, settings, synthetic_model,
                                                             command_audio) -> None:
    release = threading.Event()

    def slow_lister(refresh: bool) -> list[InputDevice]:
        if refresh:
            release.wait(10)
        return [CLIP_DEVICE]

    window = make_window(qtbot, settings, synthetic_model, device_lister=slow_lister,
                         source_factory=file_factory(command_audio, realtime=True, loop=True))
    qtbot.waitUntil(lambda: window.refresh_button.isEnabled(), timeout=10000)
    assert window.refresh_devices() is True
    assert not window.listen_button.isEnabled() and not window.record_button.isEnabled()
    assert window.start_listening() is False and window.record_clip() is False
    assert "refreshed" in window.statusBar().currentMessage()
    release.set()
    qtbot.waitUntil(lambda: window.refresh_button.isEnabled(), timeout=10000)
    assert window.listen_button.isEnabled() and window.start_listening() is True


def test_live_view_repaints_only_what_changed(qtbot) -> None:
    """The ~30 fps timer must not repaint widgets whose content is the same (the idle app used 10% of a core)."""
    from gui.widgets import DecisionDisplay, LevelMeter, ProbabilityBars

    labels = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "go", "stop")
    bars, meter, display = ProbabilityBars(), LevelMeter(), DecisionDisplay(hold_seconds=0.05)
    for widget in (bars, meter, display):
        qtbot.addWidget(widget)
        widget.resize(300, 150)
    bars.set_labels(labels)
    assert [name for name, _ in bars.rows()] == list(labels)  # every class of a 10-class model is listed
    updates: list[str] = []
    for name, widget in (("bars", bars), ("meter", meter), ("display", display)):
        widget.update = lambda name=name: updates.append(name)
    values = np.linspace(0.0, 0.5, len(labels)).astype(np.float32)
    bars.set_values(values)
    bars.set_values(values.copy())
    meter.set_level(-20.0)
    meter.grab()  # paints it: the meter knows what it shows
    meter.set_level(-20.0)
    display.tick()  # nothing shown: nothing to animate
    display.show_detection("yes", 0.9)
    display.tick()  # fading: repainted
    time.sleep(0.2)
    display.tick()  # faded out: no more repaints
    assert updates == ["bars", "meter", "display", "display"]


def test_joining_a_worker_thread_returns_when_its_work_is_done(qtbot) -> None:
    """The GUI thread waits for a device listing before the Teach a word dialog opens its input: the join
    ran its whole timeout, the GUI frozen, because the thread's quit was queued to the blocked GUI thread."""
    from gui.workers import TaskWorker, WorkerThread

    worker = TaskWorker(lambda context: time.sleep(0.2) or 1, name="listing")
    results: list[object] = []
    worker.succeeded.connect(results.append)
    runner = WorkerThread(worker)
    runner.start()
    start = time.monotonic()
    assert runner.join(timeout_ms=3000) is True  # without processing any GUI events meanwhile
    assert time.monotonic() - start < 2.0 and not runner.is_running()
    qtbot.waitUntil(lambda: results == [1], timeout=2000)  # the result still reaches the GUI thread


def test_a_long_detected_word_is_shortened_to_fit_not_clipped(qtbot) -> None:
    from PySide6.QtGui import QFont, QFontMetrics

    from gui.widgets import fit_text

    base = QFont()
    font, text = fit_text(base, "LEFT", 300, 80, bold=True)
    assert text == "LEFT" and font.pixelSize() == 80  # room enough: as asked
    font, text = fit_text(base, "LEFT", 40, 80, bold=True)
    assert text == "LEFT" and 12 <= font.pixelSize() < 80  # shrunk to fit
    long = "VISUAL_EXTRAORDINARILY_LONG_LABEL_OF_A_CUSTOM_MODEL"
    font, text = fit_text(base, long, 200, 80, bold=True)
    assert font.pixelSize() == 12 and QFontMetrics(font).horizontalAdvance(text) <= 200
    assert text != long and text.startswith("VIS") and text.endswith("DEL")  # both ends kept, middle elided


def test_probability_bars_fit_their_rows_and_say_how_many_are_left_out(qtbot) -> None:
    """A 35-class model: 12 rows with no word of the other 23; a small panel overlapped its rows; a long
    label pushed the bars off the panel."""
    from gui.widgets import ProbabilityBars

    labels = ("_silence_", "_unknown_", "visual_extraordinarily_long_label", *(f"word{i}" for i in range(32)))
    bars = ProbabilityBars()
    qtbot.addWidget(bars)
    bars.set_labels(labels)
    values = np.full(len(labels), 0.01, dtype=np.float32)
    values[2] = 0.8
    bars.set_values(values)
    bars.resize(400, 600)
    layout = bars.bar_layout()
    assert len(layout.rows) == 12 and layout.hidden == 23  # "+23 more"
    assert layout.rows[0][0] == "visual_extraordinarily_long_label"
    assert layout.label_width <= 0.4 * 400  # elided beyond that
    line = bars.fontMetrics().height()
    bars.resize(400, 120)  # too small for 12 rows: only whole rows, and the "+N more" line
    layout = bars.bar_layout()
    assert 1 <= len(layout.rows) < 12 and layout.hidden == len(labels) - len(layout.rows)
    assert layout.row_height >= line and (len(layout.rows) + 1) * layout.row_height <= 120
    assert bars.rows() == layout.rows
    assert not bars.grab().isNull()  # paints


class VanishingSource(FileSource):
    """A file source whose device disappears after ``blocks`` reads, as an unplugged microphone does."""

    def __init__(self, audio: np.ndarray, *, blocks: int, **options: object) -> None:
        super().__init__(audio, **options)
        self.name = "USB microphone"
        self._left = blocks

    def read(self, timeout: float) -> np.ndarray | None:
        self._left -= 1
        if self._left < 0:
            self.error = "input device 'USB microphone' stopped delivering audio (disconnected or sound server gone)"
            raise DeviceError(self.error)
        return super().read(timeout)


def test_device_vanishing_while_listening_is_shown(qtbot, settings, synthetic_model, command_audio) -> None:
    def factory(device: object, sample_rate: int) -> VanishingSource:
        return VanishingSource(command_audio, blocks=30, sample_rate=sample_rate, realtime=True)

    window = make_window(qtbot, settings, synthetic_model, source_factory=factory)
    window.start_listening()
    qtbot.waitUntil(lambda: not window.is_listening, timeout=10000)
    assert "stopped delivering audio" in window.banner.text
    assert not window.listen_button.isChecked()
    assert window.spectrogram.frames_received > 0


def test_closing_while_listening_stops_the_thread(qtbot, settings, synthetic_model, command_audio) -> None:
    window = make_window(
        qtbot, settings, synthetic_model, source_factory=file_factory(command_audio, realtime=True, loop=True)
    )
    window.start_listening()
    qtbot.waitUntil(lambda: window.spectrogram.frames_received > 0, timeout=10000)
    thread = window.listening_thread
    assert thread is not None and thread.isRunning()
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 2.0
    assert thread.isFinished()
    assert not window.is_busy()


# ------------------------------------------------------------------------------------------ recording


def test_recording_a_clip_saves_a_wav(qtbot, settings, synthetic_model, command_audio, tmp_path) -> None:
    window = make_window(qtbot, settings, synthetic_model, source_factory=file_factory(command_audio, realtime=True))
    window.record_folder.setText(str(tmp_path / "recordings"))
    window.record_word.setText("rise")
    assert window.record_clip()
    qtbot.waitUntil(lambda: not window.is_recording(), timeout=10000)
    path = window.last_recording
    assert path == tmp_path / "recordings" / "rise" / "take-001.wav"
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and audio.shape == (16000,)
    np.testing.assert_allclose(audio, command_audio[:16000], atol=1e-4)
    assert "Saved" in window.record_status.text()

    window.record_word.setText("")  # while listening: taken from the running input
    window.start_listening()
    assert window.record_clip()
    qtbot.waitUntil(lambda: not window.is_recording(), timeout=10000)
    assert window.last_recording.parent == tmp_path / "recordings"
    assert window.last_recording.name.startswith("recording_")
    assert sf.info(window.last_recording).frames == 16000


def test_a_recording_keeps_the_input_and_its_name_until_it_is_saved(qtbot, settings, synthetic_model,
                                                                    command_audio, tmp_path) -> None:
    """Start listening during a recording opened the input twice; stopping it then discarded the recording."""
    opened: list[str] = []

    def factory(device: object, sample_rate: int) -> FileSource:
        opened.append("source")
        return FileSource(command_audio, sample_rate=sample_rate, realtime=True)

    window = make_window(qtbot, settings, synthetic_model, source_factory=factory)
    window.record_folder.setText(str(tmp_path / "recordings"))
    window.record_word.setText("rise")
    assert window.record_clip()  # not listening: the input is opened for the recording alone
    assert not window.listen_button.isEnabled() and not window.listen_action.isEnabled()
    assert window.start_listening() is False
    assert "recording" in window.statusBar().currentMessage().lower()
    window.stop_listening()
    window.record_word.setText("fall")  # a later recording's name does not change this one's
    assert window.record_clip() is False  # one at a time
    qtbot.waitUntil(lambda: not window.is_recording(), timeout=10000)
    assert window.last_recording == tmp_path / "recordings" / "rise" / "take-001.wav"
    assert window.record_status.text().startswith("Saved ")
    assert opened == ["source"]
    assert window.listen_button.isEnabled()

    # a recording taken from the running input ends with it; the next one is saved under its own name
    assert window.start_listening()
    assert window.record_clip()
    window.stop_listening()
    qtbot.waitUntil(lambda: not window.is_listening, timeout=10000)
    assert not window.is_recording() and window.record_status.text() == "Recording interrupted: the input stopped"
    assert window.record_clip()
    qtbot.waitUntil(lambda: not window.is_recording(), timeout=10000)
    assert window.last_recording == tmp_path / "recordings" / "fall" / "take-001.wav"


# ------------------------------------------------------------------------------------------ entry point


def test_none_survives_many_qt_calls(qtbot) -> None:
    """PySide6 6.12.0 on Python < 3.12 drops a reference to None per void call; the app guards against it."""
    from PySide6.QtCore import QObject

    from gui.compat import protect_none, pyside_drops_none_references

    protect_none()
    assert not pyside_drops_none_references() or protect_none()
    probe = QObject()
    for _ in range(100_000):  # more than None's references at start-up: aborts without the guard
        probe.setObjectName("x")


def test_command_line_options() -> None:
    from gui.app import build_parser

    args = build_parser().parse_args(["--model", "m.pt", "--device", "cpu", "--input", "pulse"])
    assert (args.model, args.device, args.input) == ("m.pt", "cpu", "pulse")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--device", "tpu"])


@pytest.mark.timeout(60)
def test_main_starts_the_app_with_a_model(qtbot, synthetic_model) -> None:
    from PySide6.QtCore import QTimer

    from gui.app import main
    from gui.main_window import MainWindow as Window

    seen: dict[str, object] = {}

    def check() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, Window) and w.isVisible()]
        if windows and windows[0].classifier is not None:
            seen["model"], seen["device"] = windows[0].model_path, windows[0].compute_device
            windows[0].close()
        else:
            QTimer.singleShot(50, check)

    QTimer.singleShot(50, check)
    assert main(["--model", str(synthetic_model), "--device", "cpu"]) == 0
    assert seen == {"model": synthetic_model, "device": "cpu"}


@pytest.mark.timeout(120)
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child differs on Windows")
def test_ctrl_c_in_the_terminal_closes_the_app(synthetic_model, tmp_path, repo_env) -> None:
    """`speechrnn-gui` started from a terminal: Ctrl-C closes it (settings saved), exit 0, no traceback."""
    env = {**repo_env, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "HOME": str(tmp_path), "SPEECHRNN_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen([sys.executable, "-m", "gui", "--model", str(synthetic_model), "--device", "cpu"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # started or not yet: an early Ctrl-C waits for the event loop
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    saved = list((tmp_path / "config").rglob("*.conf")) + list((tmp_path / "config").rglob("*.ini"))
    assert saved and "geometry" in saved[0].read_text(errors="replace")


# ------------------------------------------------------------------------------------------ virtual microphone


@pytest.fixture
def virtual_mic(tmp_path: Path):
    """PulseAudio's virtual microphone (``virtual-mic.sh start``); yields a function playing a file into it."""
    if not VIRTUAL_MIC.exists() or shutil.which("pulseaudio") is None or shutil.which("paplay") is None:
        pytest.skip("PulseAudio or the virtual-mic script is not available")
    was_running = subprocess.run(["pulseaudio", "--check"], check=False).returncode == 0
    env = {**os.environ, "VIRTUAL_MIC_STATE": str(tmp_path / "vmic")}
    started = subprocess.run(
        [str(VIRTUAL_MIC), "start"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if started.returncode != 0:
        pytest.skip(f"the virtual microphone did not start: {started.stderr.strip()[:200]}")

    def play(path: Path) -> None:
        subprocess.run([str(VIRTUAL_MIC), "play", str(path)], env=env, check=True, timeout=30)

    yield play
    if not was_running:
        subprocess.run([str(VIRTUAL_MIC), "stop"], env=env, check=False, timeout=30)


@pytest.mark.microphone
@pytest.mark.timeout(120)
def test_virtual_microphone_command_is_detected(qtbot, settings, synthetic_model, virtual_mic, rise_wav) -> None:
    from speechrnn.microphone import list_inputs

    inputs = [d.name for d in list_inputs(refresh=True)]
    if "pulse" not in inputs:
        pytest.skip(f"sounddevice sees no 'pulse' input (inputs: {inputs})")
    window = make_window(
        qtbot, settings, synthetic_model, device_lister=lambda refresh: list_inputs(), input_device="pulse"
    )
    qtbot.waitUntil(lambda: window.selected_input_device == "pulse", timeout=10000)
    window.start_listening()
    qtbot.waitUntil(lambda: window.status_labels["input"].text() == "Input: pulse", timeout=10000)
    virtual_mic(rise_wav)
    qtbot.waitUntil(lambda: bool(window.log_entries), timeout=10000)
    assert window.log_entries[0].label == "rise"
    window.stop_listening()
    qtbot.waitUntil(lambda: not window.is_listening, timeout=5000)
    assert "error" not in window.banner.text.lower()


# ------------------------------------------------------------------------------------------ teaching


def test_teach_dialog_pauses_listening_and_loads_the_new_model(qtbot, settings, synthetic_model, tmp_path,
                                                               command_audio) -> None:
    pytest.importorskip("gui.teach")
    window = make_window(qtbot, settings, synthetic_model,
                         source_factory=file_factory(command_audio, realtime=True, loop=True))
    dialog = window.open_teach_dialog()
    assert dialog is not None and dialog.isVisible()
    assert window.open_teach_dialog() is dialog  # one at a time
    window.start_listening()
    qtbot.waitUntil(lambda: window.spectrogram.frames_received > 0, timeout=10000)
    dialog.microphone_needed.emit(True)  # the dialog is about to record: live listening pauses
    qtbot.waitUntil(lambda: not window.is_listening, timeout=5000)
    dialog.microphone_needed.emit(False)  # ... and resumes once it is done
    qtbot.waitUntil(lambda: window.is_listening, timeout=5000)
    window.stop_listening()
    qtbot.waitUntil(lambda: not window.is_listening, timeout=5000)
    taught = tmp_path / "taught.pt"
    shutil.copy(synthetic_model, taught)
    dialog.model_ready.emit(str(taught))  # a newly learned model is loaded like any other
    qtbot.waitUntil(lambda: window.model_path == taught, timeout=20000)
    dialog.close()
    qtbot.waitUntil(lambda: window.teach_dialog is None, timeout=5000)


class OpenInputs:
    """A source factory whose sources count how many of them are open at once (the input shared)."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.lock = threading.Lock()
        self.open = 0
        self.most = 0
        self.events: list[str] = []

    def __call__(self, device: object, sample_rate: int) -> FileSource:
        inputs = self

        class Counted(FileSource):
            def start(self) -> None:
                with inputs.lock:
                    inputs.open += 1
                    inputs.most = max(inputs.most, inputs.open)
                    inputs.events.append("open")
                super().start()

            def stop(self) -> None:
                with inputs.lock:
                    if self._started is not None:
                        inputs.open -= 1
                        inputs.events.append("close")
                super().stop()

        return Counted(self.audio, sample_rate=sample_rate, realtime=True, loop=True)


def teach_window(qtbot, settings, synthetic_model, command_audio, tmp_path,
                 monkeypatch) -> tuple[MainWindow, OpenInputs]:
    """A window whose inputs are counted (:class:`OpenInputs`), the teach dialog available, a private data dir."""
    pytest.importorskip("gui.teach")
    monkeypatch.setenv("SPEECHRNN_DATA_DIR", str(tmp_path / "user"))
    inputs = OpenInputs(command_audio)
    return make_window(qtbot, settings, synthetic_model, source_factory=inputs), inputs


def test_teaching_opens_the_input_only_after_listening_has_closed_it(qtbot, settings, synthetic_model, command_audio,
                                                                     tmp_path, monkeypatch) -> None:
    """The dialog opened its input right after asking listening to stop, while listening still had it open."""
    window, inputs = teach_window(qtbot, settings, synthetic_model, command_audio, tmp_path, monkeypatch)
    window.start_listening()
    qtbot.waitUntil(lambda: window.spectrogram.frames_received > 0, timeout=10000)
    dialog = window.open_teach_dialog()
    dialog.countdown_seconds, dialog.take_seconds = 0, 0.5
    dialog.word_edit.setText("lights")
    dialog.record_take()
    assert dialog.is_recording and not window.is_listening
    assert inputs.events == ["open", "close", "open"] and inputs.most == 1
    assert window.start_listening() is False  # not while the dialog has the input
    assert not window.listen_button.isEnabled() and not window.record_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.is_recording and window.is_listening, timeout=10000)  # listening resumes
    qtbot.waitUntil(lambda: inputs.events[-1] == "open", timeout=10000)
    assert inputs.events == ["open", "close", "open", "close", "open"] and inputs.most == 1
    dialog.close()


def test_teaching_cancels_a_recording_that_has_the_input(qtbot, settings, synthetic_model, command_audio,
                                                         tmp_path, monkeypatch) -> None:
    window, inputs = teach_window(qtbot, settings, synthetic_model, command_audio, tmp_path, monkeypatch)
    window.record_folder.setText(str(tmp_path / "recordings"))
    window.record_seconds.setValue(5.0)
    assert window.record_clip()
    qtbot.waitUntil(lambda: inputs.open == 1, timeout=10000)
    dialog = window.open_teach_dialog()
    dialog.countdown_seconds, dialog.take_seconds = 0, 0.5
    dialog.word_edit.setText("lights")
    dialog.record_take()
    assert dialog.is_recording and inputs.events == ["open", "close", "open"] and inputs.most == 1
    assert window.record_clip() is False
    qtbot.waitUntil(lambda: not window.is_recording() and not dialog.is_recording, timeout=10000)
    assert window.record_status.text() == "Recording cancelled: the Teach a word dialog needed the input"
    assert not window.banner.isVisible() and window.last_recording is None
    assert window.record_button.isEnabled() and window.listen_button.isEnabled()
    dialog.close()


def test_python_dash_m_gui_is_the_app(repo_env) -> None:
    done = subprocess.run([sys.executable, "-m", "gui", "--help"], capture_output=True, text=True, env=repo_env,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: speechrnn-gui")

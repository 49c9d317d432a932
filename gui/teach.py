"""The "Teach a word" dialog: record a new word a few times, learn it, and manage the user's models.

Flow: type the word, press *Record take* (a countdown, then a couple of seconds of audio), see the
take trimmed to the speech in a small waveform plot (redo it if it is bad), repeat about ten times,
optionally record a few seconds of the room's background and of yourself saying other words
(so the new word does not fire on your voice saying something else), press *Learn*. Fine-tuning
(:func:`training.finetune.finetune`, head-only with rehearsal: seconds) runs on a worker
:class:`QThread` with a progress bar; when it ends the dialog emits :attr:`TeachWordDialog.model_ready`
with the new model file, which the main window loads like any other model. The *My models* list
shows the models in the user's data folder (:mod:`speechrnn.userdata`) with Use, Rename, Export
and Remove.

Threading: audio is read on the GUI thread only by a :class:`QTimer` polling
``AudioSource.read(timeout=0)``, which never blocks; the source is opened for one take at a time
(the ``microphone_needed(bool)`` signal tells the main window when, so it can pause live listening
on platforms where two streams cannot share a device). Fine-tuning and saving run on a worker
thread; the GUI thread only receives signals.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from speechrnn.microphone import AudioSource

#: ``source_factory(device, sample_rate) -> AudioSource`` (the same signature the main window uses).
SourceFactory = Callable[[str | int | None, int], "AudioSource"]
#: ``confirm(title, text) -> bool``: asks the user a yes/no question (tests inject an answer).
ConfirmFunction = Callable[[str, str], bool]

__all__ = ["Take", "TeachWordDialog", "default_model_name"]

_TICK_MS = 20
_MAX_BLOCKS_PER_TICK = 64


@dataclass(frozen=True)
class Take:
    """One accepted take.

    Parameters
    ----------
    audio : np.ndarray, shape (n,), float32
        The take as recorded (saved as is; fine-tuning trims it again the same way).
    trimmed : np.ndarray, shape (m,), float32
        The speech part that is shown.
    """

    audio: np.ndarray
    trimmed: np.ndarray


def default_model_name(base: str | os.PathLike[str] | None, word: str, taken: set[str]) -> str:
    """A free model name such as ``default+hello`` (``default+hello-2`` when taken).

    Parameters
    ----------
    base : path-like or None
        The base model file.
    word : str
    taken : set of str
        Names already in use.
    """
    stem = Path(base).stem if base else "model"
    stem = stem.split("+")[0] if stem else "model"
    name = f"{stem}+{word}"[:60]
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}-{n}"
        n += 1
    return candidate


def _ask(parent: QWidget, title: str, text: str) -> bool:
    answer = QMessageBox.question(parent, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


class _LearnWorker(QObject):
    """Runs fine-tuning once on a worker thread; reports through queued signals."""

    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    finished = Signal()

    def __init__(self, job: Callable[[Callable[[float, str], None], Callable[[], bool]], Any]) -> None:
        super().__init__()
        self._job = job
        self._cancel = threading.Event()

    def request_stop(self) -> None:
        """Ask the job to stop at its next check (nothing is written then)."""
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        """Run the job and report how it ended."""
        from speechrnn.errors import SpeechRNNError

        try:
            result = self._job(lambda f, m: self.progress.emit(float(f), str(m)), self._cancel.is_set)
        except SpeechRNNError as exc:
            self.failed.emit(str(exc))
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:  # shown, never lost
            self.failed.emit(f"learning failed: {type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(result)
        finally:
            self.finished.emit()


class TeachWordDialog(QDialog):
    """Record a new word, learn it into a new model, and manage the user's models.

    Parameters
    ----------
    base_model : path-like or None
        The model to extend (usually the one the main window has loaded); None: the default model.
    source_factory : callable, optional
        ``source_factory(device, sample_rate) -> AudioSource``; default: the microphone.
    device : str, int or None
        Input device for the factory (None: system default).
    sample_rate : int
        Rate the takes are recorded at, Hz (the model's rate).
    take_seconds : float
        Length of one recording, seconds.
    room_seconds : float
        Length of the room-noise recording, seconds.
    countdown_seconds : int
        Countdown before each recording (0: none).
    target_takes : int
        Takes the dialog asks for.
    base_labels : sequence of str, optional
        The base model's labels, to refuse a word it already knows before anything is recorded
        (read from ``base_model`` when omitted).
    finetune_options : dict, optional
        Extra keyword arguments for :func:`training.finetune.finetune` (e.g. ``config``).
    confirm : callable, optional
        ``confirm(title, text) -> bool`` for questions (default: a message box).
    parent : QWidget, optional

    Signals
    -------
    model_ready(str)
        A new model file was written (or the user chose *Use* on a saved model): load it.
    microphone_needed(bool)
        True just before the dialog opens the audio source, False once it has closed it.
    """

    model_ready = Signal(str)
    microphone_needed = Signal(bool)

    def __init__(self, base_model: str | os.PathLike[str] | None = None, *,
                 source_factory: SourceFactory | None = None, device: str | int | None = None,
                 sample_rate: int = 16000, take_seconds: float = 2.0, room_seconds: float = 5.0,
                 others_seconds: float = 10.0,
                 countdown_seconds: int = 3, target_takes: int = 10, base_labels: Sequence[str] | None = None,
                 finetune_options: dict[str, Any] | None = None,
                 confirm: ConfirmFunction | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Teach a word")
        self.setModal(False)
        self.base_model: Path | None = Path(base_model) if base_model else None
        self._opened_base: Path | None = self.base_model  # what new words add to if a chosen model is removed
        self.source_factory: SourceFactory = source_factory or _microphone_factory
        self.device = device
        self.sample_rate = int(sample_rate)
        self.take_seconds = float(take_seconds)
        self.room_seconds = float(room_seconds)
        self.others_seconds = float(others_seconds)
        self.countdown_seconds = int(countdown_seconds)
        self.finetune_options = dict(finetune_options or {})
        self._confirm = confirm or (lambda title, text: _ask(self, title, text))
        self.base_labels: tuple[str, ...] = tuple(base_labels) if base_labels is not None else self._read_labels()
        self.takes: list[Take] = []
        self.room_audio: np.ndarray | None = None
        self.others_audio: np.ndarray | None = None  # the user saying other words: _unknown_ for the new word
        self.last_report: Any = None
        self.last_model: Path | None = None
        self.last_error: str = ""
        # recording state
        self._source: AudioSource | None = None
        self._purpose: str = ""  # "take", "room" or "others"
        self._countdown = 0
        self._chunks: list[np.ndarray] = []
        self._collected = 0
        self._needed = 0
        self._timer = QTimer(self)
        self._timer.setInterval(_TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._countdown_timer = QTimer(self)
        self._countdown_timer.setInterval(1000)
        self._countdown_timer.timeout.connect(self._countdown_tick)
        # learning state
        self._thread: QThread | None = None
        self._worker: _LearnWorker | None = None
        self._close_when_done = False
        # id(audio array) -> (the array, its file in the user's recordings); the array is kept so the id stays its own
        self._saved: dict[int, tuple[np.ndarray, Path]] = {}
        self._build(target_takes)
        self._update_state()
        self.refresh_models()

    # ------------------------------------------------------------------------------------ layout

    def _build(self, target_takes: int) -> None:
        layout = QVBoxLayout(self)
        teach = QGroupBox("Teach a new word", self)
        form = QFormLayout(teach)
        self.word_edit = QLineEdit(teach)
        self.word_edit.setPlaceholderText("e.g. lights")
        self.word_edit.textChanged.connect(self._update_state)
        form.addRow("Word:", self.word_edit)
        self.base_label = QLabel(teach)
        self.base_label.setWordWrap(True)
        form.addRow("Adds to:", self.base_label)
        self.target_spin = QSpinBox(teach)
        self.target_spin.setRange(3, 50)
        self.target_spin.setValue(max(3, target_takes))
        self.target_spin.valueChanged.connect(self._update_state)
        form.addRow("Takes wanted:", self.target_spin)

        buttons = QHBoxLayout()
        self.record_button = QPushButton("Record take", teach)
        self.record_button.clicked.connect(self.record_take)
        self.redo_button = QPushButton("Redo last", teach)
        self.redo_button.clicked.connect(self.redo_last)
        self.remove_take_button = QPushButton("Remove take", teach)
        self.remove_take_button.clicked.connect(self.remove_selected_take)
        self.room_button = QPushButton(f"Record room ({self.room_seconds:g} s)", teach)
        self.room_button.setToolTip("Record a few seconds of your room without speaking: the new word learns "
                                    "to ignore its background noise")
        self.room_button.clicked.connect(self.record_room)
        self.others_button = QPushButton(f"Record other words ({self.others_seconds:g} s)", teach)
        self.others_button.setToolTip("Say a few other words or a sentence, not the new word: it learns not to "
                                      "fire on your voice saying something else")
        self.others_button.clicked.connect(self.record_others)
        for button in (self.record_button, self.redo_button, self.remove_take_button, self.room_button,
                       self.others_button):
            buttons.addWidget(button)
        form.addRow(buttons)

        self.prompt_label = QLabel("Type the word, then press Record take and say it once.", teach)
        self.prompt_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.prompt_label.font()
        font.setPointSize(font.pointSize() + 4)
        self.prompt_label.setFont(font)
        self.prompt_label.setWordWrap(True)
        form.addRow(self.prompt_label)
        self.level_bar = QProgressBar(teach)
        self.level_bar.setRange(0, 60)
        self.level_bar.setFormat("input level")
        self.level_bar.setTextVisible(False)
        self.level_bar.setMaximumHeight(8)
        form.addRow(self.level_bar)

        takes_row = QHBoxLayout()
        self.takes_list = QListWidget(teach)
        self.takes_list.setMaximumWidth(170)
        self.takes_list.currentRowChanged.connect(self._show_take)
        takes_row.addWidget(self.takes_list)
        self.plot = pg.PlotWidget(teach)
        self.plot.setMinimumHeight(120)
        self.plot.setMaximumHeight(160)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "seconds")
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setYRange(-1.0, 1.0)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#3fb6a8", width=1))
        takes_row.addWidget(self.plot, 1)
        form.addRow(takes_row)
        self.status_label = QLabel(teach)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.status_label)

        learn_row = QHBoxLayout()
        self.name_edit = QLineEdit(teach)
        self.name_edit.setPlaceholderText("model name (automatic when empty)")
        learn_row.addWidget(self.name_edit, 1)
        self.learn_button = QPushButton("Learn", teach)
        self.learn_button.setDefault(True)
        self.learn_button.clicked.connect(self.start_learning)
        learn_row.addWidget(self.learn_button)
        self.cancel_button = QPushButton("Cancel learning", teach)
        self.cancel_button.clicked.connect(self.cancel_learning)
        learn_row.addWidget(self.cancel_button)
        form.addRow(learn_row)
        self.progress_bar = QProgressBar(teach)
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        form.addRow(self.progress_bar)
        self.report_label = QLabel(teach)
        self.report_label.setWordWrap(True)
        self.report_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.report_label)
        layout.addWidget(teach)

        models = QGroupBox("My models", self)
        models_layout = QVBoxLayout(models)
        self.models_list = QListWidget(models)
        self.models_list.currentRowChanged.connect(lambda _row: self._update_state())
        models_layout.addWidget(self.models_list)
        model_buttons = QHBoxLayout()
        self.use_button = QPushButton("Use", models)
        self.use_button.clicked.connect(self.use_selected_model)
        self.rename_button = QPushButton("Rename…", models)
        self.rename_button.clicked.connect(lambda: self.rename_selected_model())
        self.export_button = QPushButton("Export…", models)
        self.export_button.clicked.connect(lambda: self.export_selected_model())
        self.remove_model_button = QPushButton("Remove", models)
        self.remove_model_button.clicked.connect(self.remove_selected_model)
        for button in (self.use_button, self.rename_button, self.export_button, self.remove_model_button):
            model_buttons.addWidget(button)
        models_layout.addLayout(model_buttons)
        layout.addWidget(models)
        close_row = QHBoxLayout()
        close_row.addStretch(1)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.close)
        close_row.addWidget(self.close_button)
        layout.addLayout(close_row)
        self.resize(620, 720)

    # ------------------------------------------------------------------------------------ state

    @property
    def word(self) -> str:
        """The word as typed, normalised (stripped, lower case)."""
        return self.word_edit.text().strip().lower()

    @property
    def is_recording(self) -> bool:
        """Whether a countdown or a recording is under way."""
        return self._countdown_timer.isActive() or self._timer.isActive()

    @property
    def is_learning(self) -> bool:
        """Whether fine-tuning is running."""
        return self._thread is not None

    def _read_labels(self) -> tuple[str, ...]:
        """The base model's labels (empty when the file cannot be read: fine-tuning will say why)."""
        from speechrnn import default_model_path
        from speechrnn.checkpoint import load_checkpoint
        from speechrnn.errors import SpeechRNNError

        try:
            return tuple(load_checkpoint(self.base_model or default_model_path()).labels)
        except SpeechRNNError:
            return ()

    def _word_problem(self) -> str:
        from speechrnn.userdata import UserDataError, validate_word

        if not self.word_edit.text().strip():
            return "Type the word you will teach."
        try:
            word = validate_word(self.word_edit.text())
        except UserDataError as exc:
            return str(exc)
        if word in self.base_labels:
            return f"The model already knows “{word}”; choose another word."
        return ""

    @Slot()
    def _update_state(self) -> None:
        busy = self.is_recording or self.is_learning
        word_problem = self._word_problem()
        base = self.base_model.name if self.base_model else "the default model"
        self.base_label.setText(base)
        self.word_edit.setEnabled(not busy and not self.takes)
        self.record_button.setEnabled(not busy and not word_problem)
        self.redo_button.setEnabled(not busy and bool(self.takes))
        self.remove_take_button.setEnabled(not busy and self.takes_list.currentRow() >= 0)
        self.room_button.setEnabled(not busy)
        self.others_button.setEnabled(not busy)
        self.learn_button.setEnabled(not busy and not word_problem and len(self.takes) >= 3)
        self.cancel_button.setEnabled(self.is_learning)
        selected = self.models_list.currentRow() >= 0
        for button in (self.use_button, self.rename_button, self.export_button, self.remove_model_button):
            button.setEnabled(selected and not self.is_learning)
        if not busy:
            wanted = self.target_spin.value()
            room = f"; room: {len(self.room_audio) / self.sample_rate:.1f} s recorded" \
                if self.room_audio is not None else ""
            if self.others_audio is not None:
                room += f"; other words: {len(self.others_audio) / self.sample_rate:.1f} s recorded"
            if word_problem and self.word_edit.text().strip():
                self.status_label.setText(word_problem)
            else:
                self.status_label.setText(f"{len(self.takes)} of {wanted} takes{room}.")

    # ------------------------------------------------------------------------------------ recording

    @Slot()
    def record_take(self) -> None:
        """Start a countdown, then record one take of the word."""
        if self._word_problem() or self.is_recording or self.is_learning:
            return
        self._begin("take", self.take_seconds)

    @Slot()
    def record_room(self) -> None:
        """Record a few seconds of the room's background (the user stays quiet)."""
        if self.is_recording or self.is_learning:
            return
        self._begin("room", self.room_seconds)

    @Slot()
    def record_others(self) -> None:
        """Record the user saying other words (not the new one): negatives in the takes' voice."""
        if self.is_recording or self.is_learning:
            return
        self._begin("others", self.others_seconds)

    @Slot()
    def redo_last(self) -> None:
        """Drop the last take and record it again."""
        if self.takes and not self.is_recording:
            self.takes.pop()
            self._refresh_takes()
            self.record_take()

    @Slot()
    def remove_selected_take(self) -> None:
        """Drop the take selected in the list."""
        row = self.takes_list.currentRow()
        if 0 <= row < len(self.takes) and not self.is_recording:
            del self.takes[row]
            self._refresh_takes()

    def _begin(self, purpose: str, seconds: float) -> None:
        self._purpose = purpose
        self._needed = round(seconds * self.sample_rate)
        self._chunks, self._collected = [], 0
        self._countdown = self.countdown_seconds
        what = f"say “{self.word}”" if purpose == "take" else "stay quiet"
        if self._countdown > 0:
            self.prompt_label.setText(f"Get ready to {what}… {self._countdown}")
            self._countdown_timer.start()
        else:
            self._open_source()
        self._update_state()

    @Slot()
    def _countdown_tick(self) -> None:
        self._countdown -= 1
        what = {"take": f"say “{self.word}”", "others": "say other words"}.get(self._purpose, "stay quiet")
        if self._countdown > 0:
            self.prompt_label.setText(f"Get ready to {what}… {self._countdown}")
            return
        self._countdown_timer.stop()
        self._open_source()

    def _open_source(self) -> None:
        from speechrnn.errors import SpeechRNNError

        self.microphone_needed.emit(True)
        try:
            source = self.source_factory(self.device, self.sample_rate)
            source.start()
        except (SpeechRNNError, OSError, ValueError) as exc:
            self.microphone_needed.emit(False)
            self._fail_recording(f"Cannot open the microphone: {exc}")
            return
        if int(getattr(source, "sample_rate", self.sample_rate)) != self.sample_rate:
            source.stop()
            self.microphone_needed.emit(False)
            self._fail_recording(f"the audio source delivers {source.sample_rate} Hz, not {self.sample_rate} Hz")
            return
        self._source = source
        self.prompt_label.setText({"take": f"Speak now: “{self.word}”",
                                   "others": f"Say a few other words, not “{self.word}”…"}.get(
                                      self._purpose, "Recording the room… stay quiet"))
        self._timer.start()
        self._update_state()

    @Slot()
    def _tick(self) -> None:
        """Poll the source without blocking: read(timeout=0) until it has nothing more."""
        from speechrnn.errors import SpeechRNNError

        source = self._source
        if source is None:
            self._timer.stop()
            return
        try:
            for _ in range(_MAX_BLOCKS_PER_TICK):
                block = source.read(0.0)
                if block is None:
                    break
                self._chunks.append(np.asarray(block, dtype=np.float32).reshape(-1))
                self._collected += block.size
                if self._collected >= self._needed:
                    break
        except SpeechRNNError as exc:
            self._close_source()
            self._fail_recording(f"The microphone stopped: {exc}")
            return
        if self._chunks:
            recent = self._chunks[-1]
            level = 10 * np.log10(max(float(np.mean(recent.astype(np.float64) ** 2)), 1e-12))
            self.level_bar.setValue(int(np.clip(level + 60, 0, 60)))
        if self._collected >= self._needed or getattr(source, "finished", False):
            self._close_source()
            audio = np.concatenate(self._chunks)[: self._needed] if self._chunks else np.zeros(0, np.float32)
            self._chunks = []
            self._finish_recording(audio)

    def _close_source(self) -> None:
        self._timer.stop()
        source, self._source = self._source, None
        if source is not None:
            try:
                source.stop()
            finally:
                self.microphone_needed.emit(False)
        self.level_bar.setValue(0)

    def _fail_recording(self, message: str) -> None:
        self._countdown_timer.stop()
        self.last_error = message
        self.prompt_label.setText(message)
        self._update_state()

    def _finish_recording(self, audio: np.ndarray) -> None:
        from speechrnn.trim import check_recording, trim_to_speech

        if self._purpose == "room":
            if audio.size < self.sample_rate // 2:
                self._fail_recording("The room recording is too short; try again.")
                return
            self.room_audio = audio
            self.prompt_label.setText("Room recorded. Now record the word.")
            self._update_state()
            return
        if self._purpose == "others":
            from speechrnn.trim import find_speech

            span = find_speech(audio, self.sample_rate)
            if span.end - span.start < self.sample_rate // 5:
                self._fail_recording("No speech heard in the other words; try again, a little louder.")
                return
            self.others_audio = audio
            self.prompt_label.setText("Other words recorded.")
            self._update_state()
            return
        problems = check_recording(audio, self.sample_rate)
        if problems:
            self._fail_recording("Take not used — " + "; ".join(problems) + ". Press Record take to try again.")
            return
        trimmed = trim_to_speech(audio, self.sample_rate)
        self.takes.append(Take(audio=audio, trimmed=trimmed))
        self.last_error = ""
        self._refresh_takes()
        remaining = self.target_spin.value() - len(self.takes)
        self.prompt_label.setText(f"Got it ({len(trimmed) / self.sample_rate:.2f} s). "
                                  + (f"{remaining} more to go." if remaining > 0 else "Press Learn when ready."))

    def _refresh_takes(self) -> None:
        self.takes_list.blockSignals(True)
        self.takes_list.clear()
        for i, take in enumerate(self.takes, 1):
            self.takes_list.addItem(f"take {i} ({len(take.trimmed) / self.sample_rate:.2f} s)")
        self.takes_list.blockSignals(False)
        if self.takes:
            self.takes_list.setCurrentRow(len(self.takes) - 1)
            self._show_take(len(self.takes) - 1)
        else:
            self.curve.setData([], [])
        self._update_state()

    @Slot(int)
    def _show_take(self, row: int) -> None:
        if 0 <= row < len(self.takes):
            trimmed = self.takes[row].trimmed
            self.curve.setData(np.arange(trimmed.size) / self.sample_rate, trimmed)
        self._update_state()

    # ------------------------------------------------------------------------------------ learning

    @Slot()
    def start_learning(self) -> None:
        """Save the takes and learn the word on a worker thread."""
        from speechrnn import userdata

        if self.is_learning or self.is_recording:
            return
        problem = self._word_problem()
        if problem or len(self.takes) < 3:
            self._set_report(problem or "Record at least 3 takes (about 10 works best).", error=True)
            return
        word = userdata.validate_word(self.word_edit.text())
        taken = {entry.name for entry in userdata.list_models()}
        name = self.name_edit.text().strip() or default_model_name(self.base_model, word, taken)
        try:
            name = userdata.validate_model_name(name)
            out = userdata.model_path(name)
        except userdata.UserDataError as exc:
            self._set_report(str(exc), error=True)
            return
        if out.exists():
            self._set_report(f"A model named {name!r} already exists; choose another name.", error=True)
            return
        takes = [t.audio for t in self.takes]
        room = self.room_audio
        others = self.others_audio
        saved = self._saved  # filled by the worker: a retry after a failure does not save the takes twice
        base = self.base_model
        options = dict(self.finetune_options)
        sample_rate = self.sample_rate

        def job(progress: Callable[[float, str], None], should_stop: Callable[[], bool]) -> Any:
            return _learn(word=word, takes=takes, room=room, others=others, base=base, out=out, name=name,
                          saved=saved,
                          sample_rate=sample_rate, options=options, progress=progress, should_stop=should_stop)

        self.progress_bar.setValue(0)
        self._set_report(f"Learning “{word}”…")
        worker = _LearnWorker(job)
        thread = QThread()
        thread.setObjectName("TeachWordWorker")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progress.connect(self._on_progress)
        worker.succeeded.connect(self._on_learned)
        worker.failed.connect(self._on_learn_failed)
        # quit from the worker's own thread: a queued quit would wait for the GUI thread, which
        # shutdown() blocks in thread.wait() (closing during learning then froze for its timeout)
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker = thread, worker
        thread.start()
        self._update_state()

    @Slot()
    def cancel_learning(self) -> None:
        """Ask the running fine-tuning to stop (nothing is written)."""
        if self._worker is not None:
            self._worker.request_stop()
            self._set_report("Cancelling…")

    @Slot(float, str)
    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(round(1000 * fraction))
        self.progress_bar.setFormat(f"{message} (%p%)")

    @Slot(object)
    def _on_learned(self, result: Any) -> None:
        report, path = result
        self.last_report, self.last_model = report, Path(path)
        self.progress_bar.setValue(1000)
        self._set_report(report.describe().replace(str(path), Path(path).stem))
        self.base_model = Path(path)  # a further word is added to this model, keeping this one
        self.base_labels = tuple(report.labels)
        self.takes = []
        learned = ", ".join(f"'{w}'" for w in report.new_words)
        self.prompt_label.setText(f"Learned {learned}: it is recognized now. To teach another word, type it.")
        self.word_edit.clear()
        self.name_edit.clear()
        self._refresh_takes()
        self.refresh_models()
        self.model_ready.emit(str(path))

    @Slot(str)
    def _on_learn_failed(self, message: str) -> None:
        self.last_error = message
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")  # not the step it stopped in ("measuring ... (0%)")
        self._set_report(message, error=True)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread, worker = self._thread, self._worker
        self._thread = self._worker = None
        if thread is not None:
            thread.wait()
            thread.deleteLater()
        if worker is not None:
            worker.deleteLater()
        self._update_state()
        if self._close_when_done:
            self._close_when_done = False
            self.close()

    def _set_report(self, text: str, *, error: bool = False) -> None:
        self.report_label.setText(text)
        self.report_label.setStyleSheet("color: #e0565b;" if error else "")
        if error:
            self.last_error = text

    # ------------------------------------------------------------------------------------ my models

    def refresh_models(self) -> None:
        """Reload the *My models* list from the user's data folder."""
        from speechrnn import userdata

        current = self.selected_model_name()
        self.models_list.clear()
        for entry in userdata.list_models():
            words = ", ".join(entry.words) if entry.words else "?"
            item = QListWidgetItem(f"{entry.name}  —  words: {words}  ({entry.created[:16].replace('T', ' ')})")
            item.setData(Qt.ItemDataRole.UserRole, entry.name)
            item.setToolTip(str(entry.path))
            self.models_list.addItem(item)
            if entry.name == current:
                self.models_list.setCurrentItem(item)
        self._update_state()

    def selected_model_name(self) -> str | None:
        """Name of the model selected in *My models* (None when none is)."""
        item = self.models_list.currentItem()
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def select_model(self, name: str) -> bool:
        """Select a model of the list by name; False when it is not there."""
        for row in range(self.models_list.count()):
            if self.models_list.item(row).data(Qt.ItemDataRole.UserRole) == name:
                self.models_list.setCurrentRow(row)
                return True
        return False

    @Slot()
    def use_selected_model(self) -> None:
        """Load the selected model in the main window (emits :attr:`model_ready`)."""
        from speechrnn import userdata

        name = self.selected_model_name()
        if name:
            path = userdata.model_path(name)
            self.base_model = path
            self.base_labels = self._read_labels()
            self._update_state()
            self.model_ready.emit(str(path))

    def rename_selected_model(self, new_name: str | None = None) -> bool:
        """Rename the selected model (asks for the name when ``new_name`` is None); never overwrites."""
        from speechrnn import userdata

        name = self.selected_model_name()
        if not name:
            return False
        if new_name is None:
            new_name, ok = QInputDialog.getText(self, "Rename model", "New name:", text=name)
            if not ok:
                return False
        try:
            old_path = userdata.model_path(name)
            path = userdata.rename_model(name, new_name)
        except userdata.UserDataError as exc:
            self._set_report(str(exc), error=True)
            return False
        if self.base_model is not None and self.base_model == old_path:
            self.base_model = path
        self.refresh_models()
        self.select_model(path.stem)
        self._set_report(f"Renamed {name!r} to {path.stem!r}.")
        return True

    def export_selected_model(self, destination: str | os.PathLike[str] | None = None, *,
                              overwrite: bool = False) -> Path | None:
        """Copy the selected model to a file the user picks; an existing file is replaced only if confirmed."""
        from speechrnn import userdata

        name = self.selected_model_name()
        if not name:
            return None
        if destination is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Export model", str(Path.home() / f"{name}.pt"),
                                                    "speechrnn models (*.pt)")
            if not chosen:
                return None
            destination, overwrite = chosen, True  # the file dialog already asked before replacing
        target = Path(destination)
        if target.exists() and not overwrite and not target.is_dir():
            if not self._confirm("Replace file?", f"{target} already exists. Replace it?"):
                return None
            overwrite = True
        try:
            path = userdata.export_model(name, target, overwrite=overwrite)
        except (userdata.UserDataError, OSError) as exc:
            self._set_report(str(exc), error=True)
            return None
        self._set_report(f"Exported {name!r} to {path}.")
        return path

    @Slot()
    def remove_selected_model(self) -> bool:
        """Delete the selected model after the user confirms."""
        from speechrnn import userdata

        name = self.selected_model_name()
        if not name or not self._confirm("Remove model?", f"Delete the model {name!r} and its file? "
                                                          "This cannot be undone."):
            return False
        path = userdata.model_path(name)
        try:
            userdata.remove_model(name)
        except userdata.UserDataError as exc:
            self._set_report(str(exc), error=True)
            return False
        self.refresh_models()
        message = f"Removed {name!r}."
        if self.base_model is not None and self.base_model == path:  # new words were to be added to it
            opened = self._opened_base
            self.base_model = opened if opened is not None and opened != path and opened.is_file() else None
            self.base_labels = self._read_labels()
            self._update_state()
            message += f" New words now add to {self.base_model.name if self.base_model else 'the default model'}."
        self._set_report(message)
        return True

    # ------------------------------------------------------------------------------------ closing

    def shutdown(self, *, timeout_ms: int = 5000) -> bool:
        """Stop recording and learning; wait for the worker thread. True when it has stopped."""
        self._countdown_timer.stop()
        self._close_source()
        thread = self._thread
        if thread is None:
            return True
        if self._worker is not None:
            self._worker.request_stop()
        return bool(thread.wait(timeout_ms))

    def closeEvent(self, event: Any) -> None:
        """Stop everything before the dialog closes; if learning does not stop in time, close when it has."""
        if not self.shutdown():
            self._close_when_done = True
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self) -> None:
        """Escape closes like the Close button (stopping work first)."""
        if not self.shutdown():
            self._close_when_done = True
            return
        super().reject()


def _microphone_factory(device: str | int | None, sample_rate: int) -> AudioSource:
    from speechrnn.microphone import Microphone

    return Microphone(device, sample_rate=sample_rate)


def _learn(*, word: str, takes: list[np.ndarray], room: np.ndarray | None, others: np.ndarray | None,
           base: Path | None, out: Path, name: str,
           saved: dict[int, tuple[np.ndarray, Path]],
           sample_rate: int, options: dict[str, Any], progress: Callable[[float, str], None],
           should_stop: Callable[[], bool]) -> tuple[Any, Path]:
    """Worker-thread part of *Learn*: save the takes, fine-tune, write the sidecar."""
    from speechrnn import userdata
    from training.finetune import finetune

    recorded = [(audio, word) for audio in takes]
    recorded += [] if room is None else [(room, userdata.BACKGROUND_FOLDER)]
    recorded += [] if others is None else [(others, userdata.OTHER_FOLDER)]
    for audio, folder in recorded:
        if id(audio) not in saved:
            saved[id(audio)] = (audio, userdata.save_recording(folder, audio, sample_rate))
    files = [saved[id(audio)][1] for audio in takes]
    noise: list[Any] = [] if room is None else [saved[id(room)][1]]
    out.parent.mkdir(parents=True, exist_ok=True)
    report = finetune(base=base, words_dir={word: files}, out=out, noise=noise or None,
                      others=None if others is None else [saved[id(others)][1]], progress=progress,
                      should_stop=should_stop, **options)
    earlier = next((entry.words for entry in userdata.list_models() if base is not None and entry.path == base), ())
    userdata.write_model_sidecar(out, name=name, words=[*earlier, *report.new_words], base=report.base,
                                 labels=list(report.labels), figures=report.as_dict())
    return report, out

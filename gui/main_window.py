"""The main window: live listening, detection log, file classification, model and recording panels.

Everything slow (model loading, audio, inference, file classification, device listing) runs on
worker threads (:mod:`gui.workers`); their signals only store state here, and a ~30 fps timer
on the GUI thread paints it.
"""

from __future__ import annotations

import csv
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSettings, Qt, QThread, QTimer, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSplitter,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.compat import protect_none
from gui.widgets import (
    ERROR,
    TEXT_DIM,
    BannerStack,
    DecisionDisplay,
    LevelMeter,
    ProbabilityBars,
    SpectrogramView,
    display_label,
)
from gui.workers import (
    ListenWorker,
    LiveUpdate,
    LoadedModel,
    ScanProgress,
    SourceFactory,
    SourceInfo,
    TaskContext,
    TaskWorker,
    WorkerThread,
    classify_files,
    expand_paths,
    load_model,
    microphone_factory,
    record_clip,
    save_wav,
    summarize_model,
)

if TYPE_CHECKING:
    from speechrnn.classify import FileRecord
    from speechrnn.decisions import DecisionConfig
    from speechrnn.inference import Classifier
    from speechrnn.microphone import InputDevice
    from speechrnn.onnx_classifier import OnnxClassifier

SETTINGS_ORGANIZATION = "speechrnn"
SETTINGS_APPLICATION = "speechrnn-gui"
PAINT_INTERVAL_MS = 33  # ~30 frames per second
STOP_TIMEOUT_MS = 3000
NO_MODEL_MESSAGE = "No model loaded: open a model file (File ▸ Open model…)"
DEVICE_TOOLTIP = "Audio input device (the system default is preselected)"
#: the input picker is this wide at least, and takes up to DEVICE_COMBO_SHARE of a wider window
DEVICE_COMBO_MIN_WIDTH = 260
DEVICE_COMBO_SHARE = 0.3

#: ``device_lister(refresh) -> list[InputDevice]``; raises DeviceError when audio is unavailable
DeviceLister = Callable[[bool], "list[InputDevice]"]


def default_device_lister(refresh: bool) -> list[InputDevice]:
    """The machine's audio inputs (:func:`speechrnn.microphone.list_inputs`)."""
    from speechrnn.microphone import list_inputs

    return list_inputs(refresh=refresh)


def cuda_available() -> bool:
    """Whether PyTorch can use a CUDA GPU here (False without importing it where no GPU driver is loaded)."""
    from speechrnn.onnx_classifier import gpu_possible

    if not gpu_possible():
        return False
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class LogEntry:
    """One row of the detection log.

    Parameters
    ----------
    wall_time : datetime
        When the app received the detection.
    stream_time : float
        Seconds into the listening session.
    label : str
    score : float
        Confidence in [0, 1].
    """

    wall_time: datetime
    stream_time: float
    label: str
    score: float


@dataclass(frozen=True)
class _RecordTarget:
    """Where a recording in progress will be saved, and what it is taken from.

    Parameters
    ----------
    path : Path or None
        Save exactly here; None: the next take of ``word`` in ``folder`` (or a timestamped file).
    folder : Path
    word : str
    sample_rate : int
    listener : bool
        Taken from the listening thread's running input (it ends when listening ends); False:
        the input is opened on a worker thread for this recording alone.
    """

    path: Path | None
    folder: Path
    word: str
    sample_rate: int
    listener: bool


@dataclass(frozen=True)
class _Recorded:
    """A recording made on its own worker thread, with the target it was started for."""

    target: _RecordTarget
    audio: np.ndarray



#: the item-data role holding a table cell's sort key, where its text would sort wrongly ("9.5%" > "85.0%")
SORT_ROLE = Qt.ItemDataRole.UserRole


class _SortableItem(QTableWidgetItem):
    """A table cell that sorts by its :data:`SORT_ROLE` key when both cells have one, else by text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SORT_ROLE), other.data(SORT_ROLE)
        if mine is not None and theirs is not None:
            return bool(mine < theirs)
        # not super().__lt__: PySide dispatches the C++ operator< back to this override (endless recursion)
        return self.text() < other.text()


class _ElideMiddleDelegate(QStyledItemDelegate):
    """Draws a column's text elided in the middle (a path keeps its start and its file name)."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle


def _is_shipped_model(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a copy of the package's default model, this installation's or another's.

    Another checkout or an older installation keeps its own ``speechrnn/models/default.pt``; the
    app must not stay on it once a new version is installed.
    """
    from speechrnn import default_model_path

    resolved = Path(path).resolve()
    return resolved == default_model_path().resolve() or resolved.parts[-3:] == ("speechrnn", "models", "default.pt")


def _remembered_model(path: str | os.PathLike[str]) -> str:
    """What the settings keep for a loaded model: its path, or "" for the shipped default model
    (so the next start loads whichever default model is installed then)."""
    return "" if _is_shipped_model(path) else str(path)

class MainWindow(QMainWindow):
    """The speechrnn desktop app's window.

    Parameters
    ----------
    settings : QSettings, optional
        Where settings are remembered; default ``QSettings("speechrnn", "speechrnn-gui")``.
        Tests pass an isolated INI file.
    source_factory : callable, optional
        ``source_factory(device, sample_rate) -> AudioSource`` opening the live input; the
        microphone by default. Called on the listening thread.
    device_lister : callable, optional
        ``device_lister(refresh) -> list[InputDevice]`` for the input picker;
        :func:`speechrnn.microphone.list_inputs` by default. Called on a worker thread.
    model_path : path-like, optional
        Model to load at start; default: the remembered one, else the shipped default model.
    compute_device : {"auto", "cpu", "cuda"}, optional
        Default: the remembered one, else ``auto``.
    input_device : str or int, optional
        Input device to preselect (name, part of a name, or index); default: the remembered one,
        else the system default.
    hop_seconds : float
        Time between model evaluations while listening, seconds.
    """

    def __init__(self, *, settings: QSettings | None = None, source_factory: SourceFactory | None = None,
                 device_lister: DeviceLister | None = None, model_path: str | os.PathLike[str] | None = None,
                 compute_device: str | None = None, input_device: str | int | None = None,
                 hop_seconds: float = 0.1, parent: QWidget | None = None) -> None:
        protect_none()  # before the 30 fps repaints start calling void Qt methods
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings(SETTINGS_ORGANIZATION, SETTINGS_APPLICATION)
        self.source_factory: SourceFactory = source_factory or microphone_factory
        self.device_lister: DeviceLister = device_lister or default_device_lister
        self.hop_seconds = hop_seconds
        self._wanted_input = None if input_device is None else str(input_device)
        self._missing_input: str | None = None  # wanted, but not in the last device list
        self._no_input = ""  # why the last listing found no input to open ('' when it found one)
        self._cuda: bool | None = None  # checked on a worker thread (importing torch takes seconds)
        self._initial_model = model_path
        self._requested_compute = compute_device
        self._model: LoadedModel | None = None
        self._listen: WorkerThread | None = None
        self._threads: set[WorkerThread] = set()
        self._classify_thread: WorkerThread | None = None
        self._recording: _RecordTarget | None = None  # the recording in progress (one at a time)
        self._record_job: WorkerThread | None = None  # its worker thread, when it has the input to itself
        self._listing: WorkerThread | None = None  # the device listing in progress (one at a time)
        self._listing_reinitialises = False  # ... and whether it re-initialises PortAudio (a refresh)
        self._last_recording: Path | None = None
        self._source_info: SourceInfo | None = None
        self._log: list[LogEntry] = []
        self._results: list[FileRecord] = []
        self._classify_roots: list[Path] = []
        self._latest_probabilities: np.ndarray | None = None
        self._latest_level: float | None = None
        self._compute_times: deque[float] = deque(maxlen=30)
        self._dropped = 0
        self._overflows = 0
        self._last_error = ""
        self._error_box: QMessageBox | None = None
        self._closing = False
        self._teach_dialog: QDialog | None = None
        self._resume_listening = False
        self._teach_uses_microphone = False
        self._paint_count = 0

        self.setWindowTitle("speechrnn — speech command recognizer")
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_central()
        self._build_status_bar()
        self._restore_settings()

        self._paint_timer = QTimer(self)
        self._paint_timer.setInterval(PAINT_INTERVAL_MS)
        self._paint_timer.timeout.connect(self._paint)
        self._paint_timer.start()

        # A window destroyed without being closed (its last reference dropped) still stops and
        # joins its threads before Qt deletes them (a QThread destroyed while running aborts).
        self.destroyed.connect(partial(_stop_threads, self._threads), Qt.ConnectionType.DirectConnection)

        self.refresh_devices(refresh=False)
        self._check_cuda()
        self._update_status()

    # ------------------------------------------------------------------------------------------ building

    def _build_actions(self) -> None:
        self.open_model_action = QAction("&Open model…", self)
        self.open_model_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_model_action.triggered.connect(self._choose_model)
        self.classify_files_action = QAction("&Classify files…", self)
        self.classify_files_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.classify_files_action.triggered.connect(self._choose_files)
        self.classify_folder_action = QAction("Classify &folder…", self)
        self.classify_folder_action.triggered.connect(self._choose_folder)
        self.export_log_action = QAction("Export &detections (CSV)…", self)
        self.export_log_action.triggered.connect(self._choose_export_log)
        self.export_results_action = QAction("Export file &results (CSV or JSON)…", self)
        self.export_results_action.triggered.connect(self._choose_export_results)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.close)
        self.listen_action = QAction("&Start listening", self)
        self.listen_action.setShortcut(QKeySequence("Ctrl+L"))
        self.listen_action.triggered.connect(self.toggle_listening)
        self.record_action = QAction("&Record clip", self)
        self.record_action.setShortcut(QKeySequence("Ctrl+R"))
        self.record_action.triggered.connect(self.record_clip)
        self.record_as_action = QAction("Record clip &as…", self)
        self.record_as_action.triggered.connect(self._choose_record_file)
        self.teach_action = QAction("&Teach a word…", self)
        self.teach_action.setToolTip("Record a new word a few times and learn it into a new model")
        self.teach_action.triggered.connect(self.open_teach_dialog)
        self.refresh_action = QAction("Refresh &input devices", self)
        self.refresh_action.triggered.connect(self._refresh_clicked)
        self.about_action = QAction("&About", self)
        self.about_action.triggered.connect(self._about)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_model_action)
        file_menu.addSeparator()
        file_menu.addAction(self.classify_files_action)
        file_menu.addAction(self.classify_folder_action)
        file_menu.addSeparator()
        file_menu.addAction(self.export_log_action)
        file_menu.addAction(self.export_results_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        listen_menu = self.menuBar().addMenu("&Listen")
        listen_menu.addAction(self.listen_action)
        listen_menu.addAction(self.record_action)
        listen_menu.addAction(self.record_as_action)
        listen_menu.addAction(self.teach_action)
        listen_menu.addSeparator()
        listen_menu.addAction(self.refresh_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _build_toolbar(self) -> None:
        bar = QToolBar("Controls", self)
        bar.setMovable(False)
        bar.setObjectName("controls")
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)

        self.listen_button = QPushButton("● Start listening")
        self.listen_button.setObjectName("listenButton")
        self.listen_button.setCheckable(True)
        self.listen_button.setMinimumWidth(160)
        self.listen_button.clicked.connect(self._listen_button_clicked)
        bar.addWidget(self.listen_button)
        bar.addSeparator()

        bar.addWidget(QLabel("Input"))
        self.device_combo = QComboBox()
        self.device_combo.setMinimumWidth(DEVICE_COMBO_MIN_WIDTH)
        self.device_combo.setMaximumWidth(DEVICE_COMBO_MIN_WIDTH)  # grows with the window (_fit_device_combo)
        self.device_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.device_combo.setToolTip(DEVICE_TOOLTIP)
        self.device_combo.currentIndexChanged.connect(self._device_changed)
        bar.addWidget(self.device_combo)
        self.refresh_button = QToolButton()
        self.refresh_button.setText("⟳")
        self.refresh_button.setToolTip("Refresh the list of input devices")
        self.refresh_button.clicked.connect(self._refresh_clicked)
        bar.addWidget(self.refresh_button)
        bar.addSeparator()

        bar.addWidget(QLabel("Compute"))
        self.compute_combo = QComboBox()
        self.compute_combo.addItem("CPU", "cpu")
        self.compute_combo.addItem("GPU (CUDA)", "cuda")
        self.compute_combo.model().item(1).setEnabled(False)  # until the check says otherwise
        self.compute_combo.setToolTip("Where the model runs (checking for a CUDA GPU…)")
        self.compute_combo.currentIndexChanged.connect(self._compute_changed)
        bar.addWidget(self.compute_combo)
        self.gpu_note = QLabel("no CUDA GPU")
        self.gpu_note.setObjectName("note")
        self._gpu_note_action = bar.addWidget(self.gpu_note)
        self._gpu_note_action.setVisible(False)  # a toolbar shows and hides its actions, not the widgets
        bar.addSeparator()

        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        self.record_button = QPushButton("● Record 1 s")
        self.record_button.setToolTip(self._record_tooltip())
        self.record_button.clicked.connect(self.record_clip)
        bar.addWidget(self.record_button)

    def _record_tooltip(self) -> str:
        """The Record buttons' tooltip, with the Record clip shortcut."""
        keys = self.record_action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        return f"Record a clip from the input and save it as WAV (see the Record tab) ({keys})"

    def _build_central(self) -> None:
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(10, 8, 10, 6)
        outer.setSpacing(8)
        self.banner = BannerStack()
        outer.addWidget(self.banner)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        outer.addWidget(splitter, 1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(8)
        live = QGroupBox("Live input")
        live_layout = QVBoxLayout(live)
        level_row = QHBoxLayout()
        level_row.addWidget(QLabel("Level"))
        self.level_meter = LevelMeter()
        level_row.addWidget(self.level_meter, 1)
        live_layout.addLayout(level_row)
        self.spectrogram = SpectrogramView()
        self.spectrogram.setMinimumHeight(200)
        live_layout.addWidget(self.spectrogram, 1)
        left_layout.addWidget(live, 3)

        recognition = QGroupBox("Recognition")
        rec_outer = QVBoxLayout(recognition)
        rec_layout = QHBoxLayout()
        self.decision_display = DecisionDisplay()
        self.decision_display.setMinimumWidth(260)
        self.decision_display.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        rec_layout.addWidget(self.decision_display, 2)
        self.prob_bars = ProbabilityBars()
        rec_layout.addWidget(self.prob_bars, 3)
        rec_outer.addLayout(rec_layout, 1)
        rec_outer.addLayout(self._build_decision_controls())
        left_layout.addWidget(recognition, 2)
        splitter.addWidget(left)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_log_tab(), "Detections")
        self.tabs.addTab(self._build_files_tab(), "Files")
        self.tabs.addTab(self._build_model_tab(), "Model")
        self.tabs.addTab(self._build_record_tab(), "Record")
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([760, 500])
        self.setCentralWidget(central)

    def _build_decision_controls(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 0)
        row.addWidget(QLabel("Threshold"))
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(5, 99)
        self.threshold_slider.setFixedWidth(160)
        self.threshold_slider.setToolTip("Minimum smoothed probability of a detection")
        self.threshold_slider.valueChanged.connect(self._decision_changed)
        row.addWidget(self.threshold_slider)
        self.threshold_label = QLabel("0.00")  # set by _restore_settings
        self.threshold_label.setMinimumWidth(34)
        row.addWidget(self.threshold_label)

        row.addSpacing(24)
        row.addWidget(QLabel("Smoothing"))
        self.smoothing_spin = QDoubleSpinBox()
        self.smoothing_spin.setRange(0.1, 2.0)
        self.smoothing_spin.setSingleStep(0.1)
        self.smoothing_spin.setDecimals(1)
        self.smoothing_spin.setSuffix(" s")
        self.smoothing_spin.setToolTip("Probabilities are averaged over this window before deciding")
        self.smoothing_spin.valueChanged.connect(self._decision_changed)
        row.addWidget(self.smoothing_spin)
        row.addStretch(1)
        return row

    @staticmethod
    def _table(headers: Sequence[str]) -> QTableWidget:
        table = QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels(list(headers))
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setAlternatingRowColors(True)
        table.verticalHeader().setVisible(False)
        table.setShowGrid(False)
        table.horizontalHeader().setHighlightSections(False)
        return table

    def _build_log_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.detections_table = self._table(["Time", "Stream", "Command", "Confidence"])
        header = self.detections_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.detections_table, 1)
        buttons = QHBoxLayout()
        self.log_count_label = QLabel("No detections yet")
        self.log_count_label.setStyleSheet(f"color: {TEXT_DIM}")
        buttons.addWidget(self.log_count_label, 1)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear_log)
        export = QPushButton("Export CSV…")
        export.clicked.connect(self._choose_export_log)
        buttons.addWidget(clear)
        buttons.addWidget(export)
        layout.addLayout(buttons)
        return page

    def _build_files_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        hint = QLabel("Drop audio files or folders onto the window, or use File ▸ Classify files…")
        hint.setWordWrap(True)
        hint.setStyleSheet(f"color: {TEXT_DIM}")
        layout.addWidget(hint)
        progress_row = QHBoxLayout()
        self.files_progress = QProgressBar()
        self._files_progress_idle()
        progress_row.addWidget(self.files_progress, 1)
        self.files_cancel = QPushButton("Cancel")
        self.files_cancel.setEnabled(False)
        self.files_cancel.clicked.connect(self.cancel_classification)
        progress_row.addWidget(self.files_cancel)
        layout.addLayout(progress_row)
        self.files_table = self._table(["File", "Command", "Confidence", "Details"])
        self.files_table.setWordWrap(False)
        self.files_table.setTextElideMode(Qt.TextElideMode.ElideRight)
        # a long path keeps its file name: "clips/…/take-003.wav"
        self.files_table.setItemDelegateForColumn(0, _ElideMiddleDelegate(self.files_table))
        header = self.files_table.horizontalHeader()
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # in the order classified until a header is clicked
        self.files_table.setSortingEnabled(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in enumerate((150, 80, 80)):
            self.files_table.setColumnWidth(column, width)
        layout.addWidget(self.files_table, 1)
        buttons = QHBoxLayout()
        self.files_summary = QLabel("")
        self.files_summary.setStyleSheet(f"color: {TEXT_DIM}")
        self.files_summary.setWordWrap(True)  # a long summary must not widen the window
        buttons.addWidget(self.files_summary, 1)
        add_files = QPushButton("Add files…")
        add_files.clicked.connect(self._choose_files)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear_results)
        export = QPushButton("Export…")
        export.setToolTip("Save the results as CSV or JSON, in the format of speechrnn classify")
        export.clicked.connect(self._choose_export_results)
        buttons.addWidget(add_files)
        buttons.addWidget(clear)
        buttons.addWidget(export)
        layout.addLayout(buttons)
        return page

    def _build_model_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.model_fields: dict[str, QLabel] = {}
        for key in ("file", "status", "labels", "accuracy", "architecture", "parameters", "features", "trained on",
                    "compute"):
            label = QLabel("—")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.model_fields[key] = label
            form.addRow(f"{key.capitalize()}:", label)
        layout.addLayout(form)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        button = QPushButton("Open model…")
        button.clicked.connect(self._choose_model)
        row.addWidget(button)
        layout.addLayout(row)
        return page

    def _build_record_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        intro = QLabel("Collect your own examples: each recording of a word is saved as the next "
                       "16-bit WAV take in <folder>/<word>/take-NNN.wav; never overwritten.")
        intro.setWordWrap(True)
        intro.setStyleSheet(f"color: {TEXT_DIM}")
        layout.addWidget(intro)
        form = QFormLayout()
        self.record_word = QLineEdit()
        self.record_word.setPlaceholderText("e.g. yes  (empty: saved as recording_<time>.wav)")
        form.addRow("Word:", self.record_word)
        folder_row = QHBoxLayout()
        self.record_folder = QLineEdit()
        folder_row.addWidget(self.record_folder, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._choose_record_folder)
        folder_row.addWidget(browse)
        form.addRow("Folder:", folder_row)
        self.record_seconds = QDoubleSpinBox()
        self.record_seconds.setRange(0.5, 10.0)
        self.record_seconds.setSingleStep(0.5)
        self.record_seconds.setDecimals(1)
        self.record_seconds.setValue(1.0)
        self.record_seconds.setSuffix(" s")
        self.record_seconds.setMaximumWidth(110)
        self.record_seconds.valueChanged.connect(self._record_seconds_changed)
        form.addRow("Length:", self.record_seconds)
        layout.addLayout(form)
        row = QHBoxLayout()
        row.addStretch(1)
        self.record_tab_button = QPushButton("● Record")
        self.record_tab_button.setToolTip(self._record_tooltip())
        self.record_tab_button.clicked.connect(self.record_clip)
        row.addWidget(self.record_tab_button)
        layout.addLayout(row)
        self.record_status = QLabel("")
        self.record_status.setWordWrap(True)
        self.record_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.record_status)
        layout.addStretch(1)
        return page

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.status_labels: dict[str, QLabel] = {}
        for key, text in (("input", "Input: —"), ("rate", "— Hz"), ("compute", "Compute: —"),
                          ("inference", "Inference: — ms/hop"), ("dropped", "Dropped blocks: 0")):
            label = QLabel(text)
            self.status_labels[key] = label
            bar.addPermanentWidget(label)

    # ------------------------------------------------------------------------------------------ settings

    def _restore_settings(self) -> None:
        from speechrnn.decisions import DecisionConfig

        defaults = DecisionConfig()  # chosen on the validation stream (speechrnn.streaming_accuracy --tune)
        threshold = _float(self.settings.value("threshold"), defaults.threshold)
        smoothing = _float(self.settings.value("smoothing"), defaults.average_window_seconds)
        self.threshold_slider.blockSignals(True)
        self.smoothing_spin.blockSignals(True)
        self.threshold_slider.setValue(round(min(max(threshold, 0.05), 0.99) * 100))
        self.smoothing_spin.setValue(min(max(smoothing, 0.1), 2.0))
        self.threshold_slider.blockSignals(False)
        self.smoothing_spin.blockSignals(False)
        self.threshold_label.setText(f"{self.threshold:.2f}")
        self.prob_bars.set_threshold(self.threshold)

        folder = str(self.settings.value("record_folder", "") or "")
        if not folder:
            from speechrnn.userdata import recordings_dir

            folder = str(recordings_dir())
        self.record_folder.setText(folder)
        self.record_word.setText(str(self.settings.value("record_word", "") or ""))
        self.record_seconds.setValue(min(max(_float(self.settings.value("record_seconds"), 1.0), 0.5), 10.0))
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)

    def save_settings(self) -> None:
        """Remember input device, compute device, model, threshold, smoothing and recording folder."""
        self.settings.setValue("threshold", self.threshold)
        self.settings.setValue("smoothing", self.smoothing)
        if self._cuda is not None:  # the choice is only known once the GPU check is done
            self.settings.setValue("compute_device", self.compute_device)
        device = self.selected_input_device
        if device is not None:
            self.settings.setValue("input_device", device)
        if self._model is not None:
            self.settings.setValue("model_path", _remembered_model(self._model.path))
        self.settings.setValue("record_folder", self.record_folder.text())
        self.settings.setValue("record_word", self.record_word.text())
        self.settings.setValue("record_seconds", self.record_seconds.value())
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.sync()

    # ------------------------------------------------------------------------------------------ properties

    @property
    def classifier(self) -> Classifier | OnnxClassifier | None:
        """The loaded model, or None."""
        return self._model.classifier if self._model is not None else None

    @property
    def model_path(self) -> Path | None:
        """The loaded model's file, or None."""
        return self._model.path if self._model is not None else None

    @property
    def threshold(self) -> float:
        """Detection threshold in [0, 1]."""
        return self.threshold_slider.value() / 100.0

    @property
    def smoothing(self) -> float:
        """Averaging window of the decisions, seconds."""
        return float(self.smoothing_spin.value())

    @property
    def compute_device(self) -> str:
        """``cpu`` or ``cuda``."""
        return str(self.compute_combo.currentData())

    @property
    def selected_input_device(self) -> str | None:
        """Name of the chosen input device (None: the system default)."""
        data = self.device_combo.currentData()
        return str(data) if data else None

    @property
    def is_listening(self) -> bool:
        """Whether the listening thread is running."""
        return self._listen is not None

    @property
    def listening_thread(self) -> QThread | None:
        """The listening worker's thread while listening, else None."""
        return self._listen.thread if self._listen is not None else None

    @property
    def teach_dialog(self) -> QDialog | None:
        """The open *Teach a word* dialog, or None."""
        return self._teach_dialog

    @property
    def hop_compute_seconds(self) -> tuple[float, ...]:
        """Features + model time of the last (up to 30) hops on the listening thread, seconds."""
        return tuple(self._compute_times)

    @property
    def dropped_blocks(self) -> int:
        """Audio blocks the input dropped since listening started (the status bar's count)."""
        return self._dropped

    @property
    def paint_count(self) -> int:
        """How many times the live view was repainted (the ~30 fps timer's ticks)."""
        return self._paint_count

    @property
    def log_entries(self) -> tuple[LogEntry, ...]:
        """The detection log, oldest first."""
        return tuple(self._log)

    @property
    def file_results(self) -> tuple[FileRecord, ...]:
        """File classification results, in the order they were classified (the table may be sorted otherwise)."""
        return tuple(self._results)

    @property
    def last_error(self) -> str:
        """The last error message shown to the user ('' if none)."""
        return self._last_error

    def is_busy(self) -> bool:
        """Whether any worker thread (listening, loading, classifying, recording) is running."""
        return bool(self._threads)

    def decision_config(self) -> DecisionConfig:
        """The :class:`~speechrnn.decisions.DecisionConfig` from the threshold and smoothing controls.

        A smoothing window too short for the default minimum count of results at this hop (0.1 s
        holds two results 0.1 s apart) asks for as many as it can hold, so that it still detects.
        """
        from dataclasses import replace

        from speechrnn.decisions import DecisionConfig

        config = DecisionConfig(threshold=self.threshold, average_window_seconds=self.smoothing)
        return replace(config, minimum_count=min(config.minimum_count, config.results_in_window(self.hop_seconds)))

    # ------------------------------------------------------------------------------------------ messages

    def _show_banner(self, text: str, *, level: str = "error", topic: str = "") -> None:
        self.banner.show_message(text, level=level, topic=topic)
        if level == "error":
            self._last_error = text

    def _clear_banner(self, topic: str) -> None:
        self.banner.dismiss(topic)

    def _error_dialog(self, title: str, text: str) -> None:
        """Show an error without blocking the event loop (window-modal, opened asynchronously)."""
        self._last_error = text
        self.statusBar().showMessage(text, 10000)
        if self._error_box is not None:
            self._error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self._error_box = box

    # ------------------------------------------------------------------------------------------ threads

    def _start_thread(self, worker: Any) -> WorkerThread:
        runner = WorkerThread(worker, self)
        self._threads.add(runner)
        runner.done.connect(self._thread_done)
        runner.start()
        return runner

    @Slot()
    def _thread_done(self) -> None:
        for runner in [r for r in self._threads if not r.is_running()]:
            if runner.join(timeout_ms=1000):
                self._threads.discard(runner)
                runner.deleteLater()

    def shutdown(self, *, timeout_ms: int = STOP_TIMEOUT_MS) -> bool:
        """Stop every worker thread and wait until all have finished.

        Every task stops promptly when asked (a long recording's scan is checked every few
        seconds of audio), and a QThread destroyed while it runs aborts the app, so this waits
        for all of them however long it takes; ``timeout_ms`` only decides what is reported.

        Parameters
        ----------
        timeout_ms : int
            How long stopping may take to count as clean, milliseconds.

        Returns
        -------
        bool
            True when all threads finished within ``timeout_ms``.
        """
        self._closing = True
        self._paint_timer.stop()
        clean = _stop_threads(self._threads, timeout_ms=timeout_ms)
        self._listen = None
        return clean

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_settings()
        if self._error_box is not None:
            self._error_box.close()
        if self._teach_dialog is not None:
            self._teach_dialog.close()
        self.shutdown()
        event.accept()

    # ------------------------------------------------------------------------------------------ devices

    @Slot()
    def _refresh_clicked(self) -> None:
        self.refresh_devices(refresh=True)

    def refresh_devices(self, *, refresh: bool = True) -> bool:
        """List the input devices on a worker thread; the picker is filled when done.

        Parameters
        ----------
        refresh : bool
            Re-scan the system's devices. This re-initialises PortAudio, which must not happen
            while a stream is open: it is refused (with a message) while listening, while a
            recording has the input open and while the teach dialog records, and no input is
            opened until it is done.

        Returns
        -------
        bool
            False when refused: an input is open (with ``refresh``), or a listing is running.
        """
        busy = self._refresh_blocked() if refresh else ""
        if not busy and self._listing is not None:
            busy = "they are being listed"
        if busy:
            self.statusBar().showMessage(f"Cannot refresh the input devices now: {busy}", 5000)
            self._update_input_controls()
            return False
        lister = self.device_lister
        worker = TaskWorker(lambda context: lister(refresh), name="listing input devices")
        worker.succeeded.connect(self._devices_listed)
        worker.failed.connect(self._devices_failed)
        worker.finished.connect(self._listing_finished)
        self._listing, self._listing_reinitialises = self._start_thread(worker), refresh
        self._update_input_controls()
        return True

    def _refresh_blocked(self) -> str:
        """Why the input devices cannot be re-scanned now ('' when they can): an input is open."""
        return "stop listening first" if self._listen is not None else self._input_holder()

    def _listing_done(self) -> None:
        self._listing, self._listing_reinitialises = None, False
        self._update_input_controls()

    @Slot()
    def _listing_finished(self) -> None:
        """The listing's thread ended (after its result, or without one if it raised something unexpected)."""
        if self._listing is not None and self.sender() is self._listing.worker:
            self._listing_done()

    @Slot(object)
    def _devices_listed(self, devices: list[InputDevice]) -> None:
        self._listing_done()
        wanted = self._wanted_input or str(self.settings.value("input_device", "") or "")
        self._wanted_input = None
        # a device missing at the last listing is still the one wanted (until the user picks another)
        current = self._missing_input or self.selected_input_device or wanted
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        self._no_input = "" if devices else "no audio input device found; connect a microphone and press ⟳"
        if not devices:
            self.device_combo.addItem("No input device found", None)
            self.device_combo.blockSignals(False)
            self._update_input_controls()
            self._show_banner("No audio input device found: connect a microphone and press ⟳ "
                              "(classifying files still works).", level="warning", topic="audio")
            self._update_status()
            return
        default = 0
        for i, device in enumerate(devices):
            text = f"{device.name} (default)" if device.is_default else device.name
            self.device_combo.addItem(text, device.name)
            self.device_combo.setItemData(i, device.describe(), Qt.ItemDataRole.ToolTipRole)
            if device.is_default:
                default = i
        select = _match_device(devices, current, default=-1) if current else default
        self.device_combo.setCurrentIndex(default if select < 0 else select)
        self.device_combo.blockSignals(False)
        self._missing_input = current if select < 0 else None
        if select < 0:  # asked for (or remembered) but not there now: the system default, and say so
            self._show_banner(f"Input device '{current}' not found: using {devices[default].name}. Choose "
                              "another in the list, or reconnect it and press ⟳.", level="warning", topic="audio")
        else:
            self._clear_banner("audio")
        self._update_status()

    @Slot(str)
    def _devices_failed(self, message: str) -> None:
        self._listing_done()
        message = message.removeprefix("audio input is unavailable: ")  # the banner says it already
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        self.device_combo.addItem("Audio input unavailable", None)
        self.device_combo.blockSignals(False)
        self._no_input = f"audio input unavailable ({message}); press ⟳ to look again"
        self._update_input_controls()
        self._show_banner(f"Audio input unavailable: {message} (classifying files still works)",
                          level="warning", topic="audio")
        self._update_status()

    @Slot(int)
    def _device_changed(self, index: int) -> None:
        self._missing_input = None  # the user chose: stop waiting for a missing device
        device = self.selected_input_device
        if device is not None:
            self.settings.setValue("input_device", device)
            # a real device was chosen, as the "not found" (or a failed input's) banner asked: it is answered
            self._clear_banner("audio")
            self._clear_banner("recording")
        if self.is_listening:  # listen to the new device instead
            self._resume_listening = True
            self.stop_listening()
        self._update_status()

    # ------------------------------------------------------------------------------------------ model

    def _check_cuda(self) -> None:
        """Ask PyTorch for a CUDA GPU on a worker thread; then choose the compute device and load the model."""
        worker = TaskWorker(lambda context: cuda_available(), name="checking for a CUDA GPU")
        worker.succeeded.connect(self._cuda_checked)
        worker.failed.connect(self._cuda_check_failed)
        self._start_thread(worker)

    @Slot(str)
    def _cuda_check_failed(self, message: str) -> None:
        self._show_banner(f"PyTorch could not be started: {message}", level="error", topic="compute")
        self._cuda_checked(False)

    @Slot(object)
    def _cuda_checked(self, available: bool) -> None:
        if self._closing:
            return
        self._cuda = bool(available)
        gpu = self.compute_combo.model().item(1)
        gpu.setEnabled(self._cuda)
        if self._cuda:
            self.compute_combo.setToolTip("Where the model runs")
            gpu.setToolTip("")
        else:
            reason = "GPU unavailable: no CUDA GPU here (no GPU driver, or torch.cuda.is_available() is False)"
            gpu.setToolTip(reason)
            self.compute_combo.setToolTip(reason)
            self.gpu_note.setToolTip(reason)
        self._gpu_note_action.setVisible(not self._cuda)
        requested = self._requested_compute
        wanted = (requested or str(self.settings.value("compute_device", "auto"))).strip().lower()
        if wanted == "auto":
            wanted = "cuda" if self._cuda else "cpu"
        if wanted.startswith("cuda") and not self._cuda:
            if requested is not None:
                self._show_banner("CUDA was requested but PyTorch finds no CUDA GPU here: using the CPU.",
                                  level="warning", topic="compute")
            wanted = "cpu"
        self.compute_combo.blockSignals(True)
        self.compute_combo.setCurrentIndex(1 if wanted.startswith("cuda") else 0)
        self.compute_combo.blockSignals(False)
        self._update_status()
        self._load_initial_model(self._initial_model)

    def _load_initial_model(self, model_path: str | os.PathLike[str] | None) -> None:
        from speechrnn import default_model_path

        if model_path is not None:
            self.open_model(model_path, interactive=False)
            return
        remembered = str(self.settings.value("model_path", "") or "")
        if remembered and Path(remembered).is_file() and not _is_shipped_model(remembered):
            self.open_model(remembered, interactive=False)
            return
        default = default_model_path()
        if default.is_file():
            self.open_model(default, interactive=False)
            return
        self._show_no_model(f"{NO_MODEL_MESSAGE} — the default model ({default}) is not installed.")

    def _show_no_model(self, text: str) -> None:
        self._show_banner(text, level="warning", topic="model")
        self.model_fields["status"].setText(text)
        self._update_controls()

    @Slot()
    def _choose_model(self) -> None:
        start = str(self.model_path.parent) if self.model_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, "speechrnn models (*.pt);;All files (*)")
        if path:
            self.open_model(path)

    def open_model(self, path: str | os.PathLike[str], *, interactive: bool = True,
                   device: str | None = None) -> None:
        """Load a model file on a worker thread; the current model stays until the new one is ready.

        Parameters
        ----------
        path : path-like
        interactive : bool
            A failure is shown in a message box (True) or only in the banner (startup).
        device : {"cpu", "cuda"}, optional
            Default: the compute-device choice.
        """
        path = Path(path)
        device = device or self.compute_device
        self.model_fields["status"].setText(f"Loading {path.name} on {device.upper()}…")
        self.statusBar().showMessage(f"Loading model {path}…")
        worker = TaskWorker(lambda context: load_model(path, device=device), name=f"loading {path}")
        worker.succeeded.connect(self._model_loaded)
        worker.failed.connect(self._model_failed_interactive if interactive else self._model_failed_startup)
        self._start_thread(worker)

    @Slot(object)
    def _model_loaded(self, loaded: LoadedModel) -> None:
        if self._closing:
            return
        previous = self._model
        self._model = loaded
        self.settings.setValue("model_path", _remembered_model(loaded.path))
        facts = summarize_model(loaded.classifier)
        self.model_fields["file"].setText(str(loaded.path))
        self.model_fields["status"].setText("Loaded")
        for key in ("labels", "accuracy", "architecture", "parameters", "features", "trained on"):
            self.model_fields[key].setText(facts.get(key, "—"))
        self.model_fields["compute"].setText(loaded.compute_text)
        if previous is None or previous.classifier.labels != loaded.classifier.labels:
            self.prob_bars.set_labels(loaded.classifier.labels)
        features = loaded.classifier.feature_config
        if self.spectrogram.n_mels != features.n_mels:
            self.spectrogram.reset(n_mels=features.n_mels, frames_per_second=1.0 / features.hop_seconds)
        if self._listen is not None:
            if previous is not None and previous.classifier.feature_config.sample_rate != features.sample_rate:
                self._resume_listening = True  # reopen the input at the new model's rate
                self.stop_listening()
            else:
                self._listen.worker.set_classifier(loaded.classifier)
        self._clear_banner("model")
        self.statusBar().showMessage(f"Model {loaded.path.name} loaded ({len(loaded.classifier.labels)} classes, "
                                     f"{loaded.device.upper()})", 5000)
        self._update_controls()
        self._update_status()

    @Slot(str)
    def _model_failed_interactive(self, message: str) -> None:
        self._model_failed(message, interactive=True)

    @Slot(str)
    def _model_failed_startup(self, message: str) -> None:
        self._model_failed(message, interactive=False)

    def _model_failed(self, message: str, *, interactive: bool) -> None:
        if self._closing:
            return
        kept = f" Still using {self._model.path.name}." if self._model is not None else ""
        self.model_fields["status"].setText(f"Refused: {message}" if self._model is None else "Loaded")
        if interactive:
            self._error_dialog("Cannot open model", f"Cannot open the model: {message}.{kept}")
            self._show_banner(f"Model refused: {message}.{kept}", level="error", topic="model")
        else:
            self._show_banner(f"{NO_MODEL_MESSAGE} — {message}" if self._model is None else f"{message}{kept}",
                              level="error", topic="model")
            self._last_error = message
            # replaces open_model's "Loading model …", which otherwise stayed for good
            self.statusBar().showMessage(f"Model not loaded: {message}", 10000)
        self._update_controls()

    @Slot(int)
    def _compute_changed(self, index: int) -> None:
        device = self.compute_device
        self.settings.setValue("compute_device", device)
        if self._model is not None and self._model.device != device:
            self.open_model(self._model.path, device=device)
        self._update_status()

    # ------------------------------------------------------------------------------------------ listening

    @Slot()
    def _listen_button_clicked(self) -> None:
        self.toggle_listening()

    @Slot()
    def toggle_listening(self) -> None:
        """Start listening, or stop if listening."""
        if self.is_listening:
            self.stop_listening()
        else:
            self.start_listening()

    def start_listening(self) -> bool:
        """Open the input and start recognizing on the listening thread.

        Returns
        -------
        bool
            False when no model is loaded, a recording or the teach dialog has the input open, or
            already listening.
        """
        if self._listen is not None:
            return False
        if self._model is None:
            self._show_no_model(NO_MODEL_MESSAGE)
            self._update_controls()
            return False
        busy = self._input_taken()
        if busy:  # never open the input twice (some platforms cannot share a device)
            self.statusBar().showMessage(f"Cannot start listening now: {busy}", 5000)
            self._update_controls()
            return False
        worker = ListenWorker(
            source_factory=self.source_factory,
            device=self.selected_input_device,
            classifier=self._model.classifier,
            decision=self.decision_config(),
            hop_seconds=self.hop_seconds,
        )
        worker.opened.connect(self._listen_opened)
        worker.updated.connect(self._live_update)
        worker.failed.connect(self._listen_failed)
        worker.recorded.connect(self._listener_recorded)
        worker.finished.connect(self._listen_finished)
        self._compute_times.clear()
        self._latest_level = None
        self.spectrogram.reset()
        self.decision_display.clear()
        self.decision_display.set_idle_text("Starting…")
        self._listen = self._start_thread(worker)
        self._update_controls()
        return True

    def stop_listening(self) -> None:
        """Ask the listening thread to stop (it finishes within a fraction of a second)."""
        if self._listen is not None:
            self._listen.worker.request_stop()
            self.decision_display.set_idle_text("Stopping…")

    def _stop_listening_now(self) -> bool:
        """Stop listening and wait until the listening thread has closed the input.

        Blocks the GUI thread for about one read timeout plus one model step.

        Returns
        -------
        bool
            True when listening has ended; False when the thread did not finish within
            ``STOP_TIMEOUT_MS`` (it keeps stopping in the background, and is never dropped).
        """
        runner = self._listen
        if runner is None:
            return True
        self.stop_listening()
        if not runner.stop(timeout_ms=STOP_TIMEOUT_MS):
            return False
        self._listening_ended("stopped")  # its own (queued) finished signal is ignored when it arrives
        return True

    def _from_listener(self) -> bool:
        """Whether the signal being handled comes from the current listening worker (not one wound up)."""
        return self._listen is not None and self.sender() is self._listen.worker

    @Slot(object)
    def _listen_opened(self, info: SourceInfo) -> None:
        if not self._from_listener():
            return
        self._source_info = info
        self._clear_banner("audio")
        self._clear_banner("recording")  # the input works now
        self.decision_display.set_idle_text("Listening…")
        self._update_status()

    @Slot(object)
    def _live_update(self, update: LiveUpdate) -> None:
        if self._closing or self._listen is None:
            return
        if update.labels != self.prob_bars.labels:
            self.prob_bars.set_labels(update.labels)
        for step in update.steps:
            self.spectrogram.append_frames(step.frames)
            self._compute_times.append(step.compute_seconds)
            if step.detection is not None:
                self._add_detection(step.detection.label, step.detection.score, step.detection.time)
        last = update.steps[-1]
        self._latest_probabilities = last.average if np.any(last.average) else last.probabilities
        self._latest_level = last.level_db
        self._dropped, self._overflows = update.dropped_blocks, update.overflows

    @Slot(str)
    def _listen_failed(self, message: str) -> None:
        if self._closing:
            return
        self._show_banner(f"Audio input problem: {message}. Listening stopped; classifying files still works.",
                          level="error", topic="audio")

    @Slot(str)
    def _listen_finished(self, reason: str) -> None:
        if not self._closing and self._from_listener():
            self._listening_ended(reason)

    def _listening_ended(self, reason: str) -> None:
        """Wind up after the listening thread has ended (``reason`` as in ``ListenWorker.finished``)."""
        self._listen = None
        self._source_info = None
        self._latest_level = None
        self.decision_display.set_idle_text({"end of input": "Input ended", "error": "Input failed"}.get(
            reason, "Stopped"))
        if reason == "end of input":
            self.statusBar().showMessage("The input ended", 5000)
        if self._recording is not None and self._recording.listener:  # only the listener's own recording
            self._recording = None
            self.record_status.setText("Recording interrupted: the input stopped")
            self.statusBar().showMessage("Recording interrupted: the input stopped", 5000)
        self._update_controls()
        self._update_status()
        self._maybe_resume_listening()

    @Slot()
    def _decision_changed(self) -> None:
        self.threshold_label.setText(f"{self.threshold:.2f}")
        self.prob_bars.set_threshold(self.threshold)
        self.settings.setValue("threshold", self.threshold)
        self.settings.setValue("smoothing", self.smoothing)
        if self._listen is not None:
            self._listen.worker.set_decision(self.decision_config())

    # ------------------------------------------------------------------------------------------ detection log

    def _add_detection(self, label: str, score: float, stream_time: float) -> None:
        entry = LogEntry(wall_time=datetime.now(), stream_time=float(stream_time), label=label, score=float(score))
        self._log.append(entry)
        self.decision_display.show_detection(label, score)
        table = self.detections_table
        table.insertRow(0)
        cells = (entry.wall_time.strftime("%H:%M:%S"), f"{entry.stream_time:.2f} s", display_label(label),
                 f"{score * 100:.1f}%")
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if column in (1, 3):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if column == 2:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            table.setItem(0, column, item)
        self.log_count_label.setText(f"{len(self._log)} detection{'s' if len(self._log) != 1 else ''}")

    @Slot()
    def clear_log(self) -> None:
        """Empty the detection log."""
        self._log.clear()
        self.detections_table.setRowCount(0)
        self.log_count_label.setText("No detections yet")

    def export_log_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the detection log (oldest first) as CSV: time, stream_seconds, command, confidence."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time", "stream_seconds", "command", "confidence"])
            for entry in self._log:
                writer.writerow([entry.wall_time.isoformat(timespec="milliseconds"), f"{entry.stream_time:.3f}",
                                 entry.label, f"{entry.score:.4f}"])
        return path

    @Slot()
    def _choose_export_log(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export detections", str(Path.home() / "detections.csv"),
                                              "CSV files (*.csv)")
        if path:
            self._export(self.export_log_csv, path)

    def _export(self, writer: Callable[[str], Path], path: str) -> None:
        try:
            written = writer(path)
        except OSError as exc:
            self._error_dialog("Export failed", f"Cannot write {path}: {exc.strerror or exc}")
            return
        self.statusBar().showMessage(f"Saved {written}", 5000)

    # ------------------------------------------------------------------------------------------ files

    @Slot()
    def _choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Classify audio files", str(Path.home()),
                                                "Audio (*.wav *.flac *.ogg *.mp3 *.m4a *.opus *.aiff);;All files (*)")
        if paths:
            self.classify_paths(paths)

    @Slot()
    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Classify a folder", str(Path.home()))
        if folder:
            self.classify_paths([folder])

    def classify_paths(self, paths: Sequence[str | os.PathLike[str]]) -> bool:
        """Classify files and folders (searched recursively) on a worker thread; rows appear as they finish.

        Returns
        -------
        bool
            False when no model is loaded or a classification is already running.
        """
        if self._model is None:
            self._error_dialog("No model", NO_MODEL_MESSAGE)
            return False
        if self._classify_thread is not None:
            self.statusBar().showMessage("A classification is already running: wait or cancel it", 5000)
            return False
        classifier = self._model.classifier
        inputs = [Path(p) for p in paths]
        self._classify_roots = inputs
        decision = self.decision_config()

        def job(context: TaskContext) -> list[FileRecord]:
            unlisted: list[FileRecord] = []  # folders that cannot be read: an error row each

            def folder_error(folder: str, reason: str) -> None:
                from speechrnn.classify import FileRecord

                unlisted.append(FileRecord(path=folder, error=reason))
                context.item(unlisted[-1])

            files = expand_paths(inputs, on_error=folder_error)
            return unlisted + classify_files(files, classifier, context=context, decision=decision)

        worker = TaskWorker(job, name="classifying files")
        worker.progress.connect(self._classify_progress)
        worker.item.connect(self._classify_item)
        worker.status.connect(self._classify_status)
        worker.succeeded.connect(self._classify_done)
        worker.failed.connect(self._classify_failed)
        worker.finished.connect(self._classify_finished)
        self.files_progress.setRange(0, 0)  # busy until the files are counted
        self.files_progress.setFormat("%v / %m files")
        self.files_cancel.setEnabled(True)
        self.files_summary.setText("Classifying…")
        self.tabs.setCurrentIndex(1)
        self._classify_thread = self._start_thread(worker)
        return True

    def is_classifying(self) -> bool:
        """Whether a file classification is running."""
        return self._classify_thread is not None

    @Slot()
    def cancel_classification(self) -> None:
        """Stop the running classification (within a few seconds of audio even inside a long recording)."""
        if self._classify_thread is not None:
            self._classify_thread.worker.request_stop()
            self.files_summary.setText("Cancelling…")

    def _files_progress_idle(self) -> None:
        """No run to show: an empty bar without text (it said "0 / 1 files" before any run)."""
        self.files_progress.setRange(0, 1)
        self.files_progress.setValue(0)
        self.files_progress.setFormat("")

    @Slot(int, int)
    def _classify_progress(self, done: int, total: int) -> None:
        self.files_progress.setRange(0, max(total, 1))
        self.files_progress.setValue(done)

    def _classification_cancelled(self) -> bool:
        return self._classify_thread is not None and self._classify_thread.worker.cancel_requested

    @Slot(object)
    def _classify_status(self, progress: ScanProgress) -> None:
        if not self._classification_cancelled():
            self.files_summary.setText(f"Scanning {self._display_path(progress.path)}: {progress.seconds:.0f} s…")

    @Slot(object)
    def _classify_item(self, result: FileRecord) -> None:
        self._results.append(result)
        if not self._classification_cancelled():
            self.files_summary.setText("Classifying…")  # a long file's "Scanning …" is over
        table = self.files_table
        sorting = table.isSortingEnabled()
        table.setSortingEnabled(False)  # else the row moves as soon as its first cell is set
        row = table.rowCount()
        table.insertRow(row)
        if result.error:
            prefix = f"{result.path}: "
            details = result.error[len(prefix):] if result.error.startswith(prefix) else result.error
        else:
            parts = []
            if result.detections:
                parts.append("found " + ", ".join(f"{display_label(d.label)} at {d.time:.1f} s"
                                                  for d in result.detections))
            shown = [(name, p) for i, (name, p) in enumerate(result.top_k) if i == 0 or p >= 0.01]
            parts.append("top: " + ", ".join(f"{display_label(name)} {p * 100:.0f}%" for name, p in shown))
            details = "; ".join(parts)
        cells = (self._display_path(result.path), display_label(result.label) if result.label else "error",
                 f"{result.score * 100:.1f}%" if result.score is not None else "—", details)
        for column, text in enumerate(cells):
            item = _SortableItem(text) if column == 2 else QTableWidgetItem(text)
            item.setToolTip(result.path if column == 0 else (result.error or text) if column == 3 else text)
            if result.error:
                item.setForeground(QColor(ERROR))
            elif column == 1:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            if column == 2:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setData(SORT_ROLE, -1.0 if result.score is None else float(result.score))  # not as text
            table.setItem(row, column, item)
        table.setSortingEnabled(sorting)  # sorts the new row into place

    def _display_path(self, path: str) -> str:
        """``path`` relative to the folder it was found in (its name for files given directly)."""
        target = Path(path)
        for root in self._classify_roots:
            if root.is_dir():
                try:
                    return str(target.relative_to(root))
                except ValueError:
                    continue
        return target.name

    @Slot(object)
    def _classify_done(self, results: list[FileRecord]) -> None:
        errors = sum(1 for r in results if r.error)
        classified = len(results) - errors  # a file that could not be read was not classified
        text = f"{classified} file{'s' if classified != 1 else ''} classified"
        if errors:
            text += f", {errors} could not be read"
        if self._classification_cancelled():
            text = f"Cancelled: {text}"
            self.files_progress.setFormat("Cancelled at %v / %m files")
        elif not results:
            text = "No audio files found"
        self.files_summary.setText(text)
        self.statusBar().showMessage(text, 5000)

    @Slot(str)
    def _classify_failed(self, message: str) -> None:
        self.files_summary.setText(f"Failed: {message}")
        self._files_progress_idle()
        self._error_dialog("Classification failed", message)

    @Slot()
    def _classify_finished(self) -> None:
        self._classify_thread = None
        self.files_cancel.setEnabled(False)
        if self.files_progress.maximum() == 0:  # ended before the files were counted
            self._files_progress_idle()

    @Slot()
    def clear_results(self) -> None:
        """Empty the file results table (and its progress bar, unless a classification is running)."""
        self._results.clear()
        self.files_table.setRowCount(0)
        if self._classify_thread is None:
            self.files_summary.setText("")
            self._files_progress_idle()

    def export_results(self, path: str | os.PathLike[str], *, fmt: str | None = None) -> Path:
        """Write the file results (in the order classified) in the command line's CSV or JSON format.

        Written by :func:`speechrnn.classify.write_records`, as ``speechrnn classify --format csv|json``.

        Parameters
        ----------
        path : path-like
        fmt : {"csv", "json"}, optional
            Default: ``json`` for a ``.json`` file, else ``csv``.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        ValueError
            An unknown ``fmt``.
        OSError
            The file cannot be written.
        """
        from speechrnn.classify import write_records

        path = Path(path)
        fmt = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
        if fmt not in ("csv", "json"):
            raise ValueError(f"unknown export format {fmt!r}: use csv or json")
        with path.open("w", newline="", encoding="utf-8") as handle:
            write_records(handle, self._results, fmt)  # the command line's own writer
        return path

    @Slot()
    def _choose_export_results(self) -> None:
        json_filter = "JSON files (*.json)"
        path, chosen = QFileDialog.getSaveFileName(self, "Export file results", str(Path.home() / "results.csv"),
                                                   f"CSV files (*.csv);;{json_filter}")
        if not path:
            return
        suffix = Path(path).suffix.lower()
        if suffix not in (".csv", ".json"):  # the format follows the name, else the filter chosen
            fmt = "json" if chosen == json_filter else "csv"
            path = f"{path}.{fmt}" if not suffix else path
        else:
            fmt = suffix[1:]
        self._export(partial(self.export_results, fmt=fmt), path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragEnterEvent) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.classify_paths(paths)

    # ------------------------------------------------------------------------------------------ recording

    @Slot(float)
    def _record_seconds_changed(self, seconds: float) -> None:
        self.record_button.setText(f"● Record {seconds:g} s")

    @Slot()
    def _choose_record_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for recordings", self.record_folder.text())
        if folder:
            self.record_folder.setText(folder)

    @Slot()
    def _choose_record_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Record a clip to", self.record_folder.text(),
                                              "WAV files (*.wav)")
        if path:
            self.record_clip(path=path if path.lower().endswith(".wav") else f"{path}.wav")

    def record_clip(self, *, path: str | os.PathLike[str] | None = None) -> bool:
        """Record the Record tab's length of audio from the input and save it as WAV.

        While listening, the clip is taken from the running input (and ends with it); otherwise
        the input is opened on a worker thread just for the recording, and listening cannot start
        until it is saved. Without ``path`` the clip is saved as the next take of the Record tab's
        word (``<folder>/<word>/take-NNN.wav``, see :func:`speechrnn.userdata.save_recording`), or
        as ``<folder>/recording_<time>.wav`` when no word is given; where is fixed when it starts.

        Parameters
        ----------
        path : path-like, optional
            Save exactly here instead.

        Returns
        -------
        bool
            False when a recording is already in progress.
        """
        if self._recording is not None:
            self.statusBar().showMessage("A recording is already in progress", 3000)
            return False
        busy = self._input_taken()
        if busy:
            self.statusBar().showMessage(f"Cannot record now: {busy}", 5000)
            return False
        seconds = float(self.record_seconds.value())
        rate = self._model.classifier.feature_config.sample_rate if self._model is not None else 16000
        target = _RecordTarget(path=None if path is None else Path(path),
                               folder=Path(self.record_folder.text()).expanduser(),
                               word=self.record_word.text().strip(), sample_rate=rate,
                               listener=self._listen is not None)
        self._recording = target
        self.settings.setValue("record_folder", self.record_folder.text())
        self.settings.setValue("record_word", self.record_word.text())
        self.record_status.setText(f"Recording {seconds:g} s…")
        self.statusBar().showMessage(f"Recording {seconds:g} s…")
        if self._listen is not None:
            self._listen.worker.request_recording(seconds)
            self._update_controls()
            return True
        factory, device = self.source_factory, self.selected_input_device

        def job(context: TaskContext) -> _Recorded:
            return _Recorded(target=target, audio=record_clip(factory(device, rate), seconds, context=context))

        worker = TaskWorker(job, name="recording")
        worker.succeeded.connect(self._recorded_alone)
        worker.failed.connect(self._record_failed)
        worker.cancelled.connect(self._record_cancelled)
        worker.finished.connect(self._record_job_finished)
        self._record_job = self._start_thread(worker)
        self._update_controls()
        return True

    @Slot(object)
    def _listener_recorded(self, audio: np.ndarray) -> None:
        """A clip from the listening thread: the listener's own recording, if it is still waiting for it."""
        target = self._recording
        if target is None or not target.listener or not self._from_listener():
            return
        self._recording = None
        self._update_controls()
        self._save_recording(target, audio)

    @Slot(object)
    def _recorded_alone(self, recorded: _Recorded) -> None:
        """A recording's worker thread delivered its clip (the job is wound up in :meth:`_record_job_finished`)."""
        self._save_recording(recorded.target, recorded.audio)

    @Slot()
    def _record_job_finished(self) -> None:
        self._record_job = None
        if self._recording is not None and not self._recording.listener:
            self._recording = None  # saved, failed or cancelled: that job's outcome was handled already
        self._update_controls()
        self._maybe_resume_listening()

    def _save_recording(self, target: _RecordTarget, audio: np.ndarray) -> None:
        """Save a finished recording where ``target`` (fixed when Record was pressed) says."""
        from speechrnn.errors import SpeechRNNError
        from speechrnn.userdata import save_recording

        rate = target.sample_rate
        try:
            if target.path is not None:
                written = save_wav(target.path, audio, sample_rate=rate)
            elif target.word:
                written = save_recording(target.word, audio, rate, root=target.folder)
            else:
                written = save_wav(target.folder / time.strftime("recording_%Y%m%d-%H%M%S.wav"), audio,
                                   sample_rate=rate)
        except (OSError, SpeechRNNError) as exc:
            self.record_status.setText(f"Not saved: {exc}")
            self._error_dialog("Recording not saved", f"The recording was not saved: {exc}")
            return
        self._last_recording = written
        self._clear_banner("recording")  # an earlier recording's failure is over
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        note = " — silent: check the input" if peak < 1e-4 else ""
        self.record_status.setText(f"Saved {written} ({audio.shape[0] / rate:.2f} s, peak {peak:.2f}){note}")
        self.statusBar().showMessage(f"Saved {written}", 5000)

    @Slot(str)
    def _record_failed(self, message: str) -> None:
        if self._closing:
            return
        self.record_status.setText(f"Recording failed: {message}")
        self.statusBar().showMessage(f"Recording failed: {message}", 10000)  # not "Recording 1 s…" for good
        self._show_banner(f"Recording failed: {message}", level="error", topic="recording")

    @Slot()
    def _record_cancelled(self) -> None:
        if not self._closing and not self.record_status.text().startswith("Recording cancelled"):
            self.record_status.setText("Recording cancelled")
        if not self._closing:
            self.statusBar().showMessage("Recording cancelled", 5000)

    def is_recording(self) -> bool:
        """Whether a recording is in progress."""
        return self._recording is not None

    @property
    def last_recording(self) -> Path | None:
        """The file the last recording was saved to, or None."""
        return self._last_recording

    # ------------------------------------------------------------------------------------------ teaching

    @Slot()
    def open_teach_dialog(self) -> QDialog | None:
        """Open the *Teach a word* dialog (:mod:`gui.teach`) for the loaded model and input.

        Returns
        -------
        QDialog or None
            The dialog (the same one while it is open), or None when it cannot be opened.
        """
        if self._teach_dialog is not None:
            self._teach_dialog.raise_()
            self._teach_dialog.activateWindow()
            return self._teach_dialog
        try:
            from gui.teach import TeachWordDialog
        except ImportError as exc:
            self._error_dialog("Teach a word", f"Teaching words is not available: {exc}")
            return None
        rate = self._model.classifier.feature_config.sample_rate if self._model is not None else 16000
        dialog = TeachWordDialog(self.model_path, source_factory=self.source_factory,
                                 device=self.selected_input_device, sample_rate=rate, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.model_ready.connect(self._taught_model_ready)
        # direct: the dialog opens its input as soon as the handler returns, so it must have been released
        dialog.microphone_needed.connect(self._teach_needs_microphone, Qt.ConnectionType.DirectConnection)
        dialog.finished.connect(self._teach_dialog_closed)
        self._teach_dialog = dialog
        dialog.show()
        return dialog

    @Slot(str)
    def _taught_model_ready(self, path: str) -> None:
        self.open_model(path)

    @Slot(bool)
    def _teach_needs_microphone(self, needed: bool) -> None:
        """Give the input to the teach dialog while it records (some platforms cannot share a device).

        Called directly by the dialog just before it opens its input: live listening is paused and
        a recording of the Record tab cancelled, and this returns only once their threads have
        closed the input (and a refresh of the device list has finished). Listening resumes when
        the dialog says it is done.
        """
        self._teach_uses_microphone = needed
        if needed and self._listen is not None:
            self._resume_listening = True
            if not self._stop_listening_now():
                self._show_banner("The input did not close in time for the Teach a word dialog; it may fail to "
                                  "open it.", level="warning", topic="audio")
        if needed and self._record_job is not None:
            self._record_job.stop(timeout_ms=STOP_TIMEOUT_MS)  # it is wound up when its signals arrive
            self.record_status.setText("Recording cancelled: the Teach a word dialog needed the input")
        if needed and self._listing is not None and self._listing_reinitialises:
            self._listing.join(timeout_ms=STOP_TIMEOUT_MS)  # PortAudio is re-initialised: let it finish
        self._update_controls()
        self._maybe_resume_listening()

    @Slot()
    def _teach_dialog_closed(self) -> None:
        self._teach_dialog = None
        self._teach_uses_microphone = False
        self._update_controls()
        self._maybe_resume_listening()

    def _maybe_resume_listening(self) -> None:
        """Listen again once the teach dialog has released the microphone and listening has stopped."""
        if (self._resume_listening and not self._teach_uses_microphone and self._listen is None
                and self._record_job is None and not self._closing):
            self._resume_listening = False
            self.start_listening()

    # ------------------------------------------------------------------------------------------ painting

    def _update_controls(self) -> None:
        self._update_input_controls()
        listening = self._listen is not None
        if not listening and self._model is None:
            self.decision_display.set_idle_text("No model loaded")
        elif not listening and self.decision_display.idle_text == "No model loaded":
            self.decision_display.set_idle_text("Ready")

    def _update_input_controls(self) -> None:
        """Enable what may use the input now: listen, record and refresh (never two streams, no refresh with one)."""
        listening = self._listen is not None
        has_model = self._model is not None
        self.listen_button.blockSignals(True)
        self.listen_button.setChecked(listening)
        self.listen_button.blockSignals(False)
        taken = self._input_taken()
        missing = self._no_input  # nothing to open until a refresh finds an input
        self.listen_button.setText("■ Stop listening" if listening else "● Start listening")
        self.listen_button.setEnabled(listening or (has_model and not taken and not missing))
        keys = self.listen_action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        self.listen_button.setToolTip(f"Stop listening ({keys})" if listening else NO_MODEL_MESSAGE if not has_model
                                      else f"Not now: {taken}" if taken else f"Not now: {missing}" if missing else
                                      f"Recognize commands from the input as they are spoken ({keys})")
        self.listen_action.setText("&Stop listening" if listening else "&Start listening")
        self.listen_action.setEnabled(listening or (has_model and not taken and not missing))
        can_record = self._recording is None and not taken and not missing
        for control in (self.record_button, self.record_tab_button, self.record_action, self.record_as_action):
            control.setEnabled(can_record)
        for button in (self.record_button, self.record_tab_button):
            button.setToolTip(f"Not now: {missing}" if missing else self._record_tooltip())
        refresh_blocked = self._refresh_blocked()
        for control in (self.refresh_button, self.refresh_action):
            control.setEnabled(self._listing is None and not refresh_blocked)
        self.refresh_button.setToolTip(f"Refresh the list of input devices — not now: {refresh_blocked}"
                                       if refresh_blocked else "Refresh the list of input devices")

    def _input_holder(self) -> str:
        """Who else has the input open, besides listening ('' when nobody)."""
        if self._record_job is not None:
            return "a recording has the input open; wait for it to be saved"
        if self._teach_uses_microphone:
            return "the Teach a word dialog is recording"
        return ""

    def _input_taken(self) -> str:
        """Why the input cannot be opened now ('' when it can): who else has it open, or a refresh."""
        if self._listing is not None and self._listing_reinitialises:
            return self._input_holder() or "the input devices are being refreshed"
        return self._input_holder()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_device_combo()

    def _fit_device_combo(self) -> None:
        """Let the input picker show whole device names ("… (default)") where the window has room.

        A fixed 260 px cut them even on a 1920 px wide window; a picker as wide as the longest name
        would push the toolbar's other controls into its overflow menu on a small one.
        """
        self.device_combo.setMaximumWidth(max(DEVICE_COMBO_MIN_WIDTH, round(self.width() * DEVICE_COMBO_SHARE)))

    def _update_status(self) -> None:
        labels = self.status_labels
        chosen = self.device_combo.currentText()
        self.device_combo.setToolTip(f"{chosen}\n{DEVICE_TOOLTIP}" if chosen else DEVICE_TOOLTIP)
        if self._source_info is not None:
            labels["input"].setText(f"Input: {self._source_info.name}")
            info = self._source_info
            resampled = info.native_rate is not None and info.native_rate != info.sample_rate
            labels["rate"].setText(f"{info.native_rate} Hz → {info.sample_rate} Hz" if resampled
                                   else f"{info.sample_rate} Hz")
            labels["rate"].setToolTip(f"the input records at {info.native_rate} Hz, resampled to the model's "
                                      f"{info.sample_rate} Hz" if resampled else "the input's sample rate")
        else:
            device = self.device_combo.currentText() or "—"
            labels["input"].setText(f"Input: {device}")
            labels["rate"].setText("— Hz")
        compute = self._model.compute_text if self._model is not None else self.compute_device.upper()
        labels["compute"].setText(f"Compute: {compute}")
        if self._compute_times:
            ms = 1000.0 * float(np.median(self._compute_times))  # robust to the first call's warm-up
            labels["inference"].setText(f"Inference: {ms:.1f} ms/hop")
        else:
            labels["inference"].setText("Inference: — ms/hop")
        dropped = f"Dropped blocks: {self._dropped}"
        if self._overflows:
            dropped += f" (+{self._overflows} overflows)"
        labels["dropped"].setText(dropped)

    @Slot()
    def _paint(self) -> None:
        """Repaint the live state (runs ~30 times a second on the GUI thread)."""
        self._paint_count += 1
        self.spectrogram.refresh()
        self.level_meter.set_level(self._latest_level)
        if self._latest_probabilities is not None:
            self.prob_bars.set_values(self._latest_probabilities)
        self.decision_display.tick()
        if self._listen is not None and int(time.monotonic() * 4) % 2 == 0:
            self._update_status()

    @Slot()
    def _about(self) -> None:
        from speechrnn import __version__

        QMessageBox.about(self, "About speechrnn",
                          f"<b>speechrnn {__version__}</b><br>Speech command recognition with a recurrent "
                          "network over log-mel frames.")


def _stop_threads(threads: set[WorkerThread], *_: object, timeout_ms: int = STOP_TIMEOUT_MS) -> bool:
    """Ask every worker thread in ``threads`` to stop, wait until each has finished, and forget them.

    No thread is dropped while it runs (its QThread would be destroyed running, which aborts);
    a thread that takes longer than ``timeout_ms`` is still waited for.

    Parameters
    ----------
    threads : set of WorkerThread
        Emptied.
    timeout_ms : int
        How long all of them may take to count as a clean stop, milliseconds.

    Returns
    -------
    bool
        True when all finished within ``timeout_ms``.
    """
    runners = list(threads)
    for runner in runners:  # all at once: they stop in parallel
        runner.request_stop()
    deadline = time.monotonic() + timeout_ms / 1000.0
    clean = True
    for runner in runners:
        if not runner.join(timeout_ms=max(0, round(1000.0 * (deadline - time.monotonic())))):
            clean = False
            runner.join(timeout_ms=None)
    threads.clear()
    return clean


def _match_device(devices: Sequence[InputDevice], wanted: str, *, default: int) -> int:
    """Position in ``devices`` of the device named (exactly, by index, or by substring) ``wanted``."""
    for i, device in enumerate(devices):
        if device.name == wanted:
            return i
    if wanted.strip().isdigit():
        for i, device in enumerate(devices):
            if device.index == int(wanted):
                return i
    for i, device in enumerate(devices):
        if wanted.lower() in device.name.lower():
            return i
    return default


def _float(value: object, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default

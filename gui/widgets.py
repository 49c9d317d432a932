"""Custom widgets of the desktop app: level meter, probability bars, decision display, banner, spectrogram.

Every widget here is passive: the main window feeds it the latest state (``set_*`` methods) and a
GUI-thread timer repaints it. None of them starts threads or touches audio devices.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QFontMetrics, QLinearGradient, QPainter, QPalette, QPen
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QStyle, QToolButton, QVBoxLayout, QWidget

#: colours of the app's dark theme
BACKGROUND = "#15181d"
PANEL = "#1d2128"
PANEL_LIGHT = "#262b34"
BORDER = "#323845"
TEXT = "#e6e9ef"
TEXT_DIM = "#8b93a3"
ACCENT = "#3fb6a8"
ACCENT_STRONG = "#56e0cf"
BAR = "#4a7bd0"
BAR_IGNORED = "#4b5260"
WARNING = "#e0a43a"
ERROR = "#e0565b"

IGNORED_CLASSES = ("_silence_", "_unknown_")


def display_label(label: str) -> str:
    """How a class name is shown: ``_silence_`` -> ``silence``, ``yes`` -> ``yes``."""
    return label.strip("_") if label.startswith("_") and label.endswith("_") else label


class LevelMeter(QWidget):
    """A horizontal input-level meter in dBFS with a decaying peak marker.

    Parameters
    ----------
    floor_db : float
        Level shown as an empty meter, dBFS.
    parent : QWidget, optional
    """

    def __init__(self, *, floor_db: float = -60.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.floor_db = floor_db
        self._level_db = floor_db
        self._peak_db = floor_db
        self._peak_time = time.monotonic()
        self._drawn: tuple[int, int, int] | None = None  # (level, peak, text) as last painted
        self.setMinimumSize(120, 22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Input level (RMS, dBFS)")

    @property
    def level_db(self) -> float:
        """The level last set, dBFS (``floor_db`` when idle)."""
        return self._level_db

    def set_level(self, level_db: float | None) -> None:
        """Show a new RMS level in dBFS; ``None`` resets the meter to its floor."""
        now = time.monotonic()
        if level_db is None or not np.isfinite(level_db):
            level_db = self.floor_db
        self._level_db = float(np.clip(level_db, self.floor_db, 0.0))
        decayed = self._peak_db - 20.0 * max(0.0, now - self._peak_time - 0.8)
        if self._level_db >= decayed:
            self._peak_db, self._peak_time = self._level_db, now
        if self._state(now) != self._drawn:  # nothing visible changed: no repaint
            self.update()

    def _peak_now(self, now: float) -> float:
        return self._peak_db - 20.0 * max(0.0, now - self._peak_time - 0.8)

    def _state(self, now: float) -> tuple[int, int, int]:
        """What the meter shows, to the pixel and the dB: the bar, the peak marker and the text."""
        width = max(1, self.width() - 5)
        return (round(width * self._fraction(self._level_db)), round(width * self._fraction(self._peak_now(now))),
                round(self._level_db))

    def _fraction(self, level_db: float) -> float:
        return float(np.clip((level_db - self.floor_db) / -self.floor_db, 0.0, 1.0))

    def sizeHint(self) -> QSize:
        return QSize(240, 22)

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(QColor(BORDER)))
        painter.setBrush(QColor(PANEL_LIGHT))
        painter.drawRoundedRect(rect, 4, 4)
        inner = rect.adjusted(2, 2, -2, -2)
        gradient = QLinearGradient(inner.topLeft(), inner.topRight())
        gradient.setColorAt(0.0, QColor("#2f9e6e"))
        gradient.setColorAt(0.7, QColor("#7fcf5a"))
        gradient.setColorAt(0.85, QColor(WARNING))
        gradient.setColorAt(1.0, QColor(ERROR))
        filled = QRectF(inner.left(), inner.top(), inner.width() * self._fraction(self._level_db), inner.height())
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawRoundedRect(filled, 3, 3)
        now = time.monotonic()
        self._drawn = self._state(now)
        peak = self._peak_now(now)
        if peak > self.floor_db:
            x = inner.left() + inner.width() * self._fraction(peak)
            painter.setPen(QPen(QColor(TEXT), 2))
            painter.drawLine(QPointF(x, inner.top()), QPointF(x, inner.bottom()))
        painter.setPen(QColor(TEXT))
        text = "—" if self._level_db <= self.floor_db else f"{self._level_db:.0f} dBFS"
        painter.drawText(inner.adjusted(6, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, text)
        painter.end()


@dataclass(frozen=True)
class BarsLayout:
    """What :class:`ProbabilityBars` draws at its current size.

    Parameters
    ----------
    rows : list of (str, float)
        The ``(label, probability)`` rows drawn, most probable first.
    hidden : int
        Classes not drawn (told in a "+N more" line below the rows when > 0).
    row_height : float
        Pixels per row (and for the "+N more" line).
    label_width : int
        Pixels of the label column (labels wider than it are elided).
    """

    rows: list[tuple[str, float]]
    hidden: int
    row_height: float
    label_width: int


class ProbabilityBars(QWidget):
    """Horizontal bars of class probabilities, best first, with the detection threshold marked.

    Only the rows that fit are drawn (a row is never shorter than a line of text); when classes
    are left out, a last line says how many ("+23 more"). The label column takes at most
    :attr:`LABEL_FRACTION` of the width; longer labels are elided.

    Parameters
    ----------
    max_rows : int
        At most this many classes are shown (the most probable ones); 12 shows every class of
        the 10-class default model and of the 12-class task.
    parent : QWidget, optional
    """

    #: the label column's largest share of the widget's width
    LABEL_FRACTION = 0.4
    MAX_ROW_HEIGHT = 30.0

    def __init__(self, *, max_rows: int = 12, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.max_rows = max_rows
        self._labels: tuple[str, ...] = ()
        self._values = np.zeros(0, dtype=np.float32)
        self._threshold = 0.6
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names, in model order."""
        return self._labels

    def values(self) -> dict[str, float]:
        """The probabilities shown, by class name."""
        return {label: float(v) for label, v in zip(self._labels, self._values, strict=True)}

    def set_labels(self, labels: Sequence[str]) -> None:
        """Set the class names (model order); resets the values to zero."""
        self._labels = tuple(labels)
        self._values = np.zeros(len(self._labels), dtype=np.float32)
        self.update()

    def set_values(self, probabilities: np.ndarray | None) -> None:
        """Show probabilities aligned with :attr:`labels` (shape ``(n_classes,)``); ``None`` clears."""
        if probabilities is None:
            self._values = np.zeros(len(self._labels), dtype=np.float32)
        else:
            probabilities = np.asarray(probabilities, dtype=np.float32)
            if probabilities.shape != (len(self._labels),):
                return
            if np.array_equal(probabilities, self._values):  # the same result again: nothing to repaint
                return
            self._values = probabilities.copy()
        self.update()

    def set_threshold(self, threshold: float) -> None:
        """Mark the detection threshold, in [0, 1]."""
        self._threshold = float(threshold)
        self.update()

    def rows(self) -> list[tuple[str, float]]:
        """The ``(label, probability)`` rows drawn at the current size, most probable first."""
        return self.bar_layout().rows

    def bar_layout(self, metrics: QFontMetrics | None = None) -> BarsLayout:
        """The rows, "+N more" count, row height and label column width at the current size.

        Parameters
        ----------
        metrics : QFontMetrics, optional
            Of the font drawn with; default: the widget's.

        Returns
        -------
        BarsLayout
        """
        metrics = metrics or self.fontMetrics()
        line = float(metrics.height())  # the shortest row whose text does not overlap the next
        order = np.argsort(-self._values, kind="stable")
        wanted = min(len(order), self.max_rows)
        fit = max(int(self.height() // line), 1)
        if wanted < len(order) or wanted > fit:  # a "+N more" line is needed: it takes a row
            wanted = min(wanted, fit - 1)
        rows = [(self._labels[i], float(self._values[i])) for i in order[:wanted]]
        hidden = len(order) - len(rows)
        lines = len(rows) + (1 if hidden else 0)
        row_height = min(self.MAX_ROW_HEIGHT, self.height() / max(lines, 1))
        widest = max((metrics.horizontalAdvance(display_label(name)) + 12 for name, _ in rows), default=0)
        label_width = min(max(70, widest), max(40, int(self.width() * self.LABEL_FRACTION)))
        return BarsLayout(rows=rows, hidden=hidden, row_height=row_height, label_width=label_width)

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if not self._labels:
            painter.setPen(QColor(TEXT_DIM))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no model loaded")
            painter.end()
            return
        metrics = painter.fontMetrics()
        layout = self.bar_layout(metrics)
        rows, row_height, label_width = layout.rows, layout.row_height, layout.label_width
        value_width = metrics.horizontalAdvance("100%") + 10
        bar_height = max(6.0, row_height * 0.62)
        left = float(label_width)
        width = max(10.0, self.width() - label_width - value_width)
        top_label = rows[0][0] if rows else ""
        for index, (name, value) in enumerate(rows):
            y = index * row_height
            ignored = name in IGNORED_CLASSES
            painter.setPen(QColor(TEXT_DIM if ignored else TEXT))
            painter.drawText(
                QRectF(0, y, label_width - 8, row_height),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                metrics.elidedText(display_label(name), Qt.TextElideMode.ElideRight, label_width - 8),
            )
            track = QRectF(left, y + (row_height - bar_height) / 2, width, bar_height)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(PANEL_LIGHT))
            painter.drawRoundedRect(track, 3, 3)
            if ignored:
                colour = QColor(BAR_IGNORED)
            elif name == top_label and value > self._threshold:
                colour = QColor(ACCENT_STRONG)
            else:
                colour = QColor(BAR)
            painter.setBrush(colour)
            painter.drawRoundedRect(QRectF(track.left(), track.top(), track.width() * value, track.height()), 3, 3)
            painter.setPen(QColor(TEXT_DIM))
            painter.drawText(
                QRectF(left + width + 4, y, value_width, row_height),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                f"{value * 100:.0f}%",
            )
        if layout.hidden:
            painter.setPen(QColor(TEXT_DIM))
            painter.drawText(
                QRectF(left, len(rows) * row_height, width, row_height),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                f"+{layout.hidden} more",
            )
        if rows:
            x = left + width * self._threshold
            painter.setPen(QPen(QColor(WARNING), 1, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(x, 0), QPointF(x, row_height * len(rows)))
        painter.end()


class DecisionDisplay(QWidget):
    """The current decision in large type: the last detected command, fading after a while.

    Parameters
    ----------
    hold_seconds : float
        A detection stays fully lit this long, then fades over the same time.
    parent : QWidget, optional
    """

    def __init__(self, *, hold_seconds: float = 1.5, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hold_seconds = hold_seconds
        self._label: str | None = None
        self._score = 0.0
        self._shown_at = 0.0
        self._idle_text = "Ready"
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    @property
    def label(self) -> str | None:
        """The command shown, or None."""
        return self._label

    @property
    def idle_text(self) -> str:
        """The text shown when there is no recent detection."""
        return self._idle_text

    def set_idle_text(self, text: str) -> None:
        """Set the text shown without a detection (``Listening…``, ``Stopped``)."""
        self._idle_text = text
        self.update()

    def show_detection(self, label: str, score: float) -> None:
        """Show a detected command and its confidence in [0, 1]."""
        self._label, self._score, self._shown_at = label, float(score), time.monotonic()
        self.update()

    def clear(self) -> None:
        """Forget the detection shown."""
        self._label = None
        self.update()

    def tick(self) -> None:
        """Repaint if the detection shown is fading (called by the GUI timer); otherwise nothing changes."""
        if self._label is not None and time.monotonic() - self._shown_at <= 2 * self.hold_seconds + 0.1:
            self.update()

    def _alpha(self) -> float:
        age = time.monotonic() - self._shown_at
        if age <= self.hold_seconds:
            return 1.0
        return float(max(0.0, 1.0 - (age - self.hold_seconds) / self.hold_seconds))

    def paintEvent(self, event: object) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect())
        alpha = self._alpha() if self._label is not None else 0.0
        if alpha > 0 and self._label is not None:
            colour = QColor(ACCENT_STRONG)
            colour.setAlphaF(0.25 + 0.75 * alpha)
            text = display_label(self._label).upper()
            main = QRectF(rect.left(), rect.top(), rect.width(), rect.height() * 0.72)
            font, text = fit_text(self.font(), text, main.width() - 16, int(rect.height() * 0.5), bold=True)
            painter.setFont(font)
            painter.setPen(colour)
            painter.drawText(main, Qt.AlignmentFlag.AlignCenter, text)
            font.setPixelSize(max(12, int(rect.height() * 0.15)))
            font.setBold(False)
            painter.setFont(font)
            dim = QColor(TEXT_DIM)
            dim.setAlphaF(0.4 + 0.6 * alpha)
            painter.setPen(dim)
            sub = QRectF(rect.left(), rect.top() + rect.height() * 0.70, rect.width(), rect.height() * 0.28)
            painter.drawText(sub, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                             f"confidence {self._score * 100:.0f}%")
        else:
            font, idle = fit_text(self.font(), self._idle_text, rect.width() - 16, int(rect.height() * 0.24))
            painter.setFont(font)
            painter.setPen(QColor(TEXT_DIM))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, idle)
        painter.end()


def fit_text(base: QFont, text: str, width: float, pixel_size: int, *, bold: bool = False) -> tuple[QFont, str]:
    """``base`` at ``pixel_size`` px, shrunk until ``text`` fits in ``width`` px, and the text to draw.

    The font is never smaller than 12 px; text still too wide at that size (a very long class
    name) is shortened in the middle with an ellipsis instead of being clipped at both ends.

    Returns
    -------
    font : QFont
    text : str
        ``text`` itself, or its middle-elided form.
    """
    font = QFont(base)
    font.setBold(bold)
    size = max(12, pixel_size)
    font.setPixelSize(size)
    metrics = QFontMetrics(font)
    advance = metrics.horizontalAdvance(text)
    if advance > width > 0:
        font.setPixelSize(max(12, int(size * width / advance)))
        metrics = QFontMetrics(font)
        if metrics.horizontalAdvance(text) > width:
            text = metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, int(width))
    return font, text


class Banner(QFrame):
    """A dismissable message strip shown above the window's content (hidden when empty)."""

    dismissed = Signal()

    _STYLES: ClassVar[Mapping[str, tuple[str, str]]] = MappingProxyType({
        "error": (ERROR, "#3a1f22"),
        "warning": (WARNING, "#3a3020"),
        "info": (ACCENT, "#1c3432"),
    })

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self._level = "info"
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        self._icon = QLabel(self)
        self._text = QLabel(self)
        self._text.setWordWrap(True)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(self)
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        layout.addWidget(self._icon)
        layout.addWidget(self._text, 1)
        layout.addWidget(close)
        self.hide()

    @property
    def text(self) -> str:
        """The message shown ('' when dismissed)."""
        return self._text.text()

    @property
    def level(self) -> str:
        """``error``, ``warning`` or ``info``."""
        return self._level

    def show_message(self, text: str, *, level: str = "error") -> None:
        """Show ``text`` with the colours of ``level`` (``error``, ``warning`` or ``info``)."""
        border, fill = self._STYLES.get(level, self._STYLES["info"])
        self._level = level
        icon = {
            "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
            "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
        }.get(level, QStyle.StandardPixmap.SP_MessageBoxInformation)
        self._icon.setPixmap(self.style().standardIcon(icon).pixmap(18, 18))
        self._text.setText(text)
        self.setStyleSheet(
            f"QFrame#banner {{ background: {fill}; border: 1px solid {border}; border-radius: 6px; }}"
            f"QFrame#banner QLabel {{ color: {TEXT}; background: transparent; border: none; }}"
        )
        self.show()

    def dismiss(self) -> None:
        """Hide the banner."""
        self.hide()
        self._text.setText("")
        self.dismissed.emit()


class BannerStack(QWidget):
    """Messages shown above the window's content, one :class:`Banner` per topic ("model", "audio", ...).

    A new message on a topic replaces that topic's previous one; the stack is hidden when empty.
    """

    _SEVERITY: ClassVar[Mapping[str, int]] = MappingProxyType({"info": 0, "warning": 1, "error": 2})

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._banners: dict[str, Banner] = {}
        self.hide()

    def show_message(self, text: str, *, level: str = "error", topic: str = "") -> None:
        """Show ``text`` for ``topic`` (replacing that topic's message)."""
        banner = self._banners.get(topic)
        if banner is None:
            banner = Banner(self)
            banner.dismissed.connect(self._update_visibility)
            self._banners[topic] = banner
            self._layout.addWidget(banner)
        banner.show_message(text, level=level)
        self.show()

    def dismiss(self, topic: str | None = None) -> None:
        """Hide ``topic``'s message (every message when None)."""
        for name, banner in self._banners.items():
            if topic is None or name == topic:
                banner.dismiss()
        self._update_visibility()

    def messages(self) -> dict[str, tuple[str, str]]:
        """Visible messages: topic -> (level, text)."""
        return {name: (b.level, b.text) for name, b in self._banners.items() if b.text}

    @property
    def text(self) -> str:
        """Every visible message, one per line ('' when none)."""
        return "\n".join(text for _, text in self.messages().values())

    @property
    def level(self) -> str:
        """The most severe visible level (``info`` when none)."""
        levels = [level for level, _ in self.messages().values()]
        return max(levels, key=self._SEVERITY.__getitem__, default="info")

    @Slot()
    def _update_visibility(self) -> None:
        self.setVisible(bool(self.messages()))


class SpectrogramView(pg.PlotWidget):
    """A live scrolling log-mel spectrogram: newest frames on the right.

    Parameters
    ----------
    n_mels : int
        Mel bands per frame.
    seconds : float
        Time span shown, in seconds.
    frames_per_second : float
        Frame rate of the features (1 / hop), frames per second.
    parent : QWidget, optional
    """

    def __init__(self, *, n_mels: int = 40, seconds: float = 4.0, frames_per_second: float = 100.0,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent=parent, background=PANEL)
        self.seconds = seconds
        self.frames_per_second = frames_per_second
        self._image = pg.ImageItem(axisOrder="col-major")
        self._image.setColorMap(pg.colormap.get("inferno"))
        self.addItem(self._image)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # nothing to do with the keyboard: Tab skips it
        plot = self.getPlotItem()
        plot.setLabel("bottom", "seconds")
        plot.setLabel("left", "mel band")
        for name in ("bottom", "left"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(BORDER))
            axis.setTextPen(pg.mkPen(TEXT_DIM))
        self._levels = (-12.0, 2.0)
        self._dirty = True
        self._placeholder = pg.TextItem("Start listening to see the input", color=TEXT_DIM, anchor=(0.5, 0.5))
        self.addItem(self._placeholder)
        self.reset(n_mels=n_mels, frames_per_second=frames_per_second)

    @property
    def buffer(self) -> np.ndarray:
        """The frames shown, shape ``(n_columns, n_mels)``, oldest first (read-only view)."""
        view = self._buffer.view()
        view.flags.writeable = False
        return view

    @property
    def frames_received(self) -> int:
        """Frames appended since the last :meth:`reset`."""
        return self._received

    def reset(self, *, n_mels: int | None = None, frames_per_second: float | None = None) -> None:
        """Clear the display, optionally for another number of mel bands or frame rate."""
        if n_mels is not None:
            self.n_mels = n_mels
        if frames_per_second is not None:
            self.frames_per_second = frames_per_second
        columns = max(1, round(self.seconds * self.frames_per_second))
        self._buffer = np.full((columns, self.n_mels), np.nan, dtype=np.float32)
        self._received = 0
        self._arrival = time.monotonic()
        self._batch_seconds = 0.0
        self._lag = 0.0
        self._placeholder.setPos(-self.seconds / 2, self.n_mels / 2)
        self._placeholder.setVisible(True)
        self._image.setRect(QRectF(-self.seconds, 0, self.seconds, self.n_mels))
        self.setXRange(-self.seconds, 0, padding=0)
        self.setYRange(0, self.n_mels, padding=0)
        self.getPlotItem().getAxis("left").setTicks([[(v, str(v)) for v in range(0, self.n_mels, 10)]])
        self._dirty = True
        self.refresh()

    def append_frames(self, frames: np.ndarray) -> None:
        """Add new frames (shape ``(n_new, n_mels)``) at the right edge; painting waits for :meth:`refresh`."""
        frames = np.asarray(frames, dtype=np.float32)
        if frames.ndim != 2 or frames.shape[0] == 0:
            return
        if frames.shape[1] != self.n_mels:
            self.reset(n_mels=frames.shape[1])
        n = min(frames.shape[0], self._buffer.shape[0])
        self._buffer = np.roll(self._buffer, -n, axis=0)
        self._buffer[-n:] = frames[-n:]
        self._received += frames.shape[0]
        self._arrival = time.monotonic()
        self._batch_seconds = frames.shape[0] / self.frames_per_second
        self._dirty = True

    def refresh(self) -> None:
        """Repaint (called by the GUI timer, ~30 times a second).

        Frames arrive in batches (one model hop, e.g. 0.1 s); between batches the image glides left
        by the time elapsed since the last one, so the display scrolls smoothly instead of jumping.
        """
        if self._received:
            lag = min(time.monotonic() - self._arrival, self._batch_seconds)
            if lag != self._lag:  # stopped (or caught up): the image stays where it is, no repaint
                self._lag = lag
                self._image.setRect(QRectF(-self.seconds - lag, 0, self.seconds, self.n_mels))
        if not self._dirty:
            return
        self._dirty = False
        self._placeholder.setVisible(self._received == 0)
        finite = self._buffer[np.isfinite(self._buffer)]
        if finite.size > 50:
            low, high = np.percentile(finite, [2.0, 99.8])
            # follow the signal's range slowly so the colours do not flicker
            target = (float(low), float(max(high, low + 6.0)))
            self._levels = tuple(0.8 * a + 0.2 * b for a, b in zip(self._levels, target, strict=True))
        image = np.where(np.isfinite(self._buffer), self._buffer, self._levels[0])
        self._image.setImage(image, autoLevels=False, levels=self._levels)


def apply_dark_palette(widget_or_app: object) -> None:
    """Give a QApplication the app's dark Fusion palette and style sheet."""
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: BACKGROUND,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: PANEL,
        QPalette.ColorRole.AlternateBase: PANEL_LIGHT,
        QPalette.ColorRole.ToolTipBase: PANEL_LIGHT,
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: PANEL_LIGHT,
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#0b0d10",
        QPalette.ColorRole.PlaceholderText: TEXT_DIM,
        QPalette.ColorRole.Link: ACCENT_STRONG,
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5d6472"))
    widget_or_app.setPalette(palette)
    widget_or_app.setStyleSheet(STYLE_SHEET)


STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: {BACKGROUND}; }}
QGroupBox {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 8px;
    margin-top: 14px; padding: 10px 8px 8px 8px; font-weight: 600;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 12px; padding: 0 4px; color: {TEXT_DIM}; }}
QToolBar {{ background: {PANEL}; border: none; border-bottom: 1px solid {BORDER}; spacing: 8px; padding: 6px; }}
QToolBar QLabel {{ color: {TEXT_DIM}; padding-left: 6px; }}
QToolBar QLabel#note {{ color: {WARNING}; font-size: 11px; padding-left: 0; }}
QPushButton {{
    background: {PANEL_LIGHT}; border: 1px solid {BORDER}; border-radius: 6px; padding: 5px 12px;
}}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #5d6472; }}
QPushButton#listenButton {{
    background: {ACCENT}; color: #0b0d10; font-weight: 700; border: none; padding: 6px 18px;
}}
QPushButton#listenButton:checked {{ background: {ERROR}; color: white; }}
QPushButton#listenButton:disabled {{ background: {PANEL_LIGHT}; color: #5d6472; }}
QComboBox, QLineEdit {{
    background: {PANEL_LIGHT}; border: 1px solid {BORDER}; border-radius: 5px; padding: 3px 6px;
}}
QTabWidget::pane {{ border: 1px solid {BORDER}; border-radius: 6px; background: {PANEL}; top: -1px; }}
QTabBar::tab {{
    background: {BACKGROUND}; color: {TEXT_DIM}; padding: 6px 14px; border: 1px solid {BORDER};
    border-bottom: none; border-top-left-radius: 6px; border-top-right-radius: 6px; margin-right: 2px;
}}
QTabBar::tab:selected {{ background: {PANEL}; color: {TEXT}; }}
QTableWidget {{ gridline-color: {BORDER}; border: none; background: {PANEL}; }}
QHeaderView::section {{
    background: {PANEL_LIGHT}; color: {TEXT_DIM}; border: none; border-right: 1px solid {BORDER}; padding: 4px 6px;
}}
QStatusBar {{ background: {PANEL}; border-top: 1px solid {BORDER}; color: {TEXT_DIM}; }}
QStatusBar QLabel {{ color: {TEXT_DIM}; padding: 0 8px; border-left: 1px solid {BORDER}; }}
QProgressBar {{
    background: {PANEL_LIGHT}; border: 1px solid {BORDER}; border-radius: 5px; text-align: center; height: 16px;
}}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 4px; }}
QSlider::groove:horizontal {{ height: 4px; background: {BORDER}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: {ACCENT}; width: 14px; margin: -6px 0; border-radius: 7px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 2px; }}
QMenuBar {{ background: {PANEL}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: {ACCENT}; color: #0b0d10; }}
QMenu {{ background: {PANEL}; border: 1px solid {BORDER}; }}
QToolTip {{ background: {PANEL_LIGHT}; color: {TEXT}; border: 1px solid {BORDER}; }}
"""

"""``speechrnn-gui``: start the desktop app.

Usage::

    speechrnn-gui [--model PATH] [--device {auto,cpu,cuda}] [--input DEVICE]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of ``speechrnn-gui``."""
    parser = argparse.ArgumentParser(
        prog="speechrnn-gui",
        description="Desktop app: recognize spoken commands live from a microphone, classify audio files, "
                    "record your own examples.",
    )
    parser.add_argument("--model", metavar="PATH",
                        help="model file to load (default: the last one used, else the shipped default model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="compute device for the model (default: the last one used, else auto)")
    parser.add_argument("--input", metavar="DEVICE", default=None,
                        help="audio input device name or index to preselect (default: the system default)")
    return parser


def create_application(argv: Sequence[str] | None = None) -> object:
    """The QApplication (created once), with the app's names and dark theme.

    Parameters
    ----------
    argv : sequence of str, optional
        Qt's own arguments (``-platform offscreen``, ...).
    """
    from PySide6.QtWidgets import QApplication

    from gui.compat import protect_none
    from gui.main_window import SETTINGS_APPLICATION, SETTINGS_ORGANIZATION
    from gui.widgets import apply_dark_palette

    protect_none()

    app = QApplication.instance()
    if app is None:
        app = QApplication(["speechrnn-gui", *(argv or [])])
    app.setOrganizationName(SETTINGS_ORGANIZATION)
    app.setApplicationName(SETTINGS_APPLICATION)
    app.setApplicationDisplayName("speechrnn")
    app.setStyle("Fusion")
    apply_dark_palette(app)
    return app


def process_events_until(app: object, condition: Callable[[], bool], seconds: float) -> bool:
    """Run ``app``'s events until ``condition()`` is true or ``seconds`` pass; returns the condition.

    For scripts that drive the window without entering its event loop (screenshots, benchmarks).
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    app.processEvents()
    return bool(condition())


@contextlib.contextmanager
def closing_on_ctrl_c(app: object) -> Iterator[None]:
    """While inside, Ctrl-C in the terminal closes the app's windows (settings saved) instead of being ignored.

    Qt's event loop runs in C++, where Python's SIGINT handler never gets a turn: a light timer
    hands control to Python a few times a second, and the handler queues the windows' closing on
    the event loop (a Ctrl-C before the loop runs is handled once it does). The previous handler
    is restored on leaving. Outside the main thread (where signals cannot be handled) it does nothing.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from PySide6.QtCore import QTimer

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: QTimer.singleShot(0, app.closeAllWindows))
    wake = QTimer(app)
    wake.timeout.connect(lambda: None)
    wake.start(200)
    try:
        yield
    finally:
        wake.stop()
        wake.deleteLater()
        signal.signal(signal.SIGINT, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``speechrnn-gui`` console script; returns the exit status."""
    args, qt_args = build_parser().parse_known_args(argv)
    app = create_application(qt_args)
    with closing_on_ctrl_c(app):
        from gui.main_window import MainWindow

        window = MainWindow(model_path=args.model, compute_device=args.device, input_device=args.input)
        window.show()
        return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())

"""The speechrnn desktop app (PySide6 + pyqtgraph).

Start it with the ``speechrnn-gui`` console script (:func:`gui.app.main`). The window is
:class:`gui.main_window.MainWindow`; its threads live in :mod:`gui.workers` and its custom
widgets in :mod:`gui.widgets`. Importing this package imports no Qt.
"""

from __future__ import annotations

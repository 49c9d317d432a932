"""Guards against defects of particular PySide6 builds.

PySide6 6.12.0 (the ``cp310-abi3`` wheels) returns ``None`` from every C++ ``void`` method without
taking a new reference to it. On Python >= 3.12 ``None`` is immortal and nothing happens; on
Python 3.10 and 3.11 each such call (``setText``, ``update``, ``QPainter.drawRect``, ...) drops
one reference that was never taken, and after some tens of thousands of calls (under a minute of
a live display repainting 30 times a second) the interpreter aborts with *Fatal Python error:
none_dealloc: deallocating None*.

:func:`protect_none` detects the defect with a short probe and, only where it is present, makes
``None`` effectively immortal (what Python 3.12 does natively) by adding a large constant to its
reference count. Installing a PySide6 release without the defect (``PySide6-Essentials<6.12`` on
Python < 3.12) makes the probe come out clean and nothing is changed.
"""

from __future__ import annotations

import sys

#: added to None's reference count where the defect is present: more than any program drops
_IMMORTAL_MARGIN = 1 << 40


def pyside_drops_none_references() -> bool:
    """Whether calling a ``void`` PySide6 method loses a reference to ``None`` in this interpreter.

    Returns
    -------
    bool
        False on Python >= 3.12 (``None`` is immortal there) and with sound PySide6 builds.
    """
    if sys.version_info >= (3, 12):
        return False
    from PySide6.QtCore import QObject

    probe = QObject()
    calls = 200
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("speechrnn-probe")
    return sys.getrefcount(None) <= before - calls // 2


def protect_none() -> bool:
    """Make ``None`` immortal if (and only if) this PySide6 build drops references to it.

    Safe to call more than once. Prints one line on stderr when it acts.

    Returns
    -------
    bool
        True when the defect was found (now or by an earlier call) and ``None`` is protected.
    """
    if sys.version_info >= (3, 12):
        return False
    if sys.getrefcount(None) > _IMMORTAL_MARGIN // 2:
        return True  # already protected
    if not pyside_drops_none_references():
        return False
    import ctypes

    from PySide6 import __version__ as pyside_version

    # CPython (release builds): ob_refcnt is the first field of every object.
    refcount = ctypes.c_ssize_t.from_address(id(None))
    refcount.value += _IMMORTAL_MARGIN
    print(
        f"speechrnn-gui: PySide6 {pyside_version} on Python {sys.version_info.major}.{sys.version_info.minor} "
        "drops references to None (a known defect of that build); the app works around it. "
        "Install PySide6-Essentials<6.12 (or use Python >= 3.12) to avoid it.",
        file=sys.stderr,
    )
    return True

"""speechrnn: recognize spoken commands with a recurrent network over log-mel frames.

Importing the package is cheap: it loads no torch, librosa, Qt or sounddevice. Import the
submodules you need (``speechrnn.inference``, ``speechrnn.streaming``, ...).
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

__all__ = ["__version__", "default_model_path"]


def default_model_path() -> Path:
    """Return the path of the default model shipped inside the package.

    Returns
    -------
    pathlib.Path
        ``speechrnn/models/default.pt``; it exists in every installed copy of the package.
    """
    return Path(__file__).resolve().parent / "models" / "default.pt"

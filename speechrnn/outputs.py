"""Output folders of the command-line tools: checked and made before any work, removed after a failure.

A tool that evaluates for minutes must not find out only at the end that it cannot write its
report, and a run that fails must not leave empty folders behind. :func:`make_folders` makes the
folders an output needs (saying in one line why it cannot), and :func:`remove_empty` takes back
the ones it made.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from speechrnn.errors import SpeechRNNError

__all__ = ["make_folders", "remove_empty", "silence_stdout"]


def make_folders(folder: str | os.PathLike[str], *, name: str, doing: str) -> list[Path]:
    """Create ``folder`` and its missing parents, and check that it can be written.

    Parameters
    ----------
    folder : path-like
        The folder an output goes into.
    name : str
        What the messages start with (the output or option named by the user).
    doing : str
        What could not be done, in the messages ("cannot write there").

    Returns
    -------
    list of Path
        The folders made, innermost first (for :func:`remove_empty` after a failure).

    Raises
    ------
    speechrnn.errors.SpeechRNNError
        One line: ``"<name>: <doing>: <why>"`` where a file stands in the way, a folder cannot be
        made, or ``folder`` is not writable.
    """
    folder = Path(folder)
    chain = (folder, *folder.parents)
    above = next((f for f in chain if f.exists()), None)
    if above is not None and not above.is_dir():
        raise SpeechRNNError(f"{name}: {doing}: {above} is a file, not a folder")
    made = [f for f in chain if not f.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpeechRNNError(f"{name}: {doing}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        remove_empty(made)
        raise SpeechRNNError(f"{name}: {doing}: {folder} is not writable")
    return made


def remove_empty(folders: Sequence[Path]) -> None:
    """Remove ``folders`` (innermost first, as :func:`make_folders` lists them) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def silence_stdout() -> None:
    """Point standard output at the null device, so that Python's flush at exit cannot fail on it again.

    For a command whose output went away (a closed pipe, a full disk) after it has said so.
    """
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no real stdout file descriptor
        pass

"""The user's own data: recordings of taught words and the models learned from them.

Everything lives in one per-user folder, chosen by platform convention:

- Linux and other Unix: ``$XDG_DATA_HOME/speechrnn``, else ``~/.local/share/speechrnn``;
- macOS: ``~/Library/Application Support/speechrnn``;
- Windows: ``%APPDATA%\\speechrnn``;
- anywhere: ``$SPEECHRNN_DATA_DIR`` when set (tests and portable installs use it).

Layout::

    recordings/<word>/take-001.wav      takes of a taught word (16-bit WAV)
    recordings/_background_/room-001.wav  recordings of the user's room (no word)
    models/<name>.pt                    a model file, loadable like any other
    models/<name>.json                  its sidecar: {"name", "words", "created", ...}

Nothing here ever overwrites a file silently: a new take gets the next free number, and
renaming or exporting onto an existing name is refused unless the caller asks for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from speechrnn.errors import SpeechRNNError

__all__ = [
    "BACKGROUND_FOLDER",
    "OTHER_FOLDER",
    "ModelEntry",
    "UserDataError",
    "data_dir",
    "export_model",
    "list_models",
    "list_recordings",
    "model_path",
    "models_dir",
    "recordings_dir",
    "remove_model",
    "rename_model",
    "save_recording",
    "validate_model_name",
    "validate_word",
    "write_model_sidecar",
]

#: Folder under ``recordings/`` holding room-noise recordings.
BACKGROUND_FOLDER = "_background_"
#: Recordings of the user saying other words (negatives for taught words), saved as ``other-NNN.wav``.
OTHER_FOLDER = "_other_"
_WORD_RE = re.compile(r"^[a-z0-9][a-z0-9'_-]{0,31}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,63}$")
#: File-name prefix of the recordings in each special folder (a word's folder holds ``take-NNN.wav``).
_SPECIAL_PREFIXES = MappingProxyType({BACKGROUND_FOLDER: "room", OTHER_FOLDER: "other"})
_TAKE_RE = re.compile(rf"^(?:take|{'|'.join(_SPECIAL_PREFIXES.values())})-(\d+)\.wav$")


class UserDataError(SpeechRNNError):
    """A user-data operation was refused (invalid name, would overwrite, missing model)."""


@dataclass(frozen=True)
class ModelEntry:
    """A model in the user's ``models/`` folder.

    Parameters
    ----------
    name : str
        Display name (the file stem).
    path : pathlib.Path
        The ``.pt`` model file.
    words : tuple of str
        Words taught into it (from the sidecar; empty when unknown).
    created : str
        ISO 8601 creation time (from the sidecar, else the file's modification time).
    info : dict
        The whole sidecar.
    """

    name: str
    path: Path
    words: tuple[str, ...]
    created: str
    info: dict[str, Any]


def data_dir() -> Path:
    """The per-user data folder (not created here).

    Returns
    -------
    pathlib.Path
        ``$SPEECHRNN_DATA_DIR`` if set, else the platform's per-user application-data folder
        followed by ``speechrnn``.
    """
    override = os.environ.get("SPEECHRNN_DATA_DIR")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("APPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Roaming") / "speechrnn"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "speechrnn"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share") / "speechrnn"


def recordings_dir() -> Path:
    """``<data_dir>/recordings`` (not created here)."""
    return data_dir() / "recordings"


def models_dir() -> Path:
    """``<data_dir>/models`` (not created here)."""
    return data_dir() / "models"


def validate_word(word: str) -> str:
    """Check a word name for teaching and return it normalised (stripped, lower case).

    Parameters
    ----------
    word : str

    Returns
    -------
    str

    Raises
    ------
    UserDataError
        Empty, too long, or with characters other than letters, digits, ``'``, ``-`` and ``_``
        (it names a folder and a model class), or starting with ``_`` (reserved for
        ``_silence_`` / ``_unknown_``).
    """
    cleaned = word.strip().lower()
    if not cleaned:
        raise UserDataError("the word is empty: type the word you will say")
    if cleaned.startswith("_"):
        raise UserDataError(f"{word!r}: names starting with '_' are reserved (_silence_, _unknown_)")
    if not _WORD_RE.match(cleaned):
        raise UserDataError(
            f"{word!r} is not a valid word name: use 1-32 letters, digits, ' - or _ (no spaces, no accents)"
        )
    return cleaned


def validate_model_name(name: str) -> str:
    """Check a model name (a file stem) and return it stripped.

    Raises
    ------
    UserDataError
        Empty, too long, or with characters that do not belong in a file name.
    """
    cleaned = name.strip()
    if not _NAME_RE.match(cleaned) or cleaned.endswith("."):
        raise UserDataError(
            f"{name!r} is not a valid model name: use 1-64 letters, digits, spaces, . _ - + ( ), "
            "starting with a letter or digit"
        )
    return cleaned


def _next_free(folder: Path, prefix: str) -> Path:
    numbers = [int(m.group(1)) for p in folder.glob(f"{prefix}-*.wav") if (m := _TAKE_RE.match(p.name))]
    n = max(numbers, default=0) + 1
    while True:
        candidate = folder / f"{prefix}-{n:03d}.wav"
        try:
            # O_EXCL: claim the name atomically, so two writers never share a number
            fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            n += 1
            continue
        os.close(fd)
        return candidate


def save_recording(word: str, audio: np.ndarray, sample_rate: int, *, root: str | os.PathLike[str] | None = None
                   ) -> Path:
    """Save one take of ``word`` as the next free ``take-NNN.wav``; never overwrites.

    Parameters
    ----------
    word : str
        A valid word (see :func:`validate_word`), :data:`BACKGROUND_FOLDER` for a room
        recording (saved as ``room-NNN.wav``) or :data:`OTHER_FOLDER` for other words
        (``other-NNN.wav``).
    audio : np.ndarray, shape (n,)
        Mono float audio, full scale 1.0.
    sample_rate : int
        Hz.
    root : path-like, optional
        Recordings folder (default :func:`recordings_dir`).

    Returns
    -------
    pathlib.Path
        The new file.
    """
    import soundfile as sf

    folder_name = _recording_folder(word)
    prefix = _SPECIAL_PREFIXES.get(folder_name, "take")
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0:
        raise UserDataError("nothing to save: the recording is empty")
    folder = Path(root).expanduser() if root is not None else recordings_dir()
    folder = folder / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    path = _next_free(folder, prefix)
    try:
        sf.write(path, np.clip(audio, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _recording_folder(word: str) -> str:
    """The folder under ``recordings/`` for ``word``: a special folder as it is, else the checked word."""
    return word if word in _SPECIAL_PREFIXES else validate_word(word)


def list_recordings(word: str, *, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The saved takes of ``word`` (room recordings for :data:`BACKGROUND_FOLDER`, other words for
    :data:`OTHER_FOLDER`), in order."""
    folder = (Path(root).expanduser() if root is not None else recordings_dir()) / _recording_folder(word)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.wav") if _TAKE_RE.match(p.name))


def model_path(name: str) -> Path:
    """``models/<name>.pt`` for a valid name (the file need not exist)."""
    return models_dir() / f"{validate_model_name(name)}.pt"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def write_model_sidecar(path: str | os.PathLike[str], *, name: str, words: list[str] | tuple[str, ...],
                        **info: Any) -> Path:
    """Write ``<model>.json`` beside a model file.

    Parameters
    ----------
    path : path-like
        The ``.pt`` file.
    name : str
    words : sequence of str
        Words taught into the model.
    **info
        Further JSON-compatible fields (base model, figures, ...).

    Returns
    -------
    pathlib.Path
        The sidecar.
    """
    path = Path(path)
    data = {"name": name, "words": list(words),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **info}
    sidecar = _sidecar(path)
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, sidecar)
    return sidecar


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def list_models() -> list[ModelEntry]:
    """The user's models, newest first.

    Returns
    -------
    list of ModelEntry
    """
    folder = models_dir()
    if not folder.is_dir():
        return []
    entries = []
    for path in folder.glob("*.pt"):
        if not path.is_file() or path.name.startswith("."):
            continue
        info = _read_sidecar(path)
        created = str(info.get("created") or datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
                      .isoformat(timespec="seconds"))
        words = info.get("words") or []
        entries.append(ModelEntry(name=path.stem, path=path, words=tuple(str(w) for w in words),
                                  created=created, info=info))
    return sorted(entries, key=lambda e: (e.created, e.name), reverse=True)


def _existing(name: str) -> Path:
    path = model_path(name)
    if not path.is_file():
        raise UserDataError(f"no model named {name!r} in {models_dir()}")
    return path


def rename_model(name: str, new_name: str) -> Path:
    """Rename a model (and its sidecar); refuses a name that is already taken.

    Returns
    -------
    pathlib.Path
        The new model file.
    """
    source = _existing(name)
    target = model_path(new_name)
    if target == source:
        return source
    if target.exists() or _sidecar(target).exists():
        raise UserDataError(f"a model named {validate_model_name(new_name)!r} already exists; choose another name")
    info = _read_sidecar(source)
    try:
        os.link(source, target)  # fails if the name was taken meanwhile: never overwrites
    except FileExistsError:
        raise UserDataError(f"a model named {validate_model_name(new_name)!r} already exists; choose another name"
                            ) from None
    except OSError:  # no hard links here: copy instead
        shutil.copy2(source, target)
    source.unlink()
    if info or _sidecar(source).exists():
        info["name"] = validate_model_name(new_name)
        tmp = _sidecar(target).with_name(f".{_sidecar(target).name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, _sidecar(target))
        _sidecar(source).unlink(missing_ok=True)
    return target


def export_model(name: str, destination: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Copy a model file to ``destination`` (a file path, or a folder to copy into).

    Parameters
    ----------
    name : str
    destination : path-like
    overwrite : bool
        Replace an existing file at the destination; refused otherwise.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    source = _existing(name)
    target = Path(destination).expanduser()
    if target.is_dir():
        target = target / source.name
    if target.exists() and not overwrite:
        raise UserDataError(f"{target}: file already exists (not overwritten)")
    if target.resolve() == source.resolve():
        raise UserDataError(f"{target}: that is the model file itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def remove_model(name: str) -> None:
    """Delete a model file and its sidecar."""
    source = _existing(name)
    source.unlink()
    _sidecar(source).unlink(missing_ok=True)

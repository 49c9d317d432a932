from __future__ import annotations

import subprocess
import sys

import pytest

from speechrnn import __version__
from speechrnn.cli import main


def test_import_loads_no_qt_no_sounddevice_no_torch() -> None:
    code = (
        "import sys, speechrnn, speechrnn.cli;"
        "bad = [m for m in ('PySide6', 'sounddevice', 'torch', 'librosa') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_library_modules_never_import_qt() -> None:
    code = (
        "import sys, importlib, pkgutil, speechrnn\n"
        "for m in pkgutil.iter_modules(speechrnn.__path__):\n"
        "    if m.name not in ('__main__',):\n"
        "        importlib.import_module('speechrnn.' + m.name)\n"
        "print(','.join(n for n in ('PySide6', 'sounddevice') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"speechrnn {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in ("classify", "listen", "download", "export", "info"))
    assert main([]) == 2


def test_default_model_path_points_into_package() -> None:
    from speechrnn import default_model_path

    path = default_model_path()
    assert path.name == "default.pt" and path.parent.name == "models" and path.parent.parent.name == "speechrnn"


def test_module_tables_are_read_only() -> None:
    from speechrnn.classify import _EXTENSION_FORMATS
    from speechrnn.cli import COMMANDS
    from speechrnn.streaming_accuracy import GOALS

    for table, key in ((COMMANDS, "classify"), (GOALS, "false_per_10min_max"), (_EXTENSION_FORMATS, ".csv")):
        with pytest.raises(TypeError):
            table[key] = table[key]  # type: ignore[index]
        with pytest.raises((TypeError, AttributeError)):
            table.pop(key)  # type: ignore[attr-defined]
    assert "classify" in COMMANDS and GOALS["matched_percent_min"] == 90.0 and _EXTENSION_FORMATS[".ndjson"] == "jsonl"


def test_training_tables_are_read_only() -> None:
    from training.config import _SECTIONS, TASK_FILLERS, TASK_WORDS
    from training.robustness import TARGETS

    for table, key in ((TASK_WORDS, "mini"), (TASK_FILLERS, "mini"), (_SECTIONS, "model"), (TARGETS, "silence_share")):
        with pytest.raises(TypeError):
            table[key] = table[key]  # type: ignore[index]
    assert TASK_WORDS["mini"][:2] == ("yes", "no") and TARGETS["oov_unknown_share"] == 0.90

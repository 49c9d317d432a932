"""speechrnn.outputs: output folders made before any work, and taken back after a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechrnn.errors import SpeechRNNError
from speechrnn.outputs import make_folders, remove_empty


def test_folders_are_made_innermost_first_and_removed_while_empty(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    made = make_folders(target, name="--out x", doing="cannot write there")
    assert made == [target, tmp_path / "a" / "b", tmp_path / "a"] and target.is_dir()
    (tmp_path / "a" / "keep.txt").write_text("kept")
    remove_empty(made)  # c and b go; a holds a file of the user's and stays
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "keep.txt").read_text() == "kept"
    assert make_folders(tmp_path, name="--out x", doing="cannot write there") == []  # already there


def test_a_file_in_the_way_is_one_line_and_nothing_is_made(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(SpeechRNNError) as caught:
        make_folders(blocker / "sub" / "deeper", name="--out r.json", doing="cannot write there")
    assert str(caught.value) == f"--out r.json: cannot write there: {blocker} is a file, not a folder"
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

"""The user's data folder: where it is, and that nothing in it is ever overwritten silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrnn import userdata
from speechrnn.userdata import UserDataError


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user data folder (``SPEECHRNN_DATA_DIR``)."""
    root = tmp_path / "user data"
    monkeypatch.setenv("SPEECHRNN_DATA_DIR", str(root))
    return root


def make_model(name: str, *, words: tuple[str, ...] = ("hello",), content: bytes = b"model") -> Path:
    path = userdata.model_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    userdata.write_model_sidecar(path, name=name, words=words)
    return path


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_DATA_HOME": "/xdg"}, "/xdg/speechrnn"),
        ("linux", {}, "~/.local/share/speechrnn"),
        ("darwin", {}, "~/Library/Application Support/speechrnn"),
        ("win32", {"APPDATA": "/appdata"}, "/appdata/speechrnn"),
    ],
)
def test_data_dir_follows_platform_conventions(monkeypatch: pytest.MonkeyPatch, platform: str,
                                               env: dict[str, str], expected: str) -> None:
    for key in ("SPEECHRNN_DATA_DIR", "XDG_DATA_HOME", "APPDATA"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(userdata.sys, "platform", platform)
    assert userdata.data_dir() == Path(expected).expanduser()


def test_env_override(data_dir: Path) -> None:
    assert userdata.data_dir() == data_dir
    assert userdata.recordings_dir() == data_dir / "recordings"
    assert userdata.models_dir() == data_dir / "models"
    assert not data_dir.exists()  # nothing is created just by asking


def test_save_recording_never_overwrites(data_dir: Path, rng: np.random.Generator) -> None:
    audio = (rng.standard_normal(1600) * 0.1).astype(np.float32)
    first = userdata.save_recording("Hello", audio, 16000)
    assert first == data_dir / "recordings" / "hello" / "take-001.wav"
    # a take the user added by hand with a higher number is kept; the next one goes after it
    manual = first.parent / "take-007.wav"
    sf.write(manual, np.zeros(10, dtype=np.float32), 16000)
    before = manual.read_bytes()
    second = userdata.save_recording("hello", audio, 16000)
    assert second.name == "take-008.wav"
    assert manual.read_bytes() == before
    saved, rate = sf.read(first, dtype="float32")
    assert rate == 16000 and np.allclose(saved, audio, atol=1e-4)
    assert userdata.list_recordings("hello") == [first, manual, second]
    room = userdata.save_recording(userdata.BACKGROUND_FOLDER, audio, 16000)
    assert room.name == "room-001.wav" and room.parent.name == "_background_"


def test_save_recording_refuses_bad_input(data_dir: Path) -> None:
    with pytest.raises(UserDataError, match="empty"):
        userdata.save_recording("hello", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(UserDataError, match="reserved"):
        userdata.save_recording("_unknown_", np.ones(10, dtype=np.float32), 16000)
    with pytest.raises(UserDataError, match="not a valid word"):
        userdata.save_recording("../evil", np.ones(10, dtype=np.float32), 16000)


@pytest.mark.parametrize("word", ["", "  ", "two words", "héllo", "a" * 33, "x/y"])
def test_invalid_words(word: str) -> None:
    with pytest.raises(UserDataError):
        userdata.validate_word(word)


def test_valid_words_are_normalised() -> None:
    assert userdata.validate_word("  Lights ") == "lights"
    assert userdata.validate_word("turn-on") == "turn-on"
    assert userdata.validate_word("don't") == "don't"


def test_list_models_reads_sidecars(data_dir: Path) -> None:
    assert userdata.list_models() == []
    make_model("first", words=("one",))
    make_model("second", words=("two", "three"))
    entries = {e.name: e for e in userdata.list_models()}
    assert set(entries) == {"first", "second"}
    assert entries["second"].words == ("two", "three")
    assert entries["first"].path == data_dir / "models" / "first.pt"
    assert entries["first"].created


def test_rename_refuses_an_existing_name(data_dir: Path) -> None:
    a = make_model("alpha", content=b"A")
    b = make_model("beta", content=b"B")
    with pytest.raises(UserDataError, match="already exists"):
        userdata.rename_model("alpha", "beta")
    assert a.read_bytes() == b"A" and b.read_bytes() == b"B"
    new = userdata.rename_model("alpha", "gamma")
    assert new.read_bytes() == b"A" and not a.exists()
    assert json.loads(new.with_suffix(".json").read_text())["name"] == "gamma"
    assert not a.with_suffix(".json").exists()
    with pytest.raises(UserDataError, match="no model named"):
        userdata.rename_model("alpha", "delta")
    with pytest.raises(UserDataError, match="not a valid model name"):
        userdata.rename_model("gamma", "../outside")


def test_export_refuses_to_overwrite_unless_asked(data_dir: Path, tmp_path: Path) -> None:
    make_model("mine", content=b"MODEL")
    target = tmp_path / "exported.pt"
    target.write_bytes(b"precious")
    with pytest.raises(UserDataError, match="already exists"):
        userdata.export_model("mine", target)
    assert target.read_bytes() == b"precious"
    assert userdata.export_model("mine", target, overwrite=True).read_bytes() == b"MODEL"
    folder = tmp_path / "out"
    folder.mkdir()
    assert userdata.export_model("mine", folder) == folder / "mine.pt"


def test_remove_model(data_dir: Path) -> None:
    path = make_model("gone")
    userdata.remove_model("gone")
    assert not path.exists() and not path.with_suffix(".json").exists()
    with pytest.raises(UserDataError, match="no model named"):
        userdata.remove_model("gone")

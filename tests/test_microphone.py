"""Audio sources: a real (virtual) microphone through PulseAudio, device errors, and FileSource.

The microphone tests start their own PulseAudio instance (``$VIRTUAL_MIC``, else the copy of
``virtual-mic.sh`` in ``tests/fixtures/``) in a private runtime directory, so they neither need
nor disturb a sound server someone else is running, play clips into it with ``paplay``, and stop
it afterwards.
They skip, with the reason, where PulseAudio or PortAudio is not installed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from synthetic import make_class_clip_with_span

from speechrnn import default_model_path
from speechrnn.errors import DeviceError
from speechrnn.microphone import AudioSource, FileSource, InputDevice, Microphone, find_input, list_inputs

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "speech_commands"
SCRIPT_CANDIDATES = (
    os.environ.get("VIRTUAL_MIC", ""),
    str(Path(__file__).resolve().parent / "fixtures" / "virtual-mic.sh"),
    "/work/shared/tools/virtual-mic.sh",
)


def _portaudio_missing() -> str | None:
    try:
        import sounddevice  # noqa: F401
    except ImportError as exc:
        return f"sounddevice is not installed: {exc}"
    except OSError as exc:
        return f"PortAudio (libportaudio2) is not installed: {exc}"
    return None


def _virtual_mic_script() -> str | None:
    for candidate in SCRIPT_CANDIDATES:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


class VirtualMic:
    """A private PulseAudio server with a virtual microphone; ``play`` speaks into it."""

    def __init__(self, script: str, root: Path) -> None:
        self.script = script
        runtime = root / "pulse"
        runtime.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PULSE_RUNTIME_PATH": str(runtime), "VIRTUAL_MIC_STATE": str(root / "state")}

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", self.script, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def play(self, path: Path) -> None:
        result = self.run("play", str(path))
        assert result.returncode == 0, result.stderr

    def recordings(self) -> set[str]:
        """Ids of the recording streams open on the server (PulseAudio source outputs)."""
        result = subprocess.run(
            ["pactl", "list", "short", "source-outputs"], env=self.env, capture_output=True, text=True, check=False
        )
        return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}

    def play_when_recording(self, path: Path, *, delay: float = 0.5, timeout: float = 60.0) -> threading.Thread:
        """Play ``path`` ``delay`` seconds after a program opens the microphone anew (in a thread)."""
        before = self.recordings()  # streams of earlier tests may still be closing

        def wait_and_play() -> None:
            deadline = time.monotonic() + timeout
            while not self.recordings() - before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(delay)
            self.play(path)

        thread = threading.Thread(target=wait_and_play, daemon=True)
        thread.start()
        return thread


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualMic]:
    """Start a private virtual microphone, point this process's PortAudio at it, stop it after."""
    missing = _portaudio_missing()
    if missing:
        pytest.skip(missing)
    for tool in ("pulseaudio", "pactl", "pacat", "paplay"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)")
    script = _virtual_mic_script()
    if script is None:
        pytest.skip("virtual-mic.sh not found (set $VIRTUAL_MIC to its path)")
    mic = VirtualMic(script, tmp_path_factory.mktemp("vmic"))
    started = mic.run("start")
    if started.returncode != 0:
        mic.run("stop")
        pytest.skip(f"PulseAudio could not start here: {started.stderr.strip()[-300:]}")
    saved = os.environ.get("PULSE_RUNTIME_PATH")
    os.environ["PULSE_RUNTIME_PATH"] = mic.env["PULSE_RUNTIME_PATH"]
    try:
        list_inputs(refresh=True)  # PortAudio enumerates devices once: look again now the server runs
        # the first capture after the server starts can stall for a while: get it over with here
        with Microphone(None) as warm_up:
            record(warm_up, 1.0)
        yield mic
    finally:
        mic.run("stop")
        if saved is None:
            os.environ.pop("PULSE_RUNTIME_PATH", None)
        else:
            os.environ["PULSE_RUNTIME_PATH"] = saved
        list_inputs(refresh=True)


def record(mic: Microphone, seconds: float) -> np.ndarray:
    blocks = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        block = mic.read(0.5)
        if block is not None:
            blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


# ---------------------------------------------------------------- the virtual microphone


@pytest.mark.microphone
def test_lists_and_finds_the_virtual_microphone(virtual_mic: VirtualMic) -> None:
    inputs = list_inputs()
    assert inputs, "PulseAudio runs but no input device is listed"
    assert all(isinstance(d, InputDevice) and d.channels > 0 and d.default_samplerate > 0 for d in inputs)
    default = find_input(None)
    assert default in inputs
    assert find_input(default.index) == default
    assert find_input(str(default.index)) == default
    assert find_input(default.name.upper()) == default  # names match case-insensitively
    assert "pulse" in [d.name for d in inputs]
    assert find_input("puls").name == "pulse"  # a unique substring is enough


@pytest.mark.microphone
def test_microphone_records_what_is_played(virtual_mic: VirtualMic, tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    tone = tmp_path / "tone.wav"
    sf.write(tone, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    player = virtual_mic.play_when_recording(tone, delay=0.4)
    with Microphone(None, sample_rate=16000) as mic:
        assert isinstance(mic, AudioSource)
        audio = record(mic, 2.6)
        assert mic.error is None
    player.join(timeout=10)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape[0] == pytest.approx(2.6 * 16000, rel=0.1)  # delivered at the model rate
    loud = np.flatnonzero(np.abs(audio) > 0.25)
    assert loud.size, "the played tone never reached the microphone"
    assert (loud[-1] - loud[0]) / 16000 == pytest.approx(1.0, abs=0.1)
    # a 440 Hz tone after resampling from the device's native rate to 16 kHz
    segment = audio[loud[0] + 1000 : loud[0] + 9000]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(segment.size)))
    assert np.fft.rfftfreq(segment.size, 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=5)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.05)


@pytest.mark.microphone
def test_listen_hears_a_command_played_into_the_microphone(
    virtual_mic: VirtualMic, synthetic_model: Path, tmp_path: Path
) -> None:
    from speechrnn.listen import listen

    clip, _, _ = make_class_clip_with_span("tone", np.random.default_rng(5))
    path = tmp_path / "tone_command.wav"
    sf.write(path, clip, 16000, subtype="PCM_16")
    player = virtual_mic.play_when_recording(path, delay=0.8)
    out = io.StringIO()
    detections = listen(
        model=synthetic_model, input=None, duration=3.5, format="jsonl", device="cpu", out=out, err=io.StringIO()
    )
    player.join(timeout=10)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["label"] for r in records] == ["tone"], records
    assert [d.label for d in detections] == ["tone"]
    assert 0.8 < records[0]["time"] < 3.5


@pytest.mark.microphone
@pytest.mark.skipif(not default_model_path().exists(), reason="speechrnn/models/default.pt is not trained yet")
def test_default_model_hears_a_real_word_through_the_microphone(virtual_mic: VirtualMic) -> None:
    from speechrnn.listen import listen

    clip = FIXTURES / "yes" / "f5733968_nohash_3.flac"
    player = virtual_mic.play_when_recording(clip, delay=0.8)
    out = io.StringIO()
    listen(input=None, duration=3.5, format="jsonl", device="cpu", out=out, err=io.StringIO())
    player.join(timeout=10)
    labels = [json.loads(line)["label"] for line in out.getvalue().splitlines()]
    assert labels == ["yes"]


@pytest.mark.microphone
def test_device_that_disappears_raises_device_error(tmp_path: Path, virtual_mic: VirtualMic) -> None:
    # a second, private server that this test kills while recording
    own = VirtualMic(virtual_mic.script, tmp_path)
    assert own.run("start").returncode == 0
    saved = os.environ["PULSE_RUNTIME_PATH"]
    os.environ["PULSE_RUNTIME_PATH"] = own.env["PULSE_RUNTIME_PATH"]
    try:
        list_inputs(refresh=True)
        mic = Microphone(None)
        mic.start()
        try:
            assert record(mic, 0.3).size > 0
            own.run("stop")
            started = time.monotonic()
            with pytest.raises(DeviceError, match="stopped delivering audio"):
                while time.monotonic() - started < 10:
                    mic.read(0.5)
            assert time.monotonic() - started < 5, "the vanished device was noticed too late"
            assert mic.error and "stopped delivering audio" in mic.error
        finally:
            mic.stop()
        mic.stop()  # idempotent
    finally:
        own.run("stop")
        os.environ["PULSE_RUNTIME_PATH"] = saved
        list_inputs(refresh=True)


# ---------------------------------------------------------------- no or bad devices


@pytest.mark.skipif(_portaudio_missing() is not None, reason=_portaudio_missing() or "")
def test_unknown_devices_are_clear_errors() -> None:
    with pytest.raises(DeviceError, match=r"no audio input device (matches 'no-such-device'|found)"):
        find_input("no-such-device")
    with pytest.raises(DeviceError, match=r"no audio input device (with index 9999|found)"):
        Microphone(9999)
    with pytest.raises(DeviceError, match="no audio input device"):
        find_input(9999)


@pytest.mark.skipif(_portaudio_missing() is not None, reason=_portaudio_missing() or "")
@pytest.mark.skipif(
    Path("/proc/asound/cards").exists() and "no soundcards" not in Path("/proc/asound/cards").read_text(),
    reason="this machine has sound hardware",
)
def test_no_input_device_without_a_sound_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an empty PulseAudio runtime directory: no server to talk to, and no sound card
    monkeypatch.setenv("PULSE_RUNTIME_PATH", str(tmp_path))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-server")
    try:
        assert list_inputs(refresh=True) == []
        with pytest.raises(DeviceError, match="no audio input device found"):
            find_input(None)
        with pytest.raises(DeviceError, match="no audio input device found"):
            Microphone()
    finally:
        monkeypatch.undo()
        list_inputs(refresh=True)


def test_missing_portaudio_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(DeviceError, match="libportaudio2"):
        list_inputs()


def test_a_sound_server_that_does_not_answer_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen sound server blocks PortAudio's start in C: the wait is bounded, the error says why."""
    import threading

    from speechrnn import microphone

    release = threading.Event()

    def frozen():
        null = os.open(os.devnull, os.O_WRONLY)  # as sounddevice silences fd 2 while PortAudio starts
        os.dup2(null, 2)
        os.close(null)
        release.wait(30)  # as PortAudio waits on a server that never answers
        raise OSError("never reached")

    monkeypatch.setattr(microphone, "_import_sounddevice", frozen)
    monkeypatch.setattr(microphone, "START_TIMEOUT_SECONDS", 0.3)
    before = os.fstat(2)
    started = time.monotonic()
    try:
        with pytest.raises(DeviceError, match=r"did not answer within 0.3 s \(starting PortAudio\).*frozen"):
            list_inputs()
        assert time.monotonic() - started < 5
        after = os.fstat(2)  # the error can be seen: standard error is where it was
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    finally:
        release.set()


@pytest.mark.skipif(_portaudio_missing() is not None, reason=_portaudio_missing() or "")
def test_device_refusing_its_rate_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sounddevice as sd

    import speechrnn.microphone as microphone

    device = InputDevice(index=3, name="Picky USB mic", channels=1, default_samplerate=44100.0, is_default=True)
    monkeypatch.setattr(microphone, "find_input", lambda _device: device)

    def refuse(*args, **kwargs):
        raise sd.PortAudioError("Invalid sample rate [PaErrorCode -9997]")

    monkeypatch.setattr(sd, "InputStream", refuse)
    mic = Microphone("Picky")
    with pytest.raises(
        DeviceError,
        match=r"cannot open input device 'Picky USB mic' \(index 3\) at 44100 Hz: "
        r"Invalid sample rate",
    ):
        mic.start()
    assert mic.read(0.01) is None  # never started: nothing to read, no hang


# ---------------------------------------------------------------- FileSource


def test_file_source_fast_delivers_everything_then_finishes() -> None:
    audio = np.random.default_rng(0).standard_normal(10000).astype(np.float32)
    source = FileSource(audio, block_seconds=0.02, realtime=False, tail_silence_seconds=0.5)
    assert isinstance(source, AudioSource)
    assert source.read(0.1) is None  # not started
    with source:
        blocks = []
        while (block := source.read(0.1)) is not None:
            blocks.append(block)
        assert source.finished
        assert source.read(0.1) is None
    assert {b.shape[0] for b in blocks[:-1]} == {320}
    delivered = np.concatenate(blocks)
    np.testing.assert_array_equal(delivered[:10000], audio)
    assert delivered.shape[0] == 10000 + 8000 and not delivered[10000:].any()
    assert source.dropped_blocks == source.overflows == 0 and source.error is None


def test_file_source_realtime_paces_by_the_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "half.wav"
    sf.write(path, np.zeros(8000, dtype=np.float32), 16000)
    source = FileSource(path, realtime=True, tail_silence_seconds=0.0)
    assert source.name == "half.wav" and source.duration == pytest.approx(0.5)
    source.start()
    started = time.monotonic()
    assert source.read(0.001) is None  # the first block is not due yet: a timeout, not the end
    assert not source.finished
    total = 0
    while (block := source.read(0.5)) is not None:
        total += block.shape[0]
    elapsed = time.monotonic() - started
    assert total == 8000
    assert 0.45 <= elapsed < 1.0


def test_file_source_loops(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 300 * np.arange(1600) / 16000)).astype(np.float32), 16000)
    source = FileSource(path, realtime=False, loop=True, tail_silence_seconds=0.0, block_seconds=0.05)
    source.start()
    delivered = np.concatenate([source.read(0.1) for _ in range(10)])
    assert delivered.shape[0] == 8000 and not source.finished  # 5 passes of the 0.1 s file at 16 kHz
    np.testing.assert_allclose(delivered[:1600], delivered[1600:3200], atol=1e-6)
    source.stop()
    assert source.read(0.1) is None


def test_file_source_streams_a_long_file_in_bounded_blocks(tmp_path: Path, monkeypatch) -> None:
    """A file is decoded ten seconds at a time as it is played, never whole, at any rate."""
    import speechrnn.audio as audio_module

    rng = np.random.default_rng(3)
    audio = (0.1 * rng.standard_normal(25 * 22050)).astype(np.float32)
    path = tmp_path / "long.flac"
    sf.write(path, audio, 22050)
    asked: list[float] = []
    real_blocks = audio_module.iter_audio_blocks

    def spy(*args, **kwargs):
        asked.append(kwargs["block_seconds"])
        return real_blocks(*args, **kwargs)

    def never(*args, **kwargs):
        raise AssertionError("the whole file was loaded")

    monkeypatch.setattr(audio_module, "iter_audio_blocks", spy)
    monkeypatch.setattr(audio_module, "load_audio", never)
    source = FileSource(path, sample_rate=16000, realtime=False, tail_silence_seconds=0.5)
    assert source.duration == pytest.approx(25.5)
    source.start()
    blocks = []
    while (block := source.read(0.1)) is not None:
        blocks.append(block)
    assert asked == [10.0] and {b.shape[0] for b in blocks[:-1]} == {320}
    delivered = np.concatenate(blocks)
    expected = np.concatenate(list(real_blocks(path, sample_rate=16000)))
    np.testing.assert_array_equal(delivered[: expected.size], expected)
    assert delivered.size == expected.size + 8000 and not delivered[expected.size :].any()
    source.start()  # a restart plays the file again from its start
    np.testing.assert_array_equal(source.read(0.1), expected[:320])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_file_source_leaves_no_file_open(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16001, dtype=np.float32), 16000)

    def open_files() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    before = open_files()
    for _ in range(10):  # made and dropped without playing
        FileSource(path, realtime=False)
    source = FileSource(path, realtime=False)
    source.start()
    assert source.read(0.1) is not None
    source.stop()  # stopped halfway
    assert open_files() == before
    source.start()
    delivered = 0
    while (block := source.read(0.1)) is not None:
        delivered += block.size
    assert delivered == 16001 + 16000  # the whole file, then its tail of silence
    assert source.finished and open_files() == before


def test_file_source_errors(tmp_path: Path) -> None:
    from speechrnn.errors import AudioError

    with pytest.raises(AudioError, match=r"missing\.wav"):
        FileSource(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="mono"):
        FileSource(np.zeros((10, 2), dtype=np.float32))

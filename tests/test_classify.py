"""Batch classification: clips, long recordings, bad files, formats, shards and the command line."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from synthetic import SAMPLE_RATE, WORDS, make_class_clip, place_clips

from speechrnn.classify import (
    FORMATS,
    FileRecord,
    classify_files,
    collect_audio_files,
    run_classify,
    scan_audio,
    shard_files,
    write_records,
)
from speechrnn.decisions import DecisionConfig
from speechrnn.inference import Classifier

GOOD = (*WORDS, "_silence_", "_unknown_")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def classifier(synthetic_model: Path) -> Classifier:
    return Classifier.from_file(synthetic_model, device="cpu")


def write_wav(path: Path, audio: np.ndarray, rate: int = SAMPLE_RATE, subtype: str = "PCM_16",
              fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype, format=fmt)
    return path


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A folder of good clips (name -> true label) and bad files (name -> expected reason words)."""
    root = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(11)
    truth = {}
    for i, label in enumerate(GOOD):
        name = f"good_{i}_{label.strip('_')}.wav"
        write_wav(root / name, make_class_clip(label, rng))
        truth[name] = label
    short = make_class_clip("rise", rng)[: int(0.8 * SAMPLE_RATE)]  # shorter than a clip: zero-padded
    write_wav(root / "good_short.wav", short)
    truth["good_short.wav"] = "rise"
    bad = {}
    (root / "empty.wav").write_bytes(b"")
    bad["empty.wav"] = "empty"
    (root / "notes.wav").write_text("these are my notes, not audio\n" * 20)
    bad["notes.wav"] = "not an audio file"
    buffer = io.BytesIO()
    sf.write(buffer, make_class_clip("tone", rng), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    (root / "truncated.wav").write_bytes(buffer.getvalue()[:30])
    bad["truncated.wav"] = "header"
    nan_clip = make_class_clip("fall", rng)
    nan_clip[1000:1010] = np.nan
    write_wav(root / "nan.wav", nan_clip, subtype="FLOAT")
    bad["nan.wav"] = "NaN"
    (root / "readme.txt").write_text("not scanned: not an audio extension\n")
    return root, truth, bad


def run(classifier: Classifier, paths: list[Path | str], tmp_path: Path, fmt: str, **options):
    out = tmp_path / f"out.{fmt}"
    err = io.StringIO()
    status = run_classify(paths=paths, classifier=classifier, fmt=fmt, output=out, quiet=True, workers=0,
                          stderr=err, **options)
    return status, out.read_text(encoding="utf-8"), err.getvalue()


def parse_output(text: str, fmt: str) -> list[dict[str, str | None]]:
    """Path, label and error of each record, whatever the format."""
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    if fmt == "json":
        return json.loads(text)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return [{**row, "label": row["label"] or None, "error": row["error"] or None} for row in rows]
    lines = text.splitlines()
    header, rows = lines[0], lines[1:]
    label_at, details_at = header.index("LABEL"), header.index("DETAILS")
    parsed = []
    for line in rows:
        label = line[label_at:].split()[0]
        details = line[details_at:]
        parsed.append({
            "path": line[:label_at].rstrip(),
            "label": None if label == "-" else label,
            "error": details.removeprefix("error: ") if details.startswith("error: ") else None,
        })
    return parsed


@pytest.mark.parametrize("fmt", FORMATS)
def test_folder_of_good_and_bad_files(classifier, mixed_folder, tmp_path, fmt) -> None:
    root, truth, bad = mixed_folder
    status, text, err = run(classifier, [root], tmp_path, fmt)
    assert status == 1
    records = parse_output(text, fmt)
    names = [Path(str(r["path"])).name for r in records]
    assert names == sorted(names) == sorted([*truth, *bad])  # readme.txt is not scanned
    for record, name in zip(records, names, strict=True):
        if name in truth:
            assert record["label"] == truth[name], name
            assert record["error"] is None
        else:
            assert record["label"] is None
            assert bad[name].lower() in str(record["error"]).lower(), record
    lines = err.strip().splitlines()
    assert len(lines) == len(bad)
    for line, name in zip(lines, sorted(bad), strict=True):
        assert line.startswith(f"{root / name}: ") and bad[name].lower() in line.lower()


def test_json_schema(classifier, mixed_folder, tmp_path) -> None:
    root = mixed_folder[0]
    status, text, _ = run(classifier, [root], tmp_path, "json", top_k=2)
    assert status == 1
    for record in json.loads(text):
        assert list(record) == ["path", "label", "score", "top_k", "detections", "duration", "error"]
        if record["error"] is None:
            assert 0 <= record["score"] <= 1 and record["duration"] > 0
            assert len(record["top_k"]) == 2 and record["top_k"][0]["label"] == record["label"]
            assert record["detections"] == []
        else:
            assert record["score"] is None and record["top_k"] == [] and record["duration"] is None


def test_worker_processes_give_the_same_records(classifier, synthetic_model, mixed_folder) -> None:
    root, _, _ = mixed_folder
    inline = classify_files([root], classifier=classifier, workers=0, batch_size=3)
    pooled = classify_files([root], classifier=classifier, workers=2, batch_size=3)
    assert [r.path for r in pooled] == [r.path for r in inline]
    for a, b in zip(inline, pooled, strict=True):
        assert (a.label, a.error) == (b.label, b.error)
        assert a.score == pytest.approx(b.score, abs=1e-5) if a.score is not None else b.score is None
    loaded = classify_files([root], model=synthetic_model, device="cpu", workers=1, batch_size=4)
    assert [(r.path, r.label, r.error) for r in loaded] == [(r.path, r.label, r.error) for r in inline]


def test_bad_model_in_worker_processes(mixed_folder, tmp_path) -> None:
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 not really a zip")
    err = io.StringIO()
    status = run_classify(paths=[mixed_folder[0]], model=tmp_path / "model.pt", workers=2, batch_size=3, stderr=err)
    assert status == 2 and "model.pt" in err.getvalue() and len(err.getvalue().splitlines()) == 1


def test_missing_and_oddly_named_files(classifier, tmp_path) -> None:
    rng = np.random.default_rng(3)
    odd = write_wav(tmp_path / "clip.data", make_class_clip("buzz", rng), subtype="FLOAT", fmt="WAV")
    records = classify_files([odd, tmp_path / "missing.wav"], classifier=classifier, workers=0)
    assert [(Path(r.path).name, r.label) for r in records] == [("clip.data", "buzz"), ("missing.wav", None)]
    assert "not found" in str(records[1].error)


def test_resampling_and_channels(classifier, tmp_path) -> None:
    """The same sound at 8 kHz, 16 kHz, 44.1 kHz and in stereo gets the same label."""
    import librosa

    rng = np.random.default_rng(5)
    for label in WORDS:
        # band-limit to 4 kHz first, so that the 8 kHz file holds the same sound as the others
        clip = make_class_clip(label, rng)
        clip = librosa.resample(librosa.resample(clip, orig_sr=SAMPLE_RATE, target_sr=8000), orig_sr=8000,
                                target_sr=SAMPLE_RATE)[: clip.shape[0]]
        t = np.arange(clip.shape[0]) / SAMPLE_RATE
        files = [write_wav(tmp_path / label / "16k.wav", clip)]
        for rate in (8000, 44100):
            resampled = librosa.resample(clip, orig_sr=SAMPLE_RATE, target_sr=rate)
            files.append(write_wav(tmp_path / label / f"{rate}.wav", resampled, rate))
        stereo = np.stack([clip, 0.5 * clip + 0.001 * np.sin(2 * np.pi * 50 * t)], axis=1)
        files.append(write_wav(tmp_path / label / "stereo.flac", stereo))
        records = classify_files(files, classifier=classifier, workers=0)
        labels = [r.label for r in records]
        assert labels == [labels[0]] * len(files), [(r.path, r.label, r.score) for r in records]
        if label != "buzz":  # the others lie below 4 kHz: band-limiting leaves them intact
            assert labels[0] == label
        assert all(r.duration == pytest.approx(1.0, abs=1e-3) for r in records)


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(21)
    placed = [("rise", 1.0), ("tone", 5.0), ("buzz", 9.5), ("_unknown_", 13.0), ("fall", 17.0)]
    audio, spans = place_clips(placed, seconds=20.0, rng=rng)
    return audio, spans


def test_long_file_detections(classifier, long_recording, tmp_path) -> None:
    audio, spans = long_recording
    path = write_wav(tmp_path / "long.wav", audio)
    (record,) = classify_files([path], classifier=classifier, workers=0)
    assert record.ok and record.duration == pytest.approx(20.0, abs=1e-3)
    words = [(name, start, end) for name, start, end in spans if name in WORDS]
    assert [d.label for d in record.detections] == [name for name, _, _ in words]
    for detection, (_, start, end) in zip(record.detections, words, strict=True):
        # the reported one-second window holds the sound (its start within 250 ms of the sound's
        # start or earlier, its end within 250 ms of the sound's end or later) ...
        assert detection.start <= start + 0.25 and detection.end >= end - 0.25, (detection, start, end)
        assert detection.start >= end - 1.0 - 0.25 and detection.end <= start + 1.0 + 0.25
        # ... and the decision came soon after the sound ended
        assert end - 0.25 <= detection.time <= end + 1.0
    assert record.label in {name for name, _, _ in words}
    assert record.score == max(d.score for d in record.detections)


def test_long_file_without_commands_is_silence(classifier, tmp_path) -> None:
    rng = np.random.default_rng(8)
    path = write_wav(tmp_path / "quiet.wav", (rng.standard_normal(5 * SAMPLE_RATE) * 0.002).astype(np.float32))
    (record,) = classify_files([path], classifier=classifier, workers=0)
    assert record.detections == () and record.label == "_silence_"


def test_short_recording_is_classified_like_its_clip(classifier, tmp_path, monkeypatch) -> None:
    """A clip saved with 0.2 s before and 0.1 s after it is one word: its loudest one-second window
    gets one answer like the clip; only files longer than clip_max_seconds are scanned."""
    import speechrnn.classify as classify

    rng = np.random.default_rng(14)
    files = []
    for label in WORDS:
        clip = make_class_clip(label, rng)
        files.append(write_wav(tmp_path / f"{label}_clip.wav", clip))
        padded = np.concatenate([np.zeros(round(0.2 * SAMPLE_RATE)), clip, np.zeros(round(0.1 * SAMPLE_RATE))])
        files.append(write_wav(tmp_path / f"{label}_padded.wav", padded.astype(np.float32)))
    scanned = []
    real_scan = classify.scan_audio

    def spy(*args, **kwargs):
        scanned.append(1)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(classify, "scan_audio", spy)
    records = {Path(r.path).stem: r for r in classify_files(files, classifier=classifier, workers=0)}
    assert not scanned
    for label in WORDS:
        clip, padded = records[f"{label}_clip"], records[f"{label}_padded"]
        assert clip.label == padded.label == label, (clip, padded)
        assert padded.duration == pytest.approx(1.3, abs=1e-3) and padded.detections == ()
    classify_files(files, classifier=classifier, workers=0, clip_max_seconds=1.0)
    assert len(scanned) == len(WORDS)  # now the padded files are scanned, the clips still are not


def test_records_come_out_as_files_finish(classifier, long_recording, tmp_path, monkeypatch) -> None:
    """In one process each record is handed out when its file is done: Ctrl-C during a long
    recording keeps the clips classified before it."""
    import speechrnn.classify as classify

    rng = np.random.default_rng(6)
    write_wav(tmp_path / "in" / "a.wav", make_class_clip("rise", rng))
    write_wav(tmp_path / "in" / "b.wav", make_class_clip("tone", rng))
    write_wav(tmp_path / "in" / "c_long.wav", long_recording[0])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(classify, "scan_audio", interrupted)
    status, text, err = run(classifier, [tmp_path / "in"], tmp_path, "json")
    assert status == 130 and "interrupted after 2 of 3" in err
    assert [(Path(r["path"]).name, r["label"]) for r in json.loads(text)] == [("a.wav", "rise"), ("b.wav", "tone")]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_within_a_long_recording(classifier, long_recording, tmp_path) -> None:
    """On a terminal the progress bar says how far into a long recording the scan is."""
    path = write_wav(tmp_path / "long.wav", long_recording[0])
    err = _Terminal()
    status = run_classify(paths=[path], classifier=classifier, fmt="jsonl", output=tmp_path / "out.jsonl",
                          workers=0, stderr=err)
    assert status == 0
    assert "long.wav 10/20 s" in err.getvalue() and "long.wav 20/20 s" in err.getvalue()
    quiet = _Terminal()
    run_classify(paths=[path], classifier=classifier, fmt="jsonl", output=tmp_path / "out.jsonl", workers=0,
                 stderr=quiet, quiet=True)
    assert quiet.getvalue() == ""


def assert_same_detections(found, expected) -> None:
    assert [(d.label, d.time, d.start, d.end) for d in found] == [(d.label, d.time, d.start, d.end) for d in expected]
    assert [d.score for d in found] == pytest.approx([d.score for d in expected], abs=1e-5)


def test_scan_audio_matches_streaming(classifier, long_recording) -> None:
    from speechrnn.streaming import StreamingRecognizer

    audio = long_recording[0][: 8 * SAMPLE_RATE + 123]
    recognizer = StreamingRecognizer(classifier, hop_seconds=0.1)
    steps = [step for i in range(0, audio.shape[0], 777) for step in recognizer.push_steps(audio[i : i + 777])]
    blocks = [audio[i : i + 30011] for i in range(0, audio.shape[0], 30011)]
    result = scan_audio(classifier, blocks, hop_seconds=0.1, decision=DecisionConfig(), batch_size=16)
    assert result.times == pytest.approx([s.time for s in steps], abs=1e-9)
    np.testing.assert_allclose(result.probabilities, np.stack([s.probabilities for s in steps]), atol=1e-5)
    assert_same_detections(result.detections, [s.detection for s in steps if s.detection is not None])


def test_scan_audio_does_not_depend_on_blocks(classifier, long_recording) -> None:
    audio = long_recording[0][: 6 * SAMPLE_RATE]
    whole = scan_audio(classifier, [audio], batch_size=512)
    pieces = scan_audio(classifier, np.array_split(audio, 37), batch_size=5)
    np.testing.assert_allclose(whole.probabilities, pieces.probabilities, atol=1e-5)
    assert_same_detections(whole.detections, pieces.detections)
    with pytest.raises(ValueError, match="too short"):
        scan_audio(classifier, [audio[:1000]])


def test_shards_partition_the_files(classifier, tmp_path) -> None:
    rng = np.random.default_rng(9)
    for i in range(7):
        write_wav(tmp_path / "clips" / f"{i:02d}.wav", make_class_clip(WORDS[i % 4], rng))
    files = collect_audio_files([tmp_path / "clips"])
    shards = [shard_files(files, (k, 3)) for k in (1, 2, 3)]
    assert [f for shard in shards for f in shard] == files
    texts = []
    for k in (1, 2, 3):
        status, text, _ = run(classifier, [tmp_path / "clips"], tmp_path, "jsonl", shard=f"{k}/3")
        assert status == 0
        texts.append(text)
    _, whole, _ = run(classifier, [tmp_path / "clips"], tmp_path, "jsonl")
    assert "".join(texts) == whole
    for bad in ("0/3", "4/3", "1/0", "x", "1/2/3"):
        err = io.StringIO()
        assert run_classify(paths=[tmp_path / "clips"], classifier=classifier, shard=bad, stderr=err) == 2
        assert "shard" in err.getvalue()


def test_no_files_and_recursion(classifier, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    err = io.StringIO()
    assert run_classify(paths=[tmp_path / "empty"], classifier=classifier, stderr=err) == 2
    assert "no audio files" in err.getvalue()
    nested = tmp_path / "nested" / "deeper"
    write_wav(nested / "a.wav", make_class_clip("tone", np.random.default_rng(1)))
    err = io.StringIO()
    assert run_classify(paths=[tmp_path / "nested"], classifier=classifier, stderr=err) == 2
    assert "--recursive" in err.getvalue()
    status, text, _ = run(classifier, [tmp_path / "nested"], tmp_path, "jsonl", recursive=True)
    assert status == 0 and json.loads(text)["label"] == "tone"


def test_folder_links_loops_and_duplicates(classifier, tmp_path) -> None:
    """Linked folders are searched once each, a link loop is a file that gets its one-line error,
    and a file named twice is classified once."""
    rng = np.random.default_rng(2)
    a, b = tmp_path / "a", tmp_path / "b"
    write_wav(a / "x.wav", make_class_clip("tone", rng))
    write_wav(b / "y.wav", make_class_clip("rise", rng))
    (a / "again").symlink_to(a, target_is_directory=True)  # a loop back to the folder itself
    (a / "other").symlink_to(b, target_is_directory=True)  # a linked folder
    (a / "self.wav").symlink_to(a / "self.wav")  # a link to itself
    expected = sorted(str(p) for p in (a / "other" / "y.wav", a / "self.wav", a / "x.wav"))
    assert collect_audio_files([a], recursive=True) == expected
    assert collect_audio_files([a, b], recursive=True) == expected  # b was searched already, through a/other
    assert collect_audio_files([a]) == sorted([str(a / "self.wav"), str(a / "x.wav")])
    assert collect_audio_files([a / "x.wav", f"{a}{os.sep}.{os.sep}x.wav"]) == [str(a / "x.wav")]
    status, text, err = run(classifier, [a], tmp_path, "jsonl")
    records = [json.loads(line) for line in text.splitlines()]
    assert status == 1 and [r["label"] for r in records] == [None, "tone"]
    assert "symbolic links" in records[0]["error"] and err.count("\n") == 1


def test_unlistable_folder_is_reported_and_the_rest_classified(classifier, tmp_path, deny_listing) -> None:
    write_wav(tmp_path / "ok" / "a.wav", make_class_clip("rise", np.random.default_rng(1)))
    locked = tmp_path / "ok" / "locked"
    locked.mkdir()
    deny_listing(locked)
    for recursive in (False, True):
        paths = [tmp_path / "ok"] + ([] if recursive else [locked])
        status, text, err = run(classifier, paths, tmp_path, "jsonl", recursive=recursive)
        assert status == 1 and err == f"{locked}: cannot list folder (Permission denied)\n"
        assert [json.loads(line)["label"] for line in text.splitlines()] == ["rise"]
    with pytest.warns(RuntimeWarning, match="cannot list folder"):
        assert collect_audio_files([tmp_path / "ok"], recursive=True) == [str(tmp_path / "ok" / "a.wav")]


def test_closed_output_pipe_stops_quietly(synthetic_model, mixed_folder, repo_env) -> None:
    """`speechrnn classify ... | head`: when the reader goes away the command stops without a traceback."""
    root, _, _ = mixed_folder
    command = [sys.executable, "-m", "speechrnn", "classify", str(root), "--model", str(synthetic_model),
               "--format", "jsonl", "--workers", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=repo_env)
    process.stdout.close()  # the reader is gone before the first record
    _, err = process.communicate(timeout=300)
    assert process.returncode == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_hop_that_could_never_detect_is_a_usage_error(classifier, long_recording, tmp_path) -> None:
    path = write_wav(tmp_path / "long.wav", long_recording[0])
    err = io.StringIO()
    assert run_classify(paths=[path], classifier=classifier, hop_seconds=0.3, stderr=err) == 2
    assert "--hop: a hop of 0.3 s leaves at most 2 result(s)" in err.getvalue()


def test_bad_model_is_a_usage_error(tmp_path) -> None:
    write_wav(tmp_path / "a.wav", make_class_clip("tone", np.random.default_rng(1)))
    (tmp_path / "model.pt").write_text("not a model")
    err = io.StringIO()
    status = run_classify(paths=[tmp_path / "a.wav"], model=tmp_path / "model.pt", stderr=err,
                          output=tmp_path / "out.json")
    assert status == 2 and "model.pt" in err.getvalue() and len(err.getvalue().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


def test_interrupt_writes_what_was_finished(classifier, tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(4)
    for i in range(6):
        write_wav(tmp_path / "clips" / f"{i}.wav", make_class_clip("rise", rng))
    real = classifier.probabilities
    calls = []

    def interrupted_on_second_batch(clips):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(clips)

    monkeypatch.setattr(classifier, "probabilities", interrupted_on_second_batch)
    status, text, err = run(classifier, [tmp_path / "clips"], tmp_path, "json", batch_size=2)
    assert status == 130 and "interrupted after 2 of 6" in err
    assert [Path(r["path"]).name for r in json.loads(text)] == ["0.wav", "1.wav"]


def test_command_line(synthetic_model, mixed_folder, tmp_path, capsys) -> None:
    from speechrnn.cli import main

    root, truth, bad = mixed_folder
    out = tmp_path / "records.csv"
    status = main(["classify", str(root), "--model", str(synthetic_model), "--device", "cpu", "--output", str(out),
                   "--top-k", "2", "--batch-size", "4", "--workers", "0", "--threshold", "0.7", "--quiet"])
    assert status == 1
    rows = list(csv.DictReader(out.open(encoding="utf-8")))  # format from the .csv extension
    assert {Path(r["path"]).name: r["label"] for r in rows if r["label"]} == truth
    assert all(len(r["top_k"].split(";")) == 2 for r in rows if r["label"])
    assert len(capsys.readouterr().err.strip().splitlines()) == len(bad)
    with pytest.raises(SystemExit) as exc:
        main(["classify", str(root), "--shard", "3/2"])
    assert exc.value.code == 2


def test_command_line_int8_backend(synthetic_model, mixed_folder, tmp_path) -> None:
    from speechrnn.cli import main

    root, truth, _ = mixed_folder
    out = tmp_path / "records.json"
    status = main(["classify", str(root), "--model", str(synthetic_model), "--device", "cpu", "--backend", "int8",
                   "--output", str(out), "--workers", "0", "--quiet"])
    assert status == 1  # the bad files of the folder
    records = json.loads(out.read_text(encoding="utf-8"))
    assert {Path(r["path"]).name: r["label"] for r in records if r["label"]} == truth


def test_record_csv_flattening() -> None:
    from speechrnn.classify import csv_row
    from speechrnn.decisions import Detection

    record = FileRecord(path="a.wav", label="yes", score=0.9, top_k=(("yes", 0.9), ("no", 0.05)),
                        detections=(Detection("yes", 0.9, 2.0, 1.0, 2.0), Detection("no", 0.8, 5.5, 4.25, 5.25)),
                        duration=8.0)
    row = dict(zip(("path", "label", "score", "top_k", "n", "detections", "duration", "error"), csv_row(record),
                   strict=True))
    assert row["top_k"] == "yes:0.9;no:0.05"
    assert row["n"] == "2" and row["detections"] == "yes@1.000-2.000;no@4.250-5.250"
    assert row["duration"] == "8.000" and row["error"] == ""


def test_file_names_that_are_not_utf8_are_written_escaped(classifier, tmp_path) -> None:
    """A name with bytes that are not UTF-8 is classified, and every format can still be written and read back."""
    folder = tmp_path / "names"
    folder.mkdir()
    buffer = io.BytesIO()
    sf.write(buffer, make_class_clip("rise", np.random.default_rng(2)), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    try:
        with open(os.path.join(os.fsencode(folder), b"bad\xff\xfename.wav"), "wb") as f:
            f.write(buffer.getvalue())
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    for fmt in ("jsonl", "json", "csv", "table"):
        status, text, err = run(classifier, [folder], tmp_path, fmt)
        assert status == 0, err
        (record,) = parse_output(text, fmt)
        assert record["path"].endswith("bad\\xff\\xfename.wav") and record["label"] == "rise"


def test_output_stream_that_cannot_hold_every_character(classifier, tmp_path) -> None:
    """An ASCII standard output gets escapes instead of a crash: JSON stays valid JSON."""
    path = write_wav(tmp_path / "caf\u00e9 \u65e5\u672c.wav", make_class_clip("fall", np.random.default_rng(3)))
    for fmt in ("jsonl", "table", "csv"):
        raw = io.BytesIO()
        out = io.TextIOWrapper(raw, encoding="ascii", newline="")
        status = run_classify(paths=[path], classifier=classifier, fmt=fmt, stdout=out, stderr=io.StringIO(),
                              quiet=True, workers=0)
        out.flush()
        text = raw.getvalue().decode("ascii")
        assert status == 0
        if fmt == "jsonl":
            assert json.loads(text)["path"] == str(path)
        else:
            assert "caf\\xe9 \\u65e5\\u672c.wav" in text and "fall" in text


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_an_output_that_fails_while_writing_is_one_line(classifier, tmp_path) -> None:
    """A full disk: one line naming the output and the reason, exit status 2, no traceback."""
    path = write_wav(tmp_path / "a.wav", make_class_clip("rise", np.random.default_rng(4)))
    err = io.StringIO()
    status = run_classify(paths=[path], classifier=classifier, fmt="csv", output="/dev/full", stderr=err,
                          quiet=True, workers=0)
    assert status == 2
    assert err.getvalue() == "speechrnn classify: error: cannot write /dev/full: No space left on device\n"


def test_output_that_is_one_of_the_inputs_is_refused(classifier, tmp_path) -> None:
    """`-o clip.wav` naming a file to classify would empty it before it is read: refused, the file untouched."""
    path = write_wav(tmp_path / "clip.wav", make_class_clip("rise", np.random.default_rng(5)))
    before = path.read_bytes()
    err = io.StringIO()
    status = run_classify(paths=[tmp_path], classifier=classifier, fmt="csv", output=path, stderr=err, workers=0)
    assert status == 2 and "clip.wav is one of the files to classify" in err.getvalue()
    assert path.read_bytes() == before


def test_table_details_show_the_classes_other_than_the_label() -> None:
    """A long file's label (the mean winner) need not head its top_k (the peaks): the table must not hide the top."""
    record = FileRecord(path="long.wav", label="_silence_", score=0.59, duration=4.0,
                        top_k=(("_unknown_", 0.956), ("_silence_", 0.948), ("up", 0.178)))
    out = io.StringIO()
    write_records(out, [record], "table")
    row = out.getvalue().splitlines()[1]
    assert row.split()[1] == "_silence_" and row.endswith("_unknown_:0.956 up:0.178")


def test_table_rows_and_progress_bar_share_a_terminal(classifier, tmp_path) -> None:
    """On one terminal, the bar is cleared before each row, so no row is glued to the bar."""
    rng = np.random.default_rng(6)
    for i in range(3):
        write_wav(tmp_path / "clips" / f"{i}.wav", make_class_clip("rise", rng))
    terminal = _Terminal()
    status = run_classify(paths=[tmp_path / "clips"], classifier=classifier, fmt="table", stdout=terminal,
                          stderr=terminal, workers=0)
    assert status == 0
    text = terminal.getvalue()
    for i in range(3):
        row = text.index(str(tmp_path / "clips" / f"{i}.wav"))
        assert text[row - 1] in "\r\n", repr(text[max(0, row - 80):row])


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_standard_output_is_one_line(synthetic_model, tmp_path, repo_env) -> None:
    """`speechrnn classify ... > /dev/full`: the same one line, even when the CSV header is what fails."""
    path = write_wav(tmp_path / "a.wav", make_class_clip("rise", np.random.default_rng(7)))
    command = [sys.executable, "-m", "speechrnn", "classify", str(path), "--model", str(synthetic_model),
               "--format", "csv", "--workers", "0"]
    with open("/dev/full", "w") as full:
        done = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, env=repo_env, timeout=300)
    assert done.returncode == 2
    assert done.stderr == "speechrnn classify: error: cannot write standard output: No space left on device\n"

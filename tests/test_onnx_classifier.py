"""The torch-free classifier: cached exports by file, equal answers, and no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import SAMPLE_RATE, make_class_clip

from speechrnn import onnx_classifier
from speechrnn.classify import iter_classify, scan_audio
from speechrnn.inference import Classifier
from speechrnn.onnx_backend import FILE_CACHE_FOLDER, onnx_available
from speechrnn.onnx_classifier import OnnxClassifier, gpu_possible, load_classifier

pytestmark = [
    pytest.mark.skipif(not onnx_available(), reason="onnx and onnxruntime are not installed"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test starts with an empty cache (no exports from other tests)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SPEECHRNN_CACHE", str(folder))
    monkeypatch.delenv("SPEECHRNN_BACKEND", raising=False)
    return folder / "onnx" / FILE_CACHE_FOLDER


@pytest.fixture
def model_copy(synthetic_model: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic model file (tests change it)."""
    path = tmp_path / "model.pt"
    path.write_bytes(synthetic_model.read_bytes())
    return path


def clips(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    names = ("rise", "fall", "tone", "buzz", "_silence_", "_unknown_")
    return np.stack([make_class_clip(names[i % len(names)], rng) for i in range(n)]).astype(np.float32)


@pytest.fixture
def torch_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The backends of every model load that went through PyTorch (``Classifier.from_file``), in order."""
    loads: list[str] = []
    real = Classifier.from_file.__func__

    def counted(cls: type[Classifier], path: Path, **options: object) -> Classifier:
        loaded = real(cls, path, **options)
        loads.append(loaded.backend)
        return loaded

    monkeypatch.setattr(Classifier, "from_file", classmethod(counted))
    return loads


def test_the_second_load_needs_no_torch_and_answers_as_the_first(model_copy: Path, private_cache: Path,
                                                                   torch_loads: list[str]) -> None:
    first = load_classifier(model_copy, device="cpu")
    assert torch_loads == ["onnx"]  # exported and checked with PyTorch
    assert isinstance(first, OnnxClassifier) and first.backend == "onnx"  # but it runs as later runs will
    assert len(list(private_cache.glob("*.onnx"))) == 1  # the checked export, named by the file's bytes
    second = load_classifier(model_copy, device="cpu")
    assert torch_loads == ["onnx"]
    assert isinstance(second, OnnxClassifier) and second.backend == "onnx"
    assert second.labels == first.labels and second.feature_config == first.feature_config
    batch = clips(40)
    np.testing.assert_array_equal(second.probabilities(batch), first.probabilities(batch))  # the same every run
    torch_path = Classifier.from_file(model_copy, device="cpu", backend="torch")
    expected = torch_path.probabilities(batch)
    np.testing.assert_allclose(second.probabilities(batch), expected, atol=1e-4)
    np.testing.assert_allclose(second.probabilities(batch[:1]), expected[:1], atol=1e-4)
    assert (second.probabilities(batch).argmax(1) == expected.argmax(1)).all()
    # what describes the model (the app's model panel) comes with the export
    assert second.model_config == torch_path.model_config
    assert second.summary == torch_path.summary and second.summary["task"] == "synthetic"
    assert second.parameter_count == torch_path.parameter_count > 10_000
    # classify() on arrays and files, as the PyTorch classifier's
    import soundfile as sf

    wav = model_copy.parent / "clip.wav"
    sf.write(wav, batch[3], SAMPLE_RATE)
    given = [batch[0], str(wav), batch[5][:9000]]
    assert [p.label for p in second.classify(given)] == [p.label for p in torch_path.classify(given)]
    np.testing.assert_allclose([p.score for p in second.classify(given)], [p.score for p in torch_path.classify(given)],
                               atol=1e-4)
    with pytest.raises(ValueError, match="longer than the model's"):
        second.classify([np.zeros(SAMPLE_RATE + 1, dtype=np.float32)])
    assert second.classify([]) == []


def test_features_equal_the_torch_classifiers(model_copy: Path) -> None:
    lite = load_classifier(model_copy, device="cpu")
    full = Classifier.from_file(model_copy, device="cpu", backend="torch")
    audio = clips(3, seed=4)
    np.testing.assert_allclose(lite.features(audio), full.features(audio), atol=1e-4)
    np.testing.assert_allclose(lite.features(audio[1, :5000]), full.features(audio[1, :5000]), atol=1e-4)


def test_long_recordings_scan_to_the_same_detections(model_copy: Path) -> None:
    lite = load_classifier(model_copy, device="cpu")
    full = Classifier.from_file(model_copy, device="cpu", backend="torch")
    rng = np.random.default_rng(3)
    gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    words = ("rise", "buzz", "tone", "fall")
    audio = np.concatenate([part for word in words for part in (gap, make_class_clip(word, rng))] + [gap])
    blocks = [audio[i : i + 7001] for i in range(0, audio.shape[0], 7001)]  # odd block sizes
    a = scan_audio(lite, blocks, batch_size=16)
    b = scan_audio(full, [audio])
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)
    assert [d.label for d in a.detections] == [d.label for d in b.detections] == list(words)
    np.testing.assert_allclose([d.time for d in a.detections], [d.time for d in b.detections])


def test_a_changed_file_is_loaded_with_torch_again(model_copy: Path, torch_loads: list[str]) -> None:
    import torch

    from speechrnn.checkpoint import load_checkpoint, save_checkpoint

    before = load_classifier(model_copy, device="cpu")
    load_classifier(model_copy, device="cpu")
    assert torch_loads == ["onnx"]
    checkpoint = load_checkpoint(model_copy)
    model = checkpoint.build_model(device="cpu")
    with torch.no_grad():
        model.head[-1].bias += torch.linspace(-2.0, 2.0, len(checkpoint.labels))  # other answers
    save_checkpoint(model_copy, model=model, feature_config=checkpoint.feature_config, labels=checkpoint.labels)
    reloaded = load_classifier(model_copy, device="cpu")
    assert torch_loads == ["onnx", "onnx"]  # a new file: its export is made and checked first
    lite = load_classifier(model_copy, device="cpu")
    assert torch_loads == ["onnx", "onnx"] and isinstance(lite, OnnxClassifier)
    batch = clips(6)
    expected = Classifier.from_file(model_copy, device="cpu", backend="torch").probabilities(batch)
    np.testing.assert_allclose(lite.probabilities(batch), expected, atol=1e-4)
    np.testing.assert_array_equal(lite.probabilities(batch), reloaded.probabilities(batch))
    assert np.abs(lite.probabilities(batch) - before.probabilities(batch)).max() > 0.01


def test_a_file_replaced_while_loading_stores_no_export(model_copy: Path, private_cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = Classifier.from_file.__func__

    def replaced_meanwhile(cls: type[Classifier], path: Path, **options: object) -> Classifier:
        loaded = real(cls, path, **options)
        Path(path).write_bytes(Path(path).read_bytes() + b"\0")  # another file now, under the same name
        return loaded

    monkeypatch.setattr(Classifier, "from_file", classmethod(replaced_meanwhile))
    assert isinstance(load_classifier(model_copy, device="cpu"), OnnxClassifier)
    assert not list(private_cache.glob("*.onnx"))  # the export belongs to bytes no longer there


def test_no_entry_is_stored_when_the_file_key_cannot_be_written(model_copy: Path, private_cache: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the onnx package the key cannot go into the metadata, and an entry without it is never used."""
    from speechrnn.onnx_backend import OnnxError

    def no_onnx(model_bytes: bytes, entries: dict[str, str]) -> bytes:
        raise OnnxError("writing ONNX metadata needs the onnx package")

    monkeypatch.setattr(onnx_classifier, "with_metadata", no_onnx)
    loaded = load_classifier(model_copy, device="cpu")
    assert isinstance(loaded, OnnxClassifier) and loaded.file_key is None
    assert len(loaded.classify(clips(2))) == 2
    assert not list(private_cache.glob("*.onnx"))  # nothing stored that a later run would refuse


def test_an_unreadable_cache_entry_is_replaced(model_copy: Path, private_cache: Path,
                                               torch_loads: list[str]) -> None:
    load_classifier(model_copy, device="cpu")
    (entry,) = private_cache.glob("*.onnx")
    entry.write_bytes(b"not an onnx graph")
    assert isinstance(load_classifier(model_copy, device="cpu"), OnnxClassifier)
    assert torch_loads == ["onnx", "onnx"]  # made again with PyTorch
    load_classifier(model_copy, device="cpu")
    assert torch_loads == ["onnx", "onnx"]


def test_another_models_export_under_this_files_name_is_not_used(model_copy: Path, tmp_path: Path,
                                                                   private_cache: Path, torch_loads: list[str]) -> None:
    import torch

    from speechrnn.checkpoint import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(model_copy)
    model = checkpoint.build_model(device="cpu")
    with torch.no_grad():
        model.head[-1].bias += torch.linspace(-2.0, 2.0, len(checkpoint.labels))
    other = save_checkpoint(tmp_path / "other.pt", model=model, feature_config=checkpoint.feature_config,
                            labels=checkpoint.labels)
    right = load_classifier(model_copy, device="cpu")
    (entry,) = private_cache.glob("*.onnx")
    wrong = load_classifier(other, device="cpu")
    (other_entry,) = set(private_cache.glob("*.onnx")) - {entry}
    entry.write_bytes(other_entry.read_bytes())  # a valid export, of the other model
    assert torch_loads == ["onnx", "onnx"]
    again = load_classifier(model_copy, device="cpu")
    assert torch_loads == ["onnx", "onnx", "onnx"]  # refused: exported again with PyTorch
    batch = clips(6)
    np.testing.assert_array_equal(again.probabilities(batch), right.probabilities(batch))
    assert np.abs(again.probabilities(batch) - wrong.probabilities(batch)).max() > 0.01
    load_classifier(model_copy, device="cpu")
    assert torch_loads == ["onnx", "onnx", "onnx"]  # and the entry is right again


def test_torch_is_used_where_asked_or_where_a_gpu_may_be(model_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_classifier(model_copy, device="cpu")
    full = load_classifier(model_copy, device="cpu", backend="torch")
    assert isinstance(full, Classifier) and full.backend == "torch"
    monkeypatch.setenv("SPEECHRNN_BACKEND", "torch")
    assert isinstance(load_classifier(model_copy, device="cpu"), Classifier)
    monkeypatch.delenv("SPEECHRNN_BACKEND")
    monkeypatch.setattr(onnx_classifier, "gpu_possible", lambda: True)
    assert isinstance(load_classifier(model_copy, device="cpu"), OnnxClassifier)  # cpu asked: no GPU question
    assert isinstance(load_classifier(model_copy, device="auto"), Classifier)  # only torch can tell


def test_int8_has_its_own_entry(model_copy: Path, torch_loads: list[str]) -> None:
    first = load_classifier(model_copy, device="cpu", backend="int8")
    assert isinstance(first, OnnxClassifier) and first.backend == "int8" and torch_loads == ["int8"]
    load_classifier(model_copy, device="cpu")
    assert torch_loads == ["int8", "onnx"]  # the float export is another entry
    lite = load_classifier(model_copy, device="cpu", backend="int8")
    assert isinstance(lite, OnnxClassifier) and lite.backend == "int8" and torch_loads == ["int8", "onnx"]
    batch = clips(12)
    np.testing.assert_array_equal(lite.probabilities(batch), first.probabilities(batch))
    full = Classifier.from_file(model_copy, device="cpu", backend="int8")
    assert (lite.probabilities(batch).argmax(1) == full.probabilities(batch).argmax(1)).all()


def test_gpu_possible_reads_the_driver_device_files(monkeypatch: pytest.MonkeyPatch) -> None:
    present: set[str] = set()
    monkeypatch.setattr(onnx_classifier.sys, "platform", "linux")
    monkeypatch.setattr(onnx_classifier.os.path, "exists", lambda name: name in present)
    assert gpu_possible() is False
    present.add("/dev/nvidiactl")
    assert gpu_possible() is True
    monkeypatch.setattr(onnx_classifier.sys, "platform", "win32")
    present.clear()
    assert gpu_possible() is True  # only torch can tell


def test_threads_and_worker_processes(model_copy: Path, tmp_path: Path) -> None:
    import soundfile as sf

    load_classifier(model_copy, device="cpu")
    lite = load_classifier(model_copy, device="cpu")
    assert isinstance(lite, OnnxClassifier)
    import pickle

    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    assert lite.use_threads(2) == 1 and lite.log_mel.threads == 2
    assert lite.use_threads(1) == 2 and lite.log_mel.threads == 1  # the features' BLAS follows
    lite.features(clips(2))
    assert blas_threads() == before  # limited only while the features are computed
    copy = pickle.loads(pickle.dumps(lite))  # as sent to spawned worker processes
    np.testing.assert_array_equal(copy.probabilities(clips(2)), lite.probabilities(clips(2)))
    paths = []
    for i, clip in enumerate(clips(10, seed=7)):
        paths.append(str(tmp_path / f"{i}.wav"))
        sf.write(paths[-1], clip, SAMPLE_RATE)
    alone = list(iter_classify(paths, classifier=lite, workers=0))
    forked = list(iter_classify(paths, classifier=lite, workers=2, batch_size=3))
    assert [(r.path, r.label) for r in forked] == [(r.path, r.label) for r in alone]
    np.testing.assert_allclose([r.score for r in forked], [r.score for r in alone], atol=1e-6)
    expected = Classifier.from_file(model_copy, device="cpu", backend="torch").classify(paths)
    assert [r.label for r in alone] == [p.label for p in expected]


def test_in_process_classification_puts_numpy_blas_threads_back(model_copy: Path, tmp_path: Path) -> None:
    """``threads`` with ``workers=0`` is restored afterwards: numpy's BLAS limit too, not only ONNX Runtime's."""
    import soundfile as sf
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("numpy's BLAS is not one threadpoolctl controls")
    load_classifier(model_copy, device="cpu")
    lite = load_classifier(model_copy, device="cpu")
    assert isinstance(lite, OnnxClassifier)
    path = tmp_path / "word.wav"
    sf.write(path, clips(1, seed=3)[0], SAMPLE_RATE)
    for threads in (1, 2):
        with threadpool_limits(limits=3, user_api="blas"):  # the caller's setting (put back for later tests)
            (record,) = iter_classify([str(path)], classifier=lite, workers=0, threads=threads)
            assert record.error is None
            assert blas_threads() == {3}, f"threads={threads} left numpy's BLAS limited"
    assert lite.use_threads(1) == 1  # ONNX Runtime's count is put back too


def test_speechrnn_classify_runs_without_importing_torch(model_copy: Path, tmp_path: Path,
                                                          repo_env: dict[str, str]) -> None:
    import soundfile as sf

    load_classifier(model_copy, device="cpu")  # the first run: export, check and cache
    wav = tmp_path / "word.wav"
    sf.write(wav, clips(1, seed=2)[0], SAMPLE_RATE)
    long = tmp_path / "long.wav"
    rng = np.random.default_rng(5)
    sf.write(long, np.concatenate([np.zeros(8000), make_class_clip("tone", rng), np.zeros(24000)]), SAMPLE_RATE)
    script = (
        "import json, sys\n"
        "from speechrnn.classify import run_classify\n"
        f"status = run_classify(paths=[{str(wav)!r}, {str(long)!r}], model={str(model_copy)!r}, device='cpu', "
        "fmt='jsonl', quiet=True)\n"
        "print(json.dumps({'status': status, 'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=repo_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *lines, last = [json.loads(line) for line in done.stdout.splitlines()]
    assert last == {"status": 0, "torch": False}
    records = {Path(record["path"]).name: record for record in lines}
    expected = Classifier.from_file(model_copy, device="cpu", backend="torch")
    assert records["word.wav"]["label"] == expected.classify([str(wav)])[0].label
    assert [d["label"] for d in records["long.wav"]["detections"]] == ["tone"]


def test_streaming_with_the_torch_free_classifier(model_copy: Path) -> None:
    from speechrnn.streaming import StreamingRecognizer

    load_classifier(model_copy, device="cpu")
    lite = load_classifier(model_copy, device="cpu")
    assert isinstance(lite, OnnxClassifier)
    full = Classifier.from_file(model_copy, device="cpu", backend="torch")
    rng = np.random.default_rng(8)
    gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    audio = np.concatenate([gap, make_class_clip("buzz", rng), gap, make_class_clip("fall", rng), gap])
    streamed = []
    for classifier in (lite, full):
        recognizer = StreamingRecognizer(classifier)
        streamed.append([step for i in range(0, audio.shape[0], 1234)
                         for step in recognizer.push_steps(audio[i : i + 1234])])
    a, b = streamed
    assert [s.time for s in a] == [s.time for s in b]
    np.testing.assert_allclose(np.concatenate([s.frames for s in a]), np.concatenate([s.frames for s in b]), atol=1e-4)
    np.testing.assert_allclose([s.probabilities for s in a], [s.probabilities for s in b], atol=1e-4)
    assert [s.detection.label for s in a if s.detection] == [s.detection.label for s in b if s.detection] == [
        "buzz", "fall"]


def test_speechrnn_listen_runs_without_importing_torch(model_copy: Path, tmp_path: Path,
                                                        repo_env: dict[str, str]) -> None:
    import soundfile as sf

    load_classifier(model_copy, device="cpu")
    rng = np.random.default_rng(9)
    wav = tmp_path / "said.wav"
    gap = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    sf.write(wav, np.concatenate([gap, make_class_clip("rise", rng), gap]), SAMPLE_RATE)
    script = (
        "import json, sys\n"
        "from speechrnn.listen import listen\n"
        f"found = listen(model={str(model_copy)!r}, file={str(wav)!r}, fast=True, device='cpu', format='jsonl')\n"
        "print(json.dumps({'labels': [d.label for d in found], 'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=repo_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *printed, last = [json.loads(line) for line in done.stdout.splitlines()]
    assert last == {"labels": ["rise"], "torch": False}
    assert [record["label"] for record in printed] == ["rise"]


def test_an_export_without_the_descriptions_says_they_are_not_recorded(model_copy: Path) -> None:
    """Exports made by other tools (or before format 2) lack ``summary``/``parameters``: the model panel says so."""
    import onnx

    pytest.importorskip("PySide6")
    from gui.workers import summarize_model

    exported = load_classifier(model_copy, device="cpu").onnx_bytes
    proto = onnx.load_from_string(exported)
    kept = [(e.key, e.value) for e in proto.metadata_props if e.key not in ("summary", "parameters")]
    del proto.metadata_props[:]
    for key, value in kept:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    bare = OnnxClassifier(proto.SerializeToString())
    assert bare.summary == {} and bare.parameter_count is None
    assert bare.model_config == Classifier.from_file(model_copy, device="cpu", backend="torch").model_config
    facts = summarize_model(bare)
    assert facts["parameters"] == "not recorded" and facts["accuracy"] == "not recorded in the model file"
    assert facts["architecture"] == "GRU 1×48"

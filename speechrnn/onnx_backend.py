"""ONNX export of a model file, and an ONNX Runtime backend for the model part of inference.

The exported graph reads log-mel frames and gives class probabilities (and logits) for
full-length sequences:

=====================  ===========================  ==============================================
name                   shape                        meaning
=====================  ===========================  ==============================================
``frames`` (input)     ``(batch, time, n_mels)``    log-mel frames, float32 (any batch, time >= 1)
``probabilities``      ``(batch, n_classes)``       softmax of the logits, float32
``logits``             ``(batch, n_classes)``       the model's unnormalised outputs, float32
=====================  ===========================  ==============================================

Its ``metadata_props`` hold everything needed to use it without speechrnn: ``labels`` (a JSON
list aligned with the outputs), ``feature_config`` and ``model_config`` (JSON objects, see
:class:`speechrnn.features.FeatureConfig` and :class:`speechrnn.model_config.ModelConfig`),
``summary`` (the model file's training summary, a JSON object), ``parameters`` (the weight count),
``input``, ``outputs``, ``speechrnn_version`` and ``fingerprint`` (a hash of the weights and configs).

At batch 1 on one CPU thread ONNX Runtime runs the recurrent model 2 to 3 times faster than
PyTorch (less per-step overhead), which is what live listening does ten times a second;
:class:`speechrnn.inference.Classifier` uses :class:`OnnxRunner` for small batches when
``onnxruntime`` is installed (a dependency of speechrnn; without it PyTorch runs everything).
The exported bytes are cached under :func:`default_onnx_cache_dir`, keyed by
:func:`model_fingerprint`, because the first export in a process takes a second or more
(importing the exporter).

:func:`quantize_int8` stores the recurrent and matrix weights of an export as 8-bit integers
(ONNX Runtime's dynamic quantization: activations are quantized on the fly): on one CPU thread the
default model runs 1.3-1.6x faster, and its answers differ from the float model's on up to 0.3%
of held-out clips (``Classifier(..., backend="int8")``, ``--backend int8``). It is an option,
not the default.

``onnx`` and ``onnxruntime`` are imported only inside functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speechrnn.errors import SpeechRNNError

if TYPE_CHECKING:
    import torch

    from speechrnn.checkpoint import Checkpoint

__all__ = [
    "BACKENDS",
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "ONNX_BACKENDS",
    "OUTPUT_NAMES",
    "OnnxError",
    "OnnxRunner",
    "cached_file_export",
    "choose_backend",
    "default_onnx_cache_dir",
    "export_model_bytes",
    "file_cache_key",
    "load_runner",
    "max_difference",
    "model_fingerprint",
    "onnx_available",
    "quantize_int8",
    "read_metadata",
    "store_file_export",
    "with_metadata",
]

DEFAULT_OPSET = 17
#: Oldest opset whose export ONNX Runtime runs (opset 11 puts an int64 Clip in the graph).
MIN_OPSET = 12
INPUT_NAME = "frames"
OUTPUT_NAMES: tuple[str, str] = ("probabilities", "logits")
#: Bump when the exported graph or its metadata change: older cache entries are then ignored.
EXPORT_FORMAT_VERSION = 2  # 2: summary and parameters in the metadata
#: Cached exports kept (newest first); older ones are deleted when a new one is written.
CACHE_KEEP = 16
INSTALL_HINT = "install them: pip install onnx onnxruntime (dependencies of speechrnn)"
#: What can run a classifier's model: the ``backend`` of :class:`speechrnn.inference.Classifier` and
#: every command's ``--backend``. Defined here because this module imports no torch, so command
#: lines can offer the choices without loading it.
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "int8")
#: The backends that run the model in ONNX Runtime (CPU only).
ONNX_BACKENDS: tuple[str, ...] = ("onnx", "int8")
#: Sub-folder of the cache with exports named by a model *file's* bytes (:func:`file_cache_key`), which
#: :mod:`speechrnn.onnx_classifier` reads without importing torch.
FILE_CACHE_FOLDER = "files"
#: Metadata entry of a file-keyed export holding its :func:`file_cache_key`, checked when it is loaded.
FILE_KEY_ENTRY = "model_file_key"
#: Graph operators whose weights :func:`quantize_int8` stores as int8 (others stay float32).
INT8_OPERATORS: tuple[str, ...] = ("LSTM", "GRU", "MatMul", "Gemm")


class OnnxError(SpeechRNNError):
    """ONNX export or ONNX Runtime is unavailable or failed; the message says why in one line."""


def onnx_available() -> bool:
    """True when both ``onnx`` (needed to export) and ``onnxruntime`` (to run) can be imported.

    Checks without importing either (cheap).
    """
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
    except (ImportError, ValueError):  # a module set to None in sys.modules (blocked)
        return False


def choose_backend(name: str, *, gpu: bool) -> str:
    """Map ``auto`` | ``torch`` | ``onnx`` | ``int8`` to the backend that runs a model (no torch needed).

    ``auto`` reads the ``SPEECHRNN_BACKEND`` environment variable when it is set (``torch``,
    ``onnx`` or ``int8``), and otherwise picks ``onnx`` on the CPU when ``onnx`` and ``onnxruntime``
    can be imported, else ``torch``. ``onnx`` and ``int8`` run on the CPU only.

    Parameters
    ----------
    name : str
        The requested backend.
    gpu : bool
        Whether the model runs on a GPU.

    Raises
    ------
    SpeechRNNError
        An unknown name, or ``onnx``/``int8`` requested for a GPU.
    """
    choice = str(name).strip().lower()
    names = ", ".join(BACKENDS[:-1]) + " or " + BACKENDS[-1]
    if choice == "auto":
        choice = os.environ.get("SPEECHRNN_BACKEND", "auto").strip().lower() or "auto"
        if choice not in BACKENDS:
            raise SpeechRNNError(f"unknown backend {choice!r} in SPEECHRNN_BACKEND: use {names}")
        if choice in ONNX_BACKENDS and gpu:
            return "torch"  # the variable asks for ONNX where it applies; a GPU stays on PyTorch
    if choice not in BACKENDS:
        raise SpeechRNNError(f"unknown backend {name!r}: use {names}")
    if choice == "auto":
        return "onnx" if not gpu and onnx_available() else "torch"
    if choice in ONNX_BACKENDS and gpu:
        raise SpeechRNNError(f"the {choice} backend runs on the CPU only, not on a GPU: use --device cpu")
    return choice


def default_onnx_cache_dir() -> Path:
    """``$SPEECHRNN_CACHE/onnx``, else ``$XDG_CACHE_HOME/speechrnn/onnx``, else ``~/.cache/speechrnn/onnx``."""
    if os.environ.get("SPEECHRNN_CACHE"):
        base = Path(os.environ["SPEECHRNN_CACHE"]).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "speechrnn"
    return base / "onnx"


def model_fingerprint(checkpoint: Checkpoint, *, opset: int = DEFAULT_OPSET) -> str:
    """A SHA-256 hex digest of what the exported graph depends on.

    Covers the weights (names, dtypes, shapes, bytes), the model and feature configs, the labels,
    the opset, the export format version and the torch version (the exporter).
    """
    import torch

    digest = hashlib.sha256()
    header = {
        "export_format": EXPORT_FORMAT_VERSION,
        "opset": opset,
        "torch": torch.__version__,
        "model_config": checkpoint.model_config.to_dict(),
        "feature_config": checkpoint.feature_config.to_dict(),
        "labels": list(checkpoint.labels),
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name in sorted(checkpoint.state_dict):
        tensor = checkpoint.state_dict[name].detach().cpu().reshape(-1).contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(checkpoint.state_dict[name].shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _exportable(model: torch.nn.Module) -> torch.nn.Module:
    """Wrap a :class:`~speechrnn.model.SpeechRNN` so it returns ``(probabilities, logits)``."""
    import torch

    class ProbabilitiesAndLogits(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.inner(frames)
            return torch.softmax(logits, dim=-1), logits

    return ProbabilitiesAndLogits(model).eval()


def export_model_bytes(checkpoint: Checkpoint, *, opset: int = DEFAULT_OPSET) -> bytes:
    """Export a model to an ONNX graph (in memory) with its labels and configs as metadata.

    Parameters
    ----------
    checkpoint : Checkpoint
    opset : int
        ONNX opset version (17 by default; :data:`MIN_OPSET` or newer).

    Returns
    -------
    bytes
        A serialized ONNX ``ModelProto``: input ``frames`` (batch, time, n_mels), outputs
        ``probabilities`` and ``logits`` (batch, n_classes), dynamic batch and time axes.

    Raises
    ------
    OnnxError
        ``onnx`` is not installed, or the exporter failed.
    """
    try:
        import onnx
    except ImportError:
        raise OnnxError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    import torch

    if opset < MIN_OPSET:
        raise OnnxError(f"opset {opset} is too old for this model: use {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    # the exporter's own limit (a private constant: when it is gone, the export itself says so)
    try:
        from torch.onnx import _constants
    except ImportError:
        _constants = None
    newest = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", None)
    if isinstance(newest, int) and opset > newest:
        raise OnnxError(f"opset {opset} is newer than this PyTorch can export: use {MIN_OPSET} to {newest} "
                        f"(default {DEFAULT_OPSET})")

    from speechrnn import __version__

    cfg = checkpoint.feature_config
    built = checkpoint.build_model(device="cpu")
    model = _exportable(built)
    example = torch.zeros(1, cfg.n_frames, cfg.n_mels)
    options: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the TorchScript exporter: no onnxscript needed, handles nn.LSTM/GRU/RNN
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # deprecation and tracer notes about nn.RNN's input checks
            torch.onnx.export(
                model,
                (example,),
                buffer,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={
                    INPUT_NAME: {0: "batch", 1: "time"},
                    OUTPUT_NAMES[0]: {0: "batch"},
                    OUTPUT_NAMES[1]: {0: "batch"},
                },
                opset_version=opset,
                do_constant_folding=True,
                **options,
            )
    except Exception as exc:  # the exporter raises many types; report it in one line
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise OnnxError(f"ONNX export failed ({type(exc).__name__}: {detail})") from None
    proto = onnx.load_from_string(buffer.getvalue())
    n_mels, n_classes = cfg.n_mels, checkpoint.model_config.n_classes
    metadata = {
        "labels": json.dumps(list(checkpoint.labels)),
        "feature_config": json.dumps(cfg.to_dict()),
        "model_config": json.dumps(checkpoint.model_config.to_dict()),
        "parameters": str(sum(p.numel() for p in built.parameters())),
        "summary": json.dumps(dict(checkpoint.summary)),
        "input": f"{INPUT_NAME}: float32 (batch, time, {n_mels}) log-mel frames (speechrnn.features)",
        "outputs": f"{OUTPUT_NAMES[0]}, {OUTPUT_NAMES[1]}: float32 (batch, {n_classes}), aligned with labels",
        "speechrnn_version": __version__,
        "fingerprint": model_fingerprint(checkpoint, opset=opset),
    }
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = "speechrnn speech-command classifier: log-mel frames -> class probabilities"
    return proto.SerializeToString()


def read_metadata(model: bytes | str | os.PathLike[str]) -> dict[str, Any]:
    """The speechrnn metadata of an exported ONNX model, JSON values decoded.

    Parameters
    ----------
    model : bytes or path-like
        Serialized model or a ``.onnx`` file.

    Returns
    -------
    dict
        ``labels`` (list of str), ``feature_config``, ``model_config``, ``summary`` (dicts), and
        the other entries as strings.
    """
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(os.fspath(model))
    out: dict[str, Any] = {}
    for entry in proto.metadata_props:
        value: Any = entry.value
        if entry.key in ("labels", "feature_config", "model_config", "summary"):
            value = json.loads(value)
        out[entry.key] = value
    return out


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; an exported model is meant to be shared, as .pt files are
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used ``*.onnx`` files of the cache folder."""
    files = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


def _cache_folder(cache_dir: str | os.PathLike[str] | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_onnx_cache_dir()


def _cache_path(fingerprint: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    """Where :func:`load_runner` caches the export of the model with this :func:`model_fingerprint`."""
    return _cache_folder(cache_dir) / f"{fingerprint[:40]}.onnx"


def _read_cached(path: Path) -> bytes | None:
    """A cache entry's bytes (None when missing, unreadable or empty), marked as most recently used."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data:
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # most recently used: kept by _prune
    return data


def _store_cached(path: Path, data: bytes) -> Path | None:
    """Write a cache entry atomically and prune its folder to :data:`CACHE_KEEP`; None when it cannot be written."""
    try:
        _atomic_write_bytes(path, data)
        _prune(path.parent, CACHE_KEEP)
    except OSError:
        return None
    return path


def file_cache_key(model_file: str | os.PathLike[str], *, int8: bool = False, opset: int = DEFAULT_OPSET) -> str:
    """A SHA-256 hex digest naming the cached export of a model file, from the file's bytes.

    Covers the bytes (read in blocks), the speechrnn version (which validates and exports the
    file), the export format version, the opset and the variant (float or int8). Computing it
    needs no torch.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    from speechrnn import __version__

    digest = hashlib.sha256()
    with open(model_file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    variant = "int8" if int8 else "float"
    digest.update(f"|speechrnn {__version__}|export {EXPORT_FORMAT_VERSION}|opset {opset}|{variant}".encode())
    return digest.hexdigest()


def _file_cache_path(key: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    return _cache_folder(cache_dir) / FILE_CACHE_FOLDER / f"{key[:40]}.onnx"


def cached_file_export(key: str, *, cache_dir: str | os.PathLike[str] | None = None) -> bytes | None:
    """The export stored under a :func:`file_cache_key` (see :func:`store_file_export`), or None."""
    return _read_cached(_file_cache_path(key, cache_dir))


def store_file_export(key: str, data: bytes, *, cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Store the checked export (float or int8 bytes) of a model file under its :func:`file_cache_key`.

    Atomic and best effort: returns None when the cache folder cannot be written. The folder keeps
    its :data:`CACHE_KEEP` most recently used entries.
    """
    return _store_cached(_file_cache_path(key, cache_dir), data)


def with_metadata(model_bytes: bytes, entries: dict[str, str]) -> bytes:
    """An export with metadata entries added (or replaced); needs the ``onnx`` package.

    Raises
    ------
    OnnxError
        ``onnx`` is not installed, or the bytes are not an ONNX model.
    """
    try:
        import onnx
    except ImportError:
        raise OnnxError(f"writing ONNX metadata needs the onnx package: {INSTALL_HINT}") from None
    try:
        proto = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's decode errors have no common public base
        raise OnnxError(f"not an ONNX model ({type(exc).__name__})") from None
    kept = [(e.key, e.value) for e in proto.metadata_props if e.key not in entries]
    del proto.metadata_props[:]
    for key, value in [*kept, *entries.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def quantize_int8(model_bytes: bytes) -> bytes:
    """The same model with its recurrent and matrix weights stored as int8.

    ONNX Runtime's dynamic quantization (``QInt8`` weights, per tensor; activations quantized at
    run time) of the operators in :data:`INT8_OPERATORS`; the convolution, normalisation and
    softmax stay float32. Metadata are kept, with ``weights`` set to ``int8``. Takes a few tens
    of milliseconds, so it is not cached.

    Parameters
    ----------
    model_bytes : bytes
        An export from :func:`export_model_bytes` (float32).

    Returns
    -------
    bytes

    Raises
    ------
    OnnxError
        ``onnx``/``onnxruntime`` missing, or the quantizer failed.
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise OnnxError(f"int8 quantization needs onnx and onnxruntime: {INSTALL_HINT}") from None
    model = onnx.load_from_string(model_bytes)
    # The exporter's graph needs none of the quantizer's pre-processing (measured: 3 s and no
    # speed-up); recording that keeps the quantizer from logging a warning through the root logger.
    for key, value in (("onnx.quant.pre_process", "onnxruntime.quant"), ("weights", "int8")):
        entry = next((p for p in model.metadata_props if p.key == key), None) or model.metadata_props.add()
        entry.key, entry.value = key, value
    with tempfile.TemporaryDirectory(prefix="speechrnn-int8-") as folder:
        out = Path(folder) / "int8.onnx"
        try:
            quantize_dynamic(model, out, weight_type=QuantType.QInt8, op_types_to_quantize=list(INT8_OPERATORS))
        except Exception as exc:  # the quantizer raises assorted exception types
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise OnnxError(f"int8 quantization failed ({detail})") from None
        return out.read_bytes()


def load_runner(
    checkpoint: Checkpoint,
    model: torch.nn.Module,
    *,
    threads: int = 1,
    tolerance: float = 1e-4,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    int8: bool = False,
) -> OnnxRunner:
    """An :class:`OnnxRunner` for a model, checked against PyTorch when it is first exported.

    A fresh export is compared with ``model`` on random frames of a batch of 2 and a quarter of a
    clip (:func:`max_difference`) and cached only if it agrees within ``tolerance``; a cached
    export was checked when it was cached, so loading it costs no PyTorch run. A cache entry that
    ONNX Runtime cannot load, or whose metadata names another model's fingerprint, is replaced by a
    fresh export. With ``int8`` the checked float export
    is then quantized (:func:`quantize_int8`).

    Parameters
    ----------
    checkpoint : Checkpoint
    model : SpeechRNN
        ``checkpoint``'s model in PyTorch, in eval mode.
    threads : int
        ONNX Runtime intra-op threads.
    tolerance : float
        Largest accepted probability difference.
    cache_dir : path-like, optional
    use_cache : bool
    int8 : bool
        Quantize the weights to int8 (:func:`quantize_int8`).

    Raises
    ------
    OnnxError
        Missing packages, a failed export or quantization, or a difference above ``tolerance``.
    """
    runner = None
    fingerprint = model_fingerprint(checkpoint)  # names the cache entry, and must be in its metadata
    cache_path = _cache_path(fingerprint, cache_dir) if use_cache else None
    if cache_path is not None:
        data = _read_cached(cache_path)
        if data is not None:
            with contextlib.suppress(OnnxError):
                runner = OnnxRunner(data, threads=threads)
        if runner is not None and runner.metadata().get("fingerprint") != fingerprint:
            runner = None  # another model's export under this model's name: export this one again
    if runner is None:
        data = export_model_bytes(checkpoint)
        runner = OnnxRunner(data, threads=threads)
        # batch 2 and a quarter clip: other sizes than the traced example (1, n_frames), so the check
        # also covers the dynamic axes, and cheap (a few ms)
        n_frames = max(8, checkpoint.feature_config.n_frames // 4)
        difference = max_difference(runner, model, n_frames=n_frames, batch=2)
        if not difference <= tolerance:
            raise OnnxError(
                f"ONNX Runtime's probabilities differ from PyTorch's by {difference:.2g} (more than {tolerance:g}) "
                "for this model"
            )
        if cache_path is not None:
            _store_cached(cache_path, data)
    if int8:
        return OnnxRunner(quantize_int8(runner.model_bytes), threads=threads, per_sequence=True)
    return runner


class OnnxRunner:
    """An ONNX Runtime session for an exported model: frames in, probabilities out.

    Picklable (the session is rebuilt from the bytes), so a :class:`~speechrnn.inference.Classifier`
    holding one can be sent to worker processes.

    Parameters
    ----------
    model_bytes : bytes
        From :func:`export_model_bytes` (or a cached export).
    threads : int
        ONNX Runtime intra-op threads; 1 (the default) for the batch-1 live path, where more
        threads only add synchronisation (and would compete with the audio and GUI threads).
    per_sequence : bool
        Run a batch one sequence at a time. For int8 graphs (:func:`quantize_int8`): their
        activations are quantized with one scale per call, so in a batch each clip's answer
        would depend on the others; one at a time costs about the same per clip.

    Raises
    ------
    OnnxError
        ``onnxruntime`` is missing or the bytes are not a model it can load.
    """

    def __init__(self, model_bytes: bytes, *, threads: int = 1, per_sequence: bool = False) -> None:
        self.model_bytes = model_bytes
        self.threads = int(threads)
        self.per_sequence = bool(per_sequence)
        self._session = self._make_session()

    def _make_session(self) -> Any:
        try:
            import onnxruntime as ort
        except ImportError:
            raise OnnxError(f"the onnx backend needs onnxruntime: {INSTALL_HINT}") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        # Idle threads sleep instead of spinning: no busy CPU between the hops of live listening.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(self.model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise OnnxError(f"ONNX Runtime cannot load the model ({detail})") from None

    def __getstate__(self) -> dict[str, Any]:
        return {"model_bytes": self.model_bytes, "threads": self.threads, "per_sequence": self.per_sequence}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model_bytes = state["model_bytes"]
        self.threads = state["threads"]
        self.per_sequence = state.get("per_sequence", False)
        self._session = self._make_session()

    def metadata(self) -> dict[str, str]:
        """The graph's metadata entries as stored (JSON values not decoded; see :func:`read_metadata`)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, frames: np.ndarray, *, logits: bool = False) -> np.ndarray:
        """Probabilities (or logits) for a batch of full-length frame sequences.

        Parameters
        ----------
        frames : np.ndarray, shape (batch, time, n_mels)
            Log-mel frames (converted to contiguous float32 if needed; time >= 1).
        logits : bool
            Return the logits instead of the probabilities.

        Returns
        -------
        np.ndarray, shape (batch, n_classes), float32
        """
        x = np.ascontiguousarray(frames, dtype=np.float32)
        name = OUTPUT_NAMES[1] if logits else OUTPUT_NAMES[0]
        if self.per_sequence and x.shape[0] > 1:
            return np.concatenate([self._session.run([name], {INPUT_NAME: x[i : i + 1]})[0] for i in range(x.shape[0])])
        return self._session.run([name], {INPUT_NAME: x})[0]


def max_difference(
    runner: OnnxRunner, model: torch.nn.Module, *, n_frames: int, batch: int = 2, seed: int = 0
) -> float:
    """Largest absolute difference between ONNX Runtime's and PyTorch's probabilities.

    The input is random frames at the model's feature statistics (``feature_mean + feature_std *
    N(0, 1)``), so the comparison exercises the normalised range the model was trained on.

    Parameters
    ----------
    runner : OnnxRunner
    model : SpeechRNN
        The same model in PyTorch (on any device; in eval mode).
    n_frames : int
        Sequence length in frames.
    batch : int
    seed : int

    Returns
    -------
    float
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    mean, std = model.feature_mean.detach().cpu(), model.feature_std.detach().cpu()
    frames = mean + std * torch.randn(batch, n_frames, mean.shape[0], generator=generator)
    device = model.feature_mean.device
    with torch.inference_mode():
        expected = torch.softmax(model(frames.to(device)), dim=-1).float().cpu().numpy()
    return float(np.abs(runner.run(frames.numpy()) - expected).max())

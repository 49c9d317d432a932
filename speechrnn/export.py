"""``speechrnn export --onnx MODEL OUT.onnx``: export a model file to ONNX.

The ONNX graph reads log-mel frames ``frames`` of shape ``(batch, time, n_mels)`` (both batch and
time dynamic; the whole sequence is read) and gives ``probabilities`` and ``logits`` of shape
``(batch, n_classes)``. The labels, the feature config (how to compute the frames) and the model
config are stored in the file's ``metadata_props`` as JSON; see :mod:`speechrnn.onnx_backend`.

Before writing the file the command runs the graph in ONNX Runtime (when installed) and checks
that it gives PyTorch's probabilities within 1e-4 on random frames of two lengths and batch sizes
1 and 3; nothing is written when it does not (``--no-check`` skips the check).

Exit status: 0 on success, 1 when the model cannot be read, the export or the check fails, or the
output cannot be written (one ``error:`` line on stderr), 2 for bad usage.

Example, in Python with onnxruntime only::

    import json, onnxruntime as ort
    session = ort.InferenceSession("model.onnx")
    meta = session.get_modelmeta().custom_metadata_map
    labels = json.loads(meta["labels"])
    probabilities = session.run(["probabilities"], {"frames": frames})[0]  # frames: (B, T, n_mels)
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from speechrnn.errors import SpeechRNNError

if TYPE_CHECKING:
    from speechrnn.checkpoint import Checkpoint

__all__ = ["CHECK_TOLERANCE", "add_arguments", "check_export", "export_onnx", "run_from_args"]

#: Largest accepted |ONNX Runtime - PyTorch| probability in the check after export.
CHECK_TOLERANCE = 1e-4


def export_onnx(
    model_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    opset: int = 17,
    check: bool = False,
) -> Path:
    """Export a model file to an ONNX file.

    Parameters
    ----------
    model_path : path-like
        A speechrnn model file (``.pt``).
    out_path : path-like
        The ONNX file to write (atomically; missing parent folders are created).
    opset : int
        ONNX opset version (12 or newer; 17 by default).
    check : bool
        Before writing, run the graph in ONNX Runtime and require PyTorch's probabilities within
        :data:`CHECK_TOLERANCE` (:func:`check_export`); nothing is written when it fails.

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    speechrnn.errors.CheckpointError
        The model file is missing, unsafe or not a speechrnn model.
    speechrnn.onnx_backend.OnnxError
        ``onnx`` (or, with ``check``, ``onnxruntime``) is not installed, the export failed, or
        the check failed.
    speechrnn.errors.SpeechRNNError
        ``out_path`` is the model file, or an existing file that is not ``.onnx`` (an earlier
        export is replaced).
    OSError
        The output cannot be written.
    """
    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.onnx_backend import OnnxError, _atomic_write_bytes, export_model_bytes

    checkpoint = load_checkpoint(model_path)
    out = Path(out_path)
    if out.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"a folder; give the file name, e.g. {out / 'model.onnx'}", str(out))
    if out.exists():  # an earlier export is replaced; anything else (the model itself above all) is kept
        if os.path.samefile(out, model_path):
            raise SpeechRNNError(f"{out}: is the model file being exported; give the ONNX file another name")
        if out.suffix.lower() != ".onnx":
            raise SpeechRNNError(f"{out}: exists and is not an .onnx file; not replaced (remove it or choose "
                                 "another name)")
    data = export_model_bytes(checkpoint, opset=opset)
    import onnx

    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except onnx.checker.ValidationError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise OnnxError(f"the exported graph is not valid ONNX ({detail})") from None
    if check:
        difference = check_export(data, checkpoint)
        if not difference <= CHECK_TOLERANCE:
            raise OnnxError(
                f"ONNX Runtime's probabilities differ from PyTorch's by {difference:.2g} (more than "
                f"{CHECK_TOLERANCE:g}); nothing written"
            )
    _atomic_write_bytes(out, data)
    return out


def check_export(
    onnx_model: bytes | str | os.PathLike[str],
    model: Checkpoint | str | os.PathLike[str],
    *,
    lengths: tuple[int, ...] | None = None,
    batches: tuple[int, ...] = (1, 3),
) -> float:
    """Largest |ONNX Runtime - PyTorch| probability over random frames of several shapes.

    Parameters
    ----------
    onnx_model : bytes or path-like
        The exported graph, or its file.
    model : Checkpoint or path-like
        The model (file) it was exported from.
    lengths : tuple of int, optional
        Sequence lengths in frames; default one clip's frames and a quarter of that.
    batches : tuple of int
        Batch sizes.

    Returns
    -------
    float

    Raises
    ------
    speechrnn.onnx_backend.OnnxError
        onnxruntime is missing or cannot load the graph.
    """
    from speechrnn.checkpoint import Checkpoint, load_checkpoint
    from speechrnn.onnx_backend import OnnxRunner, max_difference

    checkpoint = model if isinstance(model, Checkpoint) else load_checkpoint(model)
    torch_model = checkpoint.build_model(device="cpu")
    data = onnx_model if isinstance(onnx_model, bytes) else Path(onnx_model).read_bytes()
    runner = OnnxRunner(data, threads=1)
    n = checkpoint.feature_config.n_frames
    lengths = lengths or (n, max(1, n // 4))
    return max(
        max_difference(runner, torch_model, n_frames=length, batch=batch, seed=i)
        for i, (length, batch) in enumerate((t, b) for t in lengths for b in batches)
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``speechrnn export``."""
    parser.add_argument(
        "--onnx", action="store_true", help="export to ONNX (the only format so far, also used without this flag)"
    )
    parser.add_argument("model", metavar="MODEL", nargs="?",
                        help="the speechrnn model file (.pt) to export (or -m/--model)")
    parser.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write")
    parser.add_argument("-m", "--model", dest="model_option", metavar="FILE",
                        help="the model file, as in other commands (instead of MODEL)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version, 12 or newer (default 17)")
    parser.add_argument(
        "--no-check", action="store_true", help="do not compare ONNX Runtime's results with PyTorch's after export"
    )
    parser.epilog = (
        "The ONNX model reads log-mel frames 'frames' (batch, time, n_mels) and outputs 'probabilities' and "
        "'logits' (batch, n_classes); labels and feature settings are in its metadata. Needs onnx "
        "(a dependency of speechrnn)."
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``speechrnn export``; returns the exit status (0, or 1 with one ``error:`` line on stderr)."""
    import importlib.util

    check = not args.no_check and importlib.util.find_spec("onnxruntime") is not None
    option = getattr(args, "model_option", None)
    if option is not None and args.model is not None:
        print("error: give the model file once: as MODEL or as --model", file=sys.stderr)
        return 2
    if option is None and args.model is None:  # never a default here: OUT would be taken for the model
        print(f"error: give both the model file and the ONNX file to write: speechrnn export MODEL OUT.onnx "
              f"(only {args.output!r} was given)", file=sys.stderr)
        return 2
    model = option if option is not None else args.model
    try:
        out = export_onnx(model, args.output, opset=args.opset, check=check)
    except SpeechRNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(f"error: {args.output}: cannot write the ONNX file ({reason})", file=sys.stderr)
        return 1
    from speechrnn.onnx_backend import read_metadata

    meta = read_metadata(out)
    n_mels = meta["feature_config"]["n_mels"]
    labels = meta["labels"]
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opset {args.opset}): frames (batch, time, {n_mels}) -> "
        f"probabilities, logits (batch, {len(labels)}); labels: {', '.join(labels)}"
    )
    if check:
        print(f"checked: ONNX Runtime gives PyTorch's probabilities within {CHECK_TOLERANCE:g} (batches 1 and 3)")
    elif not args.no_check:
        print("not checked against PyTorch: onnxruntime is not installed", file=sys.stderr)
    return 0

"""Train a speechrnn model on Speech Commands: ``speechrnn-train`` / ``python -m training.train``.

Usage::

    speechrnn-train --config training/configs/mini.toml --data /path/to/speech_commands --out runs/mini
    speechrnn-train --config training/configs/mini.toml --set optim.epochs=5 --set model.cell=lstm
    torchrun --nproc_per_node=4 -m training.train --config training/configs/v2-35.toml --data DIR --out runs/v2-35

Rerunning the same command resumes from ``OUT/last.pt`` (pass ``--no-resume`` to start over). A
resumed run must have the saved run's settings, except those that do not change what is trained
(:data:`RESUMABLE_CHANGES`: more ``optim.epochs`` extend a run); rerunning a finished run (all
its epochs trained, or stopped early) says so and changes nothing.
The output folder holds ``best.pt`` (a normal model file with its training summary), ``last.pt``
(full training state), ``log.csv`` (one row per epoch, appended), ``curves.png`` and
``config.json``.

The loop below reads top to bottom: set-up (processes, seeds, data, model, optimiser, schedule),
resume, then per epoch: train (AdamW, warm-up + cosine, clipping, optional mixed precision),
validate, checkpoint, log, early-stop.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import os
import random
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from speechrnn import __version__
from speechrnn.checkpoint import (
    TRAINING_STATE_FORMAT,
    Checkpoint,
    atomic_torch_save,
    load_checkpoint,
    safe_torch_load,
    save_checkpoint,
)
from speechrnn.errors import SpeechRNNError
from speechrnn.inference import resolve_device
from speechrnn.model import SpeechRNN, count_parameters
from training.config import TrainConfig, load_config
from training.data import ClipDataset, SpeechCommandsData, feature_statistics
from training.metrics import classification_report, plot_curves

LOG_FIELDS = (
    "epoch", "step", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "best_val_accuracy",
    "epoch_seconds", "data_seconds", "data_share", "time",
)  # fmt: skip
#: What a training state must hold to be resumed.
STATE_KEYS = (
    "config", "model", "optimizer", "scheduler", "epoch", "step", "best_accuracy", "best_epoch",
    "epochs_since_best", "rng",
)  # fmt: skip
#: Config keys a resumed run may change: they do not change what is trained (more epochs extend it).
RESUMABLE_CHANGES = frozenset(
    {"optim.epochs", "threads", "device", "prefetch", "eval_batch_size", "data.data_dir", "data.cache_dir", "init_from"}
)
#: Held (flock) by the run writing an output folder.
LOCK_NAME = ".lock"
#: Temporary files of interrupted writes in an output folder (removed when a run starts or resumes).
TEMPORARY_PATTERNS = (".curves.png.tmp.png", ".log.csv.tmp", ".last.pt.*.tmp", ".best.pt.*.tmp")


class TrainingError(SpeechRNNError):
    """Training cannot go on (non-finite loss, incompatible resume state, ...)."""


@dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Parameters
    ----------
    out_dir : Path
    best_path, last_path, log_path, plot_path : Path
        ``best.pt`` (model file), ``last.pt`` (training state), ``log.csv``, ``curves.png``.
    epochs_completed : int
    best_epoch : int
        1-based epoch of the best validation accuracy.
    best_val_accuracy : float
    stopped_early : bool
    resumed_from_epoch : int
        Epochs already done when this call started (0 for a fresh run).
    history : tuple of dict
        The log rows (all epochs, earlier runs included).
    summary : dict
        The summary stored in ``best.pt``.
    already_finished : bool
        The run in ``out_dir`` had already finished (all its epochs, or stopped early): nothing
        was trained or written by this call.
    """

    out_dir: Path
    best_path: Path
    last_path: Path
    log_path: Path
    plot_path: Path
    epochs_completed: int
    best_epoch: int
    best_val_accuracy: float
    stopped_early: bool
    resumed_from_epoch: int
    history: tuple[dict[str, Any], ...]
    summary: dict[str, Any]
    already_finished: bool = False


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    """Join the torchrun process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1:
        return _Dist(), device
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Dist(rank=rank, world=world, local_rank=local_rank), device


class Prefetcher:
    """Run a batch iterator in a background thread, ``depth`` batches ahead of the training loop.

    The augmentation and feature maths are torch/numpy calls that release the GIL, so batch
    preparation overlaps the model's forward and backward passes. The iterator's own order
    and random draws are unchanged (one producer thread), so runs stay reproducible.

    Parameters
    ----------
    iterator : iterator
    depth : int
        Batches buffered ahead; 0 runs the iterator in the caller's thread.
    """

    _DONE = object()

    def __init__(self, iterator: Any, *, depth: int = 2) -> None:
        import queue

        self._iterator = iterator
        self._depth = depth
        if depth <= 0:
            return
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import queue

        try:
            for item in self._iterator:
                while not self._stop.is_set():
                    try:
                        self._queue.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put((True, self._DONE))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._queue.put((False, exc))

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> Any:
        if self._depth <= 0:
            return next(self._iterator)
        ok, item = self._queue.get()
        if not ok:
            raise item
        if item is self._DONE:
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the producer thread and wait for it (it exits after the batch it is making).

        Called when an epoch ends in any way, Ctrl-C included: a thread left inside a torch call
        while the interpreter shuts down can abort the process.
        """
        if self._depth > 0:
            self._stop.set()
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join()


class WeightAverage:
    """Exponential moving average of a model's floating-point state (parameters and buffers).

    ``update()`` after every optimiser step; ``model`` is a separate copy holding the average
    (integer buffers such as batch-norm counters are copied as they are).
    """

    def __init__(self, model: torch.nn.Module, *, decay: float) -> None:
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        for module in self.model.modules():  # a copied cuDNN RNN loses its single weight buffer
            if isinstance(module, torch.nn.RNNBase):
                module.flatten_parameters()

    @torch.no_grad()
    def update(self, model: torch.nn.Module, *, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        live = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.lerp_(live[name].detach(), 1.0 - decay)
            else:
                value.copy_(live[name])


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _rng_state() -> dict[str, Any]:
    """Python, numpy and torch random states as plain data (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": pos, "has_gauss": has_gauss, "cached": cached},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for this run, or None for full precision.

    On CUDA, ``auto`` is bf16 where the GPU supports it, else fp16. On the CPU only ``bf16`` turns
    mixed precision on (oneDNN runs the LSTM, convolution and matrix products in bfloat16; about
    1.6x faster on a CPU with AVX-512 BF16 or AMX); ``auto``, ``fp16`` and ``off`` train in float32.
    """
    if config.optim.amp == "off":
        return None
    if device.type == "cpu":
        return torch.bfloat16 if config.optim.amp == "bf16" else None
    if device.type != "cuda":
        return None
    if config.optim.amp == "fp16" or (config.optim.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def autocast(dtype: torch.dtype | None, device: torch.device) -> torch.autocast:
    """The training step's autocast context: mixed precision in ``dtype``, or off when it is None."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def predict_frames(
    model: SpeechRNN, frames: torch.Tensor, *, device: torch.device, batch_size: int = 512
) -> np.ndarray:
    """Class probabilities of precomputed frames, in eval mode.

    Parameters
    ----------
    model : SpeechRNN
    frames : torch.Tensor, shape (n, time, n_mels)
    device : torch.device
    batch_size : int

    Returns
    -------
    np.ndarray, shape (n, n_classes), float32
    """
    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, frames.shape[0], batch_size):
            logits = model(frames[start : start + batch_size].to(device))
            out.append(torch.softmax(logits.float(), dim=-1).cpu())
    model.train(was_training)
    if not out:
        return np.zeros((0, model.config.n_classes), dtype=np.float32)
    return torch.cat(out).numpy()


def evaluate_dataset(
    model: SpeechRNN, dataset: ClipDataset, *, device: torch.device, batch_size: int = 512
) -> tuple[float, dict[str, Any]]:
    """Mean cross-entropy and a :func:`~training.metrics.classification_report` of one split."""
    frames, labels = dataset.all_features(batch_size=batch_size)
    probs = predict_frames(model, frames, device=device, batch_size=batch_size)
    if not len(labels):
        return float("nan"), classification_report(np.zeros(0), np.zeros(0), dataset.labels)
    picked = probs[np.arange(len(labels)), labels.numpy()]
    loss = float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())
    return loss, classification_report(labels.numpy(), probs.argmax(axis=1), dataset.labels)


def _read_log(path: Path, *, up_to_epoch: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if row.get("epoch") and int(row["epoch"]) <= up_to_epoch]


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the CSV log atomically (used once when resuming, to drop rows of an unfinished epoch)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _append_log(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{"section.key": value}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_UNSET = object()


def _shown(value: Any) -> str:
    """A config value for a one-line message (JSON, shortened)."""
    text = "(unset)" if value is _UNSET else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_compatible(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """Refuse to resume ``path``'s run with other settings than the ones it was trained with.

    Only :data:`RESUMABLE_CHANGES` may differ. A key the saved config lacks (a setting added
    since) counts as its default value.

    Raises
    ------
    TrainingError
        Naming ``path`` and the first few changed keys with their old and new values.
    """
    old, new = _flatten(saved), _flatten(config.to_dict())
    defaults = _flatten(TrainConfig().to_dict())
    changed = []
    for key in [*new, *(k for k in old if k not in new)]:
        if key in RESUMABLE_CHANGES:
            continue
        before, after = old.get(key, defaults.get(key, _UNSET)), new.get(key, _UNSET)
        if before != after:
            changed.append(f"{key} {_shown(before)} -> {_shown(after)}")
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise TrainingError(
            f"{path}: holds a run with other settings ({', '.join(changed[:3])}{more}); use another --out or "
            f"--no-resume (a resumed run may change only {', '.join(sorted(RESUMABLE_CHANGES))})"
        )


def _load_state(path: Path, config: TrainConfig) -> dict[str, Any]:
    """The training state in ``path``, checked to be complete and of a run with ``config``'s settings.

    Raises
    ------
    TrainingError
        Not a training state, an incomplete one, or one of a run with other settings.
    speechrnn.errors.CheckpointError
        An unreadable or unsafe file.
    """
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != TRAINING_STATE_FORMAT:
        raise TrainingError(f"{path}: not a speechrnn training state; use another --out or --no-resume")
    missing = [key for key in STATE_KEYS if key not in state]
    if not missing and not isinstance(state["config"], dict):
        missing = ["config"]
    if missing:
        raise TrainingError(
            f"{path}: not a complete training state (no {', '.join(missing)}); use another --out or --no-resume"
        )
    _check_compatible(state["config"], config, path)
    return state


def _incomplete_state(path: Path, exc: Exception) -> TrainingError:
    """The error for a training state whose entries cannot be restored."""
    if isinstance(exc, KeyError):
        detail = f"no {exc.args[0] if exc.args else 'entry'}"
    else:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TrainingError(f"{path}: not a complete training state ({detail[:120]}); use another --out or --no-resume")


def _final_summary(best_path: Path, epochs: int) -> dict[str, Any] | None:
    """``best.pt``'s summary if it is the end-of-run summary of a run of ``epochs`` epochs, else None.

    The summary written after each improving epoch has no ``train_seconds``; only the one written
    once the epochs are over has.
    """
    try:
        summary = dict(load_checkpoint(best_path).summary)
    except SpeechRNNError:
        return None
    return summary if "train_seconds" in summary and summary.get("epochs") == epochs else None


def _remove_temporary_files(out_dir: Path) -> None:
    """Delete what interrupted atomic writes (a kill mid-save or mid-plot) left in ``out_dir``."""
    for pattern in TEMPORARY_PATTERNS:
        for path in out_dir.glob(pattern):
            path.unlink(missing_ok=True)


def _leave_process_group(distributed: bool) -> None:
    """Wait for every process, then leave the torchrun process group (nothing in a single process)."""
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def _initial_checkpoint(config: TrainConfig) -> Checkpoint:
    """``config.init_from``'s model file, checked against the run before any data is read."""
    path = config.init_from
    start = load_checkpoint(path)
    mismatch = [
        name
        for name, theirs, ours in (
            ("model", start.model_config, config.model),
            ("features", start.feature_config, config.features),
            ("labels", start.labels, config.data.labels),
        )
        if theirs != ours
    ]
    if mismatch:
        raise TrainingError(f"{path}: init_from has other {' and '.join(mismatch)} settings than this run")
    return start


@contextlib.contextmanager
def _lock_output(out_dir: Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` for the run, so that a second run on the same folder stops at once.

    Two runs writing one folder would interleave their log rows and checkpoints. The lock is an
    advisory ``flock`` (released by the system however the process ends); where there is none
    (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = out_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise TrainingError(f"{out_dir}: cannot write in the output folder ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TrainingError(
                f"{out_dir}: another training run is using this folder; wait for it to end or choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)


def train(
    config: TrainConfig,
    *,
    out_dir: str | os.PathLike[str],
    resume: bool = True,
    progress: bool = True,
) -> TrainResult:
    """Train a model and write its files to ``out_dir``; see the module docstring.

    Parameters
    ----------
    config : TrainConfig
        ``model.n_mels`` / ``model.n_classes`` are filled in from the features and task.
    out_dir : path-like
        Output folder (created); a ``last.pt`` there is resumed when ``resume``.
    resume : bool
        Continue from ``out_dir/last.pt`` if present (optimizer, schedule, epoch, RNG states,
        early-stopping state restored; the CSV log is kept and appended to). A run already
        finished (its epochs done, or stopped early) is left as it is (``already_finished``).
    progress : bool
        tqdm bars on stderr (rank 0 only).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        Non-finite loss (the run stops; nothing is written from the broken state), a resume
        state that is incomplete or from a run with other settings (see :data:`RESUMABLE_CHANGES`),
        an empty validation split, or another run using ``out_dir`` (it is locked while training).
    speechrnn.errors.SpeechRNNError
        Unreadable data folder and similar input problems.
    """
    with contextlib.ExitStack() as held:
        return _train(config, out_dir=Path(out_dir), resume=resume, progress=progress, held=held)


def _train(
    config: TrainConfig, *, out_dir: Path, resume: bool, progress: bool, held: contextlib.ExitStack
) -> TrainResult:
    """:func:`train`, with ``held`` keeping the output folder's lock until it returns."""
    from tqdm import tqdm

    started = time.perf_counter()
    config = config.resolved()
    best_path, last_path = out_dir / "best.pt", out_dir / "last.pt"
    log_path, plot_path = out_dir / "log.csv", out_dir / "curves.png"
    paths = {"out_dir": out_dir, "best_path": best_path, "last_path": last_path, "log_path": log_path,
             "plot_path": plot_path}  # every TrainResult's files

    # ---- processes, device, seeds --------------------------------------------------------------
    dist_info, device = _setup_distributed(config.device)
    distributed = dist_info.world > 1
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    show = progress and dist_info.main
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"{out_dir}: exists and is not a folder; choose another --out")
    if dist_info.main:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainingError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None
        held.enter_context(_lock_output(out_dir))

    # ---- resume state: read before any data, so that a mismatched or finished run stops at once ----
    state = _load_state(last_path, config) if resume and last_path.is_file() else None
    start_epoch, step, best_acc, best_epoch, since_best, stopped_before = 0, 0, -1.0, 0, 0, False
    if state is not None:
        try:
            start_epoch, step = int(state["epoch"]), int(state["step"])
            best_acc, best_epoch, since_best = (
                float(state["best_accuracy"]),
                int(state["best_epoch"]),
                int(state["epochs_since_best"]),
            )
        except (TypeError, ValueError) as exc:
            raise _incomplete_state(last_path, exc) from None
        # a state written before the flag was recorded: the run stopped when patience ran out
        patience = config.optim.patience
        stopped_before = bool(state.get("stopped_early", bool(patience) and since_best >= patience))
    finished = state is not None and (stopped_before or start_epoch >= config.optim.epochs)
    if state is not None and finished:
        # its recipe as trained: a smaller optim.epochs on the command line changes nothing
        planned = _flatten(state["config"]).get("optim.epochs", start_epoch)
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, epochs=int(planned)))
        final = _final_summary(best_path, start_epoch)
        if final is not None:  # nothing left to do: say so, write nothing
            _leave_process_group(distributed)
            return TrainResult(
                **paths,
                epochs_completed=start_epoch,
                best_epoch=best_epoch,
                best_val_accuracy=float(final.get("val_accuracy", best_acc)),
                stopped_early=stopped_before,
                resumed_from_epoch=start_epoch,
                history=tuple(_read_log(log_path, up_to_epoch=start_epoch)) if dist_info.main else (),
                summary=final,
                already_finished=True,
            )
        # else killed before the end-of-run summary: train no more epochs, write the summary
    if dist_info.main:
        _remove_temporary_files(out_dir)

    start = _initial_checkpoint(config) if config.init_from and state is None else None

    # ---- data ----------------------------------------------------------------------------------
    data = SpeechCommandsData(config.data, config.features, seed=config.seed, progress=show)
    train_set = data.split("training", augment=config.augment)
    val_set = data.split("validation")
    if len(train_set) == 0:
        raise TrainingError(f"{config.data.data_dir}: the training split of task {config.data.task!r} is empty")
    if len(val_set) == 0:
        raise TrainingError(
            f"{config.data.data_dir}: the validation split of task {config.data.task!r} is empty (check "
            "validation_list.txt): every epoch is measured on it"
        )
    local_batch = max(1, config.optim.batch_size // dist_info.world)
    steps_per_epoch = train_set.n_batches(local_batch, world=dist_info.world)
    total_steps = steps_per_epoch * config.optim.epochs
    warmup_steps = max(1, round(config.optim.warmup_epochs * steps_per_epoch))

    # ---- model, optimiser, schedule ------------------------------------------------------------
    model = SpeechRNN(config.model)
    if state is not None:  # the saved run's weights and feature normalisation
        try:
            model.load_state_dict(state["model"])
        except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise _incomplete_state(last_path, exc) from None
    elif start is not None:  # its weights and its feature normalisation
        model.load_state_dict({name: value.float() for name, value in start.state_dict.items()})
    else:
        model.set_normalization(*feature_statistics(train_set))
    train_set.set_fill(model.feature_mean.detach().clone())
    model.to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "norm" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.optim.lr,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(
            step, warmup_steps=warmup_steps, total_steps=total_steps, min_ratio=config.optim.min_lr_ratio
        ),
    )
    ema = WeightAverage(model, decay=config.optim.ema_decay) if config.optim.ema_decay > 0 else None
    autocast_dtype = amp_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)

    # ---- resume --------------------------------------------------------------------------------
    if state is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            if ema is not None:
                ema.model.load_state_dict(state.get("ema") or state["model"])
            _set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise _incomplete_state(last_path, exc) from None
        if show:
            print(f"resuming {out_dir} after epoch {start_epoch} (step {step})", file=sys.stderr)
    history = _read_log(log_path, up_to_epoch=start_epoch) if dist_info.main else []
    if dist_info.main:
        if start_epoch == 0:  # a fresh run (--no-resume included): nothing of an earlier run is kept,
            for earlier in (log_path, last_path, best_path, plot_path):  # so a kill cannot resume it
                earlier.unlink(missing_ok=True)
        elif history or log_path.exists():
            _write_log(log_path, history)
        (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
        if finished and history:  # a kill may have cut the last epoch's plot short
            plot_curves(history, plot_path)
    resumed_from = start_epoch

    net: torch.nn.Module = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if show:
        print(
            f"{count_parameters(model):,} parameters | {len(train_set)} training and {len(val_set)} validation "
            f"examples | labels {', '.join(config.data.labels)} | device {device}"
            + (f" x {dist_info.world} processes" if distributed else "")
            + (f", {str(autocast_dtype).removeprefix('torch.')} mixed precision" if autocast_dtype else ""),
            file=sys.stderr,
        )

    # ---- epochs --------------------------------------------------------------------------------
    stopped_early = stopped_before
    end_epoch = start_epoch if finished else config.optim.epochs
    epoch = start_epoch
    for epoch in range(start_epoch, end_epoch):
        net.train()
        epoch_start = time.perf_counter()
        data_seconds = 0.0
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.float64)
        seen = torch.zeros((), dtype=torch.float64)
        bar = tqdm(
            total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.optim.epochs}", unit="batch",
            disable=not show, file=sys.stderr, leave=False,
        )  # fmt: skip
        batches = Prefetcher(
            train_set.batches(epoch, batch_size=local_batch, rank=dist_info.rank, world=dist_info.world),
            depth=config.prefetch,
        )
        try:
            while True:
                tick = time.perf_counter()
                batch = next(batches, None)
                data_seconds += time.perf_counter() - tick
                if batch is None:
                    break
                frames, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
                with autocast(autocast_dtype, device):
                    logits = net(frames)
                    loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.optim.label_smoothing)
                bad = torch.tensor(0.0 if bool(torch.isfinite(loss.detach())) else 1.0, device=device)
                if distributed:
                    import torch.distributed as dist

                    dist.all_reduce(bad)
                if bad.item() > 0:
                    bar.close()
                    raise TrainingError(
                        f"non-finite training loss ({loss.item()}) at epoch {epoch + 1}, step {step + 1}: stopping "
                        f"without saving this state (the last good checkpoint is kept); lower optim.lr "
                        f"(now {config.optim.lr:g}) or check the data"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.optim.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if ema is not None:
                    ema.update(model, step=step)
                step += 1
                n = labels.shape[0]
                loss_sum += float(loss.detach()) * n
                correct += float((logits.detach().argmax(dim=1) == labels).sum())
                seen += n
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss_sum / seen):.3f}", acc=f"{float(correct / seen):.3f}")
        finally:
            batches.close()
        bar.close()
        if distributed:
            import torch.distributed as dist

            totals = torch.stack([loss_sum, correct, seen]).to(device)
            dist.all_reduce(totals)
            loss_sum, correct, seen = totals.cpu()
        train_loss, train_acc = float(loss_sum / max(float(seen), 1.0)), float(correct / max(float(seen), 1.0))
        epoch_seconds = time.perf_counter() - epoch_start

        # ---- validation, checkpoints, log (rank 0) ----------------------------------------------
        stop = torch.zeros((), device=device)
        scored = ema.model if ema is not None else model  # what validation measures and best.pt holds
        if dist_info.main:
            val_loss, report = evaluate_dataset(scored, val_set, device=device, batch_size=config.eval_batch_size)
            val_acc = report["accuracy"]
            # a refit on training + validation has no held-out score to select by: keep the last epoch
            improved = val_acc > best_acc or not config.data.validation_held_out
            if improved:
                best_acc, best_epoch, since_best = val_acc, epoch + 1, 0
                summary = _summary(
                    config, scored, data, train_set, val_set, epochs=epoch + 1, best_epoch=epoch + 1, val=report
                )
                save_checkpoint(best_path, model=scored, feature_config=config.features, labels=config.data.labels,
                                summary=summary)  # fmt: skip
            else:
                since_best += 1
            stop_now = bool(config.optim.patience) and since_best >= config.optim.patience
            row = {
                "epoch": epoch + 1, "step": step, "lr": f"{scheduler.get_last_lr()[0]:.6g}",
                "train_loss": f"{train_loss:.5f}", "train_accuracy": f"{train_acc:.5f}",
                "val_loss": f"{val_loss:.5f}", "val_accuracy": f"{val_acc:.5f}", "best_val_accuracy": f"{best_acc:.5f}",
                "epoch_seconds": f"{epoch_seconds:.2f}", "data_seconds": f"{data_seconds:.2f}",
                "data_share": f"{data_seconds / max(epoch_seconds, 1e-9):.3f}",
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }  # fmt: skip
            history.append(row)
            _append_log(log_path, row)  # before last.pt: a kill in between only repeats this epoch
            atomic_torch_save(
                {
                    "format": TRAINING_STATE_FORMAT,
                    "config": config.to_dict(),
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                    "ema": {k: v.detach().cpu() for k, v in ema.model.state_dict().items()} if ema else {},
                    "epoch": epoch + 1,
                    "step": step,
                    "best_accuracy": best_acc,
                    "best_epoch": best_epoch,
                    "epochs_since_best": since_best,
                    "stopped_early": stop_now,
                    "rng": _rng_state(),
                },
                last_path,
            )
            plot_curves(history, plot_path)
            if show:
                print(
                    f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_acc:.4f} | val loss {val_loss:.4f} "
                    f"acc {val_acc:.4f}{' (best)' if improved else ''} | {epoch_seconds:.1f} s, data "
                    f"{100 * data_seconds / max(epoch_seconds, 1e-9):.0f}%",
                    file=sys.stderr,
                )
            if stop_now:
                stop.fill_(1.0)
        if distributed:
            import torch.distributed as dist

            dist.broadcast(stop, src=0)
        if stop.item() > 0:
            stopped_early = True
            if show:
                print(f"early stop: no better validation accuracy for {config.optim.patience} epochs",
                      file=sys.stderr)  # fmt: skip
            epoch += 1
            break
    else:
        epoch = end_epoch

    # ---- final summary: the best model on validation (and testing, for the record) -----------------
    summary: dict[str, Any] = {}
    if dist_info.main and best_path.is_file():
        best = load_checkpoint(best_path)
        model.load_state_dict(dict(best.state_dict))
        _, val_report = evaluate_dataset(model, val_set, device=device, batch_size=config.eval_batch_size)
        test_set = data.split("testing")
        test_report = None
        if len(test_set):
            _, test_report = evaluate_dataset(model, test_set, device=device, batch_size=config.eval_batch_size)
        summary = _summary(
            config, model, data, train_set, val_set, epochs=epoch, best_epoch=best_epoch, val=val_report,
            test=test_report, seconds=time.perf_counter() - started, history=history,
        )  # fmt: skip
        save_checkpoint(best_path, model=model, feature_config=config.features, labels=config.data.labels,
                        summary=summary)  # fmt: skip
        if show:
            line = f"best epoch {best_epoch}: validation accuracy {val_report['accuracy']:.4f}"
            if not config.data.validation_held_out:
                line += " (trained on: not held out)"
            if test_report:
                line += f", testing accuracy {test_report['accuracy']:.4f}"
            print(f"{line} -> {best_path}", file=sys.stderr)
    _leave_process_group(distributed)
    return TrainResult(
        **paths,
        epochs_completed=epoch,
        best_epoch=best_epoch,
        # the figure of the model in best.pt, as its summary and the line above state it
        best_val_accuracy=float(summary["val_accuracy"]) if summary else best_acc,
        stopped_early=stopped_early,
        resumed_from_epoch=resumed_from,
        history=tuple(history),
        summary=summary,
    )


def _summary(
    config: TrainConfig,
    model: SpeechRNN,
    data: SpeechCommandsData,
    train_set: ClipDataset,
    val_set: ClipDataset,
    *,
    epochs: int,
    best_epoch: int,
    val: dict[str, Any],
    test: dict[str, Any] | None = None,
    seconds: float | None = None,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON-compatible training summary stored in the model file."""
    summary: dict[str, Any] = {
        "task": config.data.task,
        "labels": list(config.data.labels),
        "data": str(Path(config.data.data_dir).expanduser().resolve()),
        "holdout_words": list(config.data.holdout_words),
        "epochs": epochs,
        "best_epoch": best_epoch,
        "parameters": count_parameters(model),
        "val_accuracy": val["accuracy"],
        # False for a refit on training + validation: the validation figures are then not held out
        "validation_held_out": config.data.validation_held_out,
        "validation": {k: val[k] for k in ("accuracy", "examples", "macro_f1", "per_class", "confusion")},
        "training_examples": len(train_set),
        "validation_examples": len(val_set),
        "recipe": config.to_dict(),
        "speechrnn_version": __version__,
        "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {"val_accuracy": val["accuracy"]},
    }
    if test is not None:
        summary["test_accuracy"] = test["accuracy"]
        summary["metrics"]["test_accuracy"] = test["accuracy"]
        summary["testing"] = {k: test[k] for k in ("accuracy", "examples", "macro_f1", "per_class", "confusion")}
    if seconds is not None:
        summary["train_seconds"] = round(seconds, 1)
    if history:
        summary["mean_epoch_seconds"] = round(float(np.mean([float(r["epoch_seconds"]) for r in history])), 2)
        summary["mean_data_share"] = round(float(np.mean([float(r["data_share"]) for r in history])), 3)
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The ``speechrnn-train`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="speechrnn-train",
        description="Train a speechrnn model on a Speech Commands folder (resumes OUT/last.pt when present).",
    )
    parser.add_argument("--config", type=Path,
                        help="TOML config (e.g. training/configs/mini.toml, or a shipped one by name: default, "
                             "mini, v2-12, v2-35); defaults otherwise")  # fmt: skip
    parser.add_argument("--data", help="Speech Commands folder (overrides data.data_dir)")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/<config name>)")
    parser.add_argument("--epochs", type=int, help="overrides optim.epochs")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides device")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override any config value, e.g. --set optim.lr=1e-3 --set model.cell=lstm (repeatable)",
    )  # fmt: skip
    parser.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config of a parsed command line: file, then ``--set``, then the explicit flags."""
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.data_dir={json.dumps(str(args.data))}")
    if args.epochs is not None:
        overrides.append(f"optim.epochs={args.epochs}")
    if args.device:
        overrides.append(f"device={json.dumps(args.device)}")
    return load_config(args.config, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``speechrnn-train``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        out = args.out or Path("runs") / (args.config.stem if args.config else "default")
        result = train(config, out_dir=out, resume=not args.no_resume, progress=not args.quiet)
    except (SpeechRNNError, ValueError) as exc:
        print(f"speechrnn-train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        again = "rerun without --no-resume" if args.no_resume else "rerun the same command"
        print(f"speechrnn-train: interrupted ({again} to resume)", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 speaks for the run
        return 0
    if result.already_finished:
        if result.stopped_early:
            how, then = f"stopped early at epoch {result.epochs_completed}", "use --no-resume or another --out"
        else:
            how, then = f"trained {result.epochs_completed} epochs", "pass more --epochs to extend it, or --no-resume"
        print(
            f"{result.out_dir}: the run is already finished ({how}); nothing changed; model {result.best_path} "
            f"(validation accuracy {result.best_val_accuracy:.4f}, epoch {result.best_epoch}); to train again, {then}"
        )
    else:
        print(
            f"best validation accuracy {result.best_val_accuracy:.4f} (epoch {result.best_epoch}); "
            f"model: {result.best_path}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["TrainConfig", "TrainResult", "TrainingError", "lr_factor", "main", "train"]

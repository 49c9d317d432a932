"""Shared helpers of the benchmark scripts: the model to time, real clips, timing, results.

Not a library module: the scripts in this folder put it on ``sys.path`` themselves.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_RECIPE = ROOT / "training" / "configs" / "default.toml"
MINI_DATA = Path("/work/shared/data/speech_commands_mini")
FIXTURES = ROOT / "tests" / "fixtures" / "speech_commands"


def cache_dir() -> Path:
    """Where benchmark inputs are cached: ``$SPEECHRNN_CACHE/bench`` or ``~/.cache/speechrnn/bench``."""
    if os.environ.get("SPEECHRNN_CACHE"):
        return Path(os.environ["SPEECHRNN_CACHE"]).expanduser() / "bench"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "speechrnn" / "bench"


def benchmark_model(path: str | os.PathLike[str] | None) -> tuple[Path, str | None]:
    """The model file to time.

    Parameters
    ----------
    path : path-like, optional
        ``--model``; default the shipped model (``speechrnn/models/default.pt``).

    Returns
    -------
    path : Path
    note : str or None
        Set when the shipped model is missing and a model of the default recipe's architecture
        (``training/configs/default.toml`` [model]) with **random weights** is used instead:
        its timings are those of the shipped model, its labels mean nothing.
    """
    from speechrnn import default_model_path

    if path is not None:
        return Path(path), None
    shipped = default_model_path()
    if shipped.is_file():
        return shipped, None
    import torch

    from speechrnn.checkpoint import save_checkpoint
    from speechrnn.model import SpeechRNN
    from training.config import load_config

    config = load_config(DEFAULT_RECIPE).resolved()
    out = cache_dir() / "default_recipe_random.pt"
    if not out.is_file():
        torch.manual_seed(0)
        model = SpeechRNN(config.model).eval()
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out, model=model, feature_config=config.features, labels=config.data.labels,
                        summary={"note": "random weights of the default recipe's architecture, for timing only"})
    note = (
        f"{shipped} does not exist yet: timing a model of the default recipe's architecture "
        f"({config.model.description}) with RANDOM weights"
    )
    return out, note


def real_clips(n: int, *, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """``n`` real one-second clips (zero-padded), float32 ``(n, sample_rate)``.

    From the Speech Commands mini set when present, else the test fixtures (repeated).
    """
    from speechrnn.audio import load_audio

    source = MINI_DATA if MINI_DATA.is_dir() else FIXTURES
    files = sorted(p for p in source.glob("*/*.flac") if not p.parent.name.startswith("_"))
    if not files:
        raise SystemExit(f"no clips under {source}")
    rng = np.random.default_rng(seed)
    picked = [files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False)]
    out = np.zeros((n, sample_rate), dtype=np.float32)
    for i in range(n):
        audio = load_audio(picked[i % len(picked)], sample_rate=sample_rate)[:sample_rate]
        out[i, : audio.shape[0]] = audio
    return out


def fixture_commands(*, sample_rate: int = 16000, gap_seconds: float = 0.5) -> np.ndarray:
    """The committed command clips one after another with ``gap_seconds`` of silence after each, float32 ``(n,)``.

    What the live benchmarks play as if spoken into a microphone.
    """
    from speechrnn.audio import load_audio

    gap = np.zeros(round(gap_seconds * sample_rate), dtype=np.float32)
    clips = sorted(FIXTURES.rglob("*.flac"))
    return np.concatenate([part for clip in clips for part in (load_audio(clip, sample_rate=sample_rate), gap)])


def clip_files(n: int, *, seed: int = 0) -> list[Path]:
    """``n`` real clip files (FLAC) of the mini set (or the fixtures), repeated if needed."""
    source = MINI_DATA if MINI_DATA.is_dir() else FIXTURES
    files = sorted(p for p in source.glob("*/*.flac") if not p.parent.name.startswith("_"))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    return [files[order[i % len(files)]] for i in range(n)]


def time_calls(fn: Callable[[], Any], *, number: int, repeats: int = 5, warmup: int = 3) -> dict[str, float]:
    """Seconds per call of ``fn``: ``repeats`` rounds of ``number`` calls each.

    Returns
    -------
    dict
        ``best`` (fastest round's mean per call; the least disturbed by other processes),
        ``median`` (median round's mean per call), ``calls``.
    """
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return {"best": min(rounds), "median": statistics.median(rounds), "calls": number * repeats}


def time_interleaved(
    approaches: dict[str, Callable[[], Any]], *, number: int, rounds: int = 5, warmup: int = 3
) -> dict[str, dict[str, float]]:
    """Like :func:`time_calls` for several approaches, alternating rounds so they share the machine's load.

    Returns
    -------
    dict of name -> {"best", "median", "calls"}
        Seconds per call.
    """
    for fn in approaches.values():
        for _ in range(warmup):
            fn()
    per: dict[str, list[float]] = {name: [] for name in approaches}
    for _ in range(rounds):
        for name, fn in approaches.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            per[name].append((time.perf_counter() - start) / number)
    return {
        name: {"best": min(v), "median": statistics.median(v), "calls": number * rounds} for name, v in per.items()
    }


def per_call_distribution(fn: Callable[[], Any], *, calls: int, warmup: int = 5) -> dict[str, float]:
    """Milliseconds per call of ``fn``, timed one call at a time: median, p90, p99, min."""
    for _ in range(warmup):
        fn()
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    ms = times * 1000
    return {
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "min": float(ms.min()),
        "mean": float(ms.mean()),
        "calls": calls,
    }


def cpu_info(path: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU's model name and whether it computes bfloat16 natively, from Linux's ``/proc/cpuinfo``.

    Both are None where that file does not exist (not Linux).
    """
    fields: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return {"cpu_model": None, "cpu_bf16": None}
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name"), "cpu_bf16": bool(flags & {"avx512_bf16", "amx_bf16"})}


def environment() -> dict[str, Any]:
    """Machine, versions and load, for the JSON results."""
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        # the host's CPU varies between days here: its model and the widest vector ISA torch uses
        **cpu_info(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def write_results(name: str, data: dict[str, Any], out: str | os.PathLike[str] | None = None) -> Path:
    """Write ``data`` as JSON to ``out`` (default ``benchmarks/results/<name>.json``)."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain aligned text table (first column left-aligned, others right-aligned)."""
    cells = [[str(h) for h in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)

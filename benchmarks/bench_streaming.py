"""Benchmark the live path: per-hop compute of the streaming recognizer and CPU share in real time.

Two measurements, on one CPU thread by default (``--threads``):

1. **Per-hop compute**: audio is pushed as fast as possible in 20 ms blocks; each model step's
   ``compute_seconds`` (new log-mel frames + the model on the last clip) is recorded, and the
   whole ``push`` time per step (ring buffers and decisions included) is reported alongside.
   Goal: at most 2 ms per hop.
2. **CPU share while listening**: ``speechrnn listen``'s engine runs over a
   :class:`~speechrnn.microphone.FileSource` paced in real time for ``--seconds``; the process's
   CPU time divided by wall time is the share of one core it used. Goal: under 10%.

Prints a table and writes JSON (``--out``, default ``benchmarks/results/streaming.json``)::

    python benchmarks/bench_streaming.py --model speechrnn/models/default.pt --seconds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "speech_commands"


def demo_audio(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Real speech for the benchmark: the fixture clips in a row, with gaps, over quiet noise.

    Parameters
    ----------
    seconds : float
        Length of the result.
    sample_rate : int
    rng : np.random.Generator

    Returns
    -------
    np.ndarray, shape (round(seconds * sample_rate),), float32
    """
    from speechrnn.audio import load_audio

    n = round(seconds * sample_rate)
    audio = (rng.standard_normal(n) * 0.003).astype(np.float32)
    clips = [load_audio(p, sample_rate=sample_rate) for p in sorted(FIXTURES.glob("*/*.flac"))]
    position = round(0.5 * sample_rate)
    index = 0
    while clips and position + sample_rate <= n:
        clip = clips[index % len(clips)]
        audio[position : position + clip.shape[0]] += clip
        position += clip.shape[0] + round(rng.uniform(0.8, 2.0) * sample_rate)
        index += 1
    return audio


def percentiles(values_ms: np.ndarray) -> dict[str, float]:
    """Summary statistics of a distribution in milliseconds."""
    return {
        "mean": float(values_ms.mean()),
        "median": float(np.median(values_ms)),
        "p90": float(np.percentile(values_ms, 90)),
        "p99": float(np.percentile(values_ms, 99)),
        "max": float(values_ms.max()),
    }


def bench_per_hop(classifier, *, hop: float, seconds: float, block_seconds: float, audio: np.ndarray) -> dict:
    """Push ``audio`` in blocks as fast as possible; per-step compute and push time."""
    from speechrnn.streaming import StreamingRecognizer

    recognizer = StreamingRecognizer(classifier, hop_seconds=hop)
    rate = recognizer.sample_rate
    block = max(1, round(block_seconds * rate))
    recognizer.push(audio[:rate])  # warm-up: first calls allocate and pick kernels
    recognizer.reset()
    compute: list[float] = []
    push_per_step: list[float] = []
    detections = 0
    end = min(audio.shape[0], round(seconds * rate))
    for start in range(0, end, block):
        t0 = time.perf_counter()
        steps = recognizer.push_steps(audio[start : start + block])
        elapsed = time.perf_counter() - t0
        if steps:
            push_per_step.append(elapsed / len(steps))
        compute.extend(step.compute_seconds for step in steps)
        detections += sum(step.detection is not None for step in steps)
    compute_ms = np.array(compute) * 1000
    push_ms = np.array(push_per_step) * 1000
    return {
        "steps": len(compute),
        "audio_seconds": end / rate,
        "detections": detections,
        "compute_ms": percentiles(compute_ms),
        "push_ms_per_step": percentiles(push_ms),
    }


def bench_realtime(classifier, *, hop: float, seconds: float, audio: np.ndarray) -> dict:
    """Listen in real time to a FileSource for ``seconds``; process CPU time / wall time."""
    from speechrnn.listen import run_engine
    from speechrnn.microphone import FileSource
    from speechrnn.streaming import StreamingRecognizer

    recognizer = StreamingRecognizer(classifier, hop_seconds=hop)
    source = FileSource(audio, sample_rate=recognizer.sample_rate, realtime=True, loop=True)
    compute: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    detections = run_engine(
        source, recognizer, duration=seconds, on_step=lambda step: compute.append(step.compute_seconds)
    )
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "seconds": seconds,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "cpu_share_of_one_core": cpu / wall,
        "steps": len(compute),
        "detections": len(detections),
        "compute_ms_median": float(np.median(compute) * 1000) if compute else None,
    }


def main(argv: list[str] | None = None) -> int:
    from speechrnn.onnx_backend import BACKENDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped default model)")
    parser.add_argument("--hop", type=float, default=0.1, help="seconds between model evaluations (default 0.1)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument(
        "--backend", default="auto", choices=BACKENDS, help="what runs the model (default auto)"
    )
    parser.add_argument(
        "--compute-seconds",
        type=float,
        default=60.0,
        help="seconds of audio pushed for the per-hop distribution (default 60)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="real-time listening duration (default 20)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "streaming.json"))
    args = parser.parse_args(argv)

    import torch

    from speechrnn import default_model_path
    from speechrnn.errors import SpeechRNNError
    from speechrnn.inference import Classifier
    from speechrnn.model import count_parameters

    torch.set_num_threads(args.threads)
    model = Path(args.model) if args.model else default_model_path()
    try:
        classifier = Classifier.from_file(model, device=args.device, backend=args.backend)
    except SpeechRNNError as exc:
        print(f"error: {exc} (pass --model FILE)", file=sys.stderr)
        return 1
    rate = classifier.feature_config.sample_rate
    audio = demo_audio(max(args.compute_seconds, 30.0), rate, np.random.default_rng(0))

    per_hop = bench_per_hop(classifier, hop=args.hop, seconds=args.compute_seconds, block_seconds=0.02, audio=audio)
    realtime = bench_realtime(classifier, hop=args.hop, seconds=args.seconds, audio=audio[: 30 * rate])

    result = {
        "model": str(model),
        "model_config": classifier.model_config.to_dict(),
        "parameters": count_parameters(classifier.model),
        "device": str(classifier.device),
        "backend": getattr(classifier, "backend", "torch"),
        "torch_threads": torch.get_num_threads(),
        "hop_seconds": args.hop,
        "per_hop": per_hop,
        "realtime": realtime,
        "goals": {"compute_ms_median_max": 2.0, "cpu_share_max": 0.10},
        "environment": environment(),
    }

    c, p = per_hop["compute_ms"], per_hop["push_ms_per_step"]
    print(
        f"model {model.name}: {result['parameters']:,} parameters, {classifier.model_config.cell} "
        f"on {result['device']} ({result['backend']}) with {result['torch_threads']} thread(s), "
        f"hop {args.hop * 1000:.0f} ms"
    )
    print(f"{'per hop (ms)':<28}{'mean':>8}{'median':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    for name, stats in (("features + model", c), ("whole push per step", p)):
        print(f"{name:<28}" + "".join(f"{stats[k]:8.3f}" for k in ("mean", "median", "p90", "p99", "max")))
    print(f"{per_hop['steps']} steps over {per_hop['audio_seconds']:.0f} s of audio; goal: median <= 2 ms")
    print(
        f"real time: {realtime['cpu_seconds']:.2f} s CPU in {realtime['wall_seconds']:.2f} s wall = "
        f"{realtime['cpu_share_of_one_core']:.1%} of one core (goal < 10%), "
        f"{realtime['steps']} steps, {realtime['detections']} detections"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Single-clip latency (features + model) on one CPU thread, model speed per batch size, and the live path.

Three measurements, everything on one thread (``torch.set_num_threads(1)``; ONNX Runtime with one
intra-op thread), approaches alternating round by round so they share the machine's load:

1. **One clip, features + model** (1 s of real speech -> class probabilities), for
   - the plain approach a user would write: :func:`speechrnn.features.log_mel_librosa` and the
     PyTorch model at batch 1;
   - ``Classifier.probabilities`` with the PyTorch backend;
   - ``Classifier.probabilities`` with the ONNX Runtime backend (the default on the CPU when
     onnxruntime is installed);
   - the same with int8 weights (``backend="int8"``, the ``--backend int8`` option);
   - ``OnnxClassifier.probabilities`` ("onnx, no torch"): numpy features and the same ONNX graph,
     what ``speechrnn classify`` and ``listen`` run once the model's export is cached.
   Goal: at most 2 ms with the default model.
2. **The model alone per batch size**, PyTorch vs ONNX Runtime, milliseconds per clip: where each
   is faster (``speechrnn.inference.ONNX_MAX_BATCH`` is chosen from this).
3. **Live listening**: a :class:`~speechrnn.streaming.StreamingRecognizer` (hop 0.1 s) fed real
   speech in 20 ms blocks as fast as possible; per-hop compute (new frames + model) and the CPU
   time per second of audio (= the share of one core when listening in real time), for every
   backend and for the plain approach (every hop: librosa log-mel of the last second + the
   PyTorch model). Goals (issue 6): per-hop compute at most 2 ms, under 10% of one core.

Without ``--model``, the shipped model is timed, or (when it is not trained yet) a model of the
default recipe's architecture with random weights (said in the output).

Usage::

    python benchmarks/bench_latency.py [--model FILE] [--rounds 5] [--stream-seconds 30]

Prints tables and writes ``benchmarks/results/latency.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    benchmark_model,
    environment,
    per_call_distribution,
    real_clips,
    table,
    time_interleaved,
    write_results,
)

BATCH_SIZES = (1, 3, 8, 16, 32, 64, 128, 256)
#: The torch-free classifier (:mod:`speechrnn.onnx_classifier`), timed as one more backend.
NO_TORCH = "onnx, no torch"


def stream_audio(seconds: float, sample_rate: int) -> np.ndarray:
    """Real speech for the live path: clips with 0.5-1.5 s gaps over quiet noise, float32."""
    rng = np.random.default_rng(1)
    n = round(seconds * sample_rate)
    audio = (rng.standard_normal(n) * 0.003).astype(np.float32)
    clips = real_clips(max(1, int(seconds)), sample_rate=sample_rate, seed=1)
    position, i = round(0.3 * sample_rate), 0
    while position + sample_rate <= n:
        audio[position : position + sample_rate] += clips[i % len(clips)]
        position += sample_rate + round(rng.uniform(0.5, 1.5) * sample_rate)
        i += 1
    return audio


def bench_single_clip(classifiers: dict, clip: np.ndarray, *, rounds: int, number: int) -> dict:
    """Seconds per one-clip call for the plain approach and each backend, plus a breakdown."""
    import torch

    from speechrnn.features import LogMelNumpy, log_mel_librosa

    any_classifier = next(iter(classifiers.values()))
    cfg = any_classifier.feature_config
    model = any_classifier.model
    batch = clip[None]
    numpy_log_mel = LogMelNumpy(cfg)

    def plain() -> np.ndarray:
        frames = log_mel_librosa(clip, cfg)
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(frames)[None]), dim=-1).numpy()

    approaches = {"plain: librosa + PyTorch": plain}
    for name, classifier in classifiers.items():
        approaches[f"speechrnn, {name} backend"] = lambda c=classifier: c.probabilities(batch)

    with torch.inference_mode():
        frames = any_classifier.log_mel(torch.from_numpy(batch))
    frames_np = frames.numpy()
    parts = {
        "features: librosa": lambda: log_mel_librosa(clip, cfg),
        "features: speechrnn LogMel (torch)": lambda: any_classifier.log_mel(torch.from_numpy(batch)),
        "features: speechrnn LogMelNumpy (no torch)": lambda: numpy_log_mel(batch),
    }
    for name, classifier in classifiers.items():
        parts[f"model: {name}"] = lambda c=classifier: c.probabilities_from_frames(frames_np)
    with torch.inference_mode():
        whole = time_interleaved(approaches, number=number, rounds=rounds)
        breakdown = time_interleaved(parts, number=number, rounds=rounds)
    reference = plain()
    agreement = {
        name: float(np.abs(c.probabilities(batch) - reference).max()) for name, c in classifiers.items()
    }
    return {"whole": whole, "breakdown": breakdown, "max_abs_difference_vs_plain": agreement}


def bench_batch_sizes(classifiers: dict, frames_one, *, rounds: int) -> dict:
    """Model-only milliseconds per clip for each batch size and backend."""
    out = {}
    for batch in BATCH_SIZES:
        x = np.repeat(frames_one, batch, axis=0)
        number = max(2, 64 // batch)
        approaches = {name: lambda c=c, x=x: c.probabilities_from_frames(x) for name, c in classifiers.items()}
        result = time_interleaved(approaches, number=number, rounds=rounds, warmup=1)
        out[batch] = {name: {k: v / batch for k, v in r.items() if k != "calls"} for name, r in result.items()}
    return out


def bench_stream(classifier, audio: np.ndarray, *, hop: float, block_seconds: float = 0.02) -> dict:
    """Push ``audio`` in blocks as fast as possible; per-hop compute and CPU time per audio second."""
    from speechrnn.streaming import StreamingRecognizer

    recognizer = StreamingRecognizer(classifier, hop_seconds=hop)
    rate = recognizer.sample_rate
    block = max(1, round(block_seconds * rate))
    recognizer.push(audio[: 2 * rate])  # warm-up
    recognizer.reset()
    compute = []
    detections = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, audio.shape[0], block):
        for step in recognizer.push_steps(audio[start : start + block]):
            compute.append(step.compute_seconds)
            detections += step.detection is not None
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    seconds = audio.shape[0] / rate
    ms = np.array(compute) * 1000
    return {
        "steps": len(compute),
        "audio_seconds": seconds,
        "detections": detections,
        "compute_ms": {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
                       "p99": float(np.percentile(ms, 99))},
        "push_ms_per_step": 1000 * wall / max(1, len(compute)),
        "cpu_share_of_one_core": cpu / seconds,
        "wall_share": wall / seconds,
    }


def bench_stream_plain(classifier, audio: np.ndarray, *, hop: float) -> dict:
    """The plain live loop: every hop, librosa log-mel of the last second and the PyTorch model."""
    import torch

    from speechrnn.features import log_mel_librosa

    cfg = classifier.feature_config
    rate, clip = cfg.sample_rate, cfg.clip_samples
    step = round(hop * rate)
    model = classifier.model
    padded = np.concatenate([np.zeros(clip, dtype=np.float32), audio])

    def one(end: int) -> np.ndarray:
        frames = log_mel_librosa(padded[end - clip : end], cfg)
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(frames)[None]), dim=-1).numpy()

    ends = list(range(clip + step, padded.shape[0] + 1, step))
    one(ends[0])
    remaining = iter(ends)
    stats = per_call_distribution(lambda: one(next(remaining)), calls=len(ends) - 10, warmup=5)
    seconds = audio.shape[0] / rate
    return {
        "steps": stats["calls"],
        "compute_ms": {k: stats[k] for k in ("median", "p90", "p99")},
        "cpu_share_of_one_core": stats["mean"] / 1000 / hop,
        "audio_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model, else the default recipe's "
                                        "architecture with random weights)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (default 5)")
    parser.add_argument("--number", type=int, default=40, help="calls per round for one clip (default 40)")
    parser.add_argument("--stream-seconds", type=float, default=30.0, help="audio pushed per live run (default 30)")
    parser.add_argument("--hop", type=float, default=0.1, help="live hop in seconds (default 0.1)")
    parser.add_argument("--out", help="JSON output (default benchmarks/results/latency.json)")
    args = parser.parse_args(argv)

    import torch

    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.inference import ONNX_MAX_BATCH, Classifier
    from speechrnn.model import count_parameters
    from speechrnn.onnx_backend import onnx_available
    from speechrnn.onnx_classifier import OnnxClassifier

    torch.set_num_threads(1)
    path, note = benchmark_model(args.model)
    checkpoint = load_checkpoint(path)
    classifiers = {"torch": Classifier(checkpoint, device="cpu", backend="torch")}
    if onnx_available():
        classifiers["onnx"] = Classifier(checkpoint, device="cpu", backend="onnx")
        classifiers["int8"] = Classifier(checkpoint, device="cpu", backend="int8")
        # what `speechrnn classify` and `listen` run once the export is cached: numpy features, no torch
        classifiers[NO_TORCH] = OnnxClassifier(classifiers["onnx"].onnx_bytes, backend="onnx")
    else:
        print("onnxruntime is not installed: timing the PyTorch backend only", file=sys.stderr)
    mc = checkpoint.model_config
    print(f"model {path} ({count_parameters(classifiers['torch'].model):,} parameters: {mc.description})")
    if note:
        print(f"NOTE: {note}")
    print("one thread (torch and ONNX Runtime); times are per call, best and median of alternating rounds\n")

    clip = real_clips(1, seed=3)[0]
    single = bench_single_clip(classifiers, clip, rounds=args.rounds, number=args.number)
    plain_best = single["whole"]["plain: librosa + PyTorch"]["best"]
    rows = []
    for name, r in {**single["whole"], **single["breakdown"]}.items():
        ratio = f"{plain_best / r['best']:.1f}x" if name in single["whole"] and not name.startswith("plain") else ""
        rows.append([name, f"{r['best'] * 1e3:.3f}", f"{r['median'] * 1e3:.3f}", ratio])
    print("1. one clip (1 s) -> probabilities")
    print(table(rows, ["", "best ms", "median ms", "vs plain"]))
    print("max |difference| from the plain approach:",
          ", ".join(f"{k} {v:.1g}" for k, v in single["max_abs_difference_vs_plain"].items()))

    with torch.inference_mode():
        frames_one = classifiers["torch"].log_mel(torch.from_numpy(clip[None])).numpy()
    # ONNX Runtime at every batch size here (the backend itself hands batches > ONNX_MAX_BATCH to PyTorch)
    sweep = {"torch": classifiers["torch"]}
    if "onnx" in classifiers:
        sweep["onnx"] = Classifier(checkpoint, device="cpu", backend="onnx", onnx_max_batch=1 << 30)
        sweep["int8"] = classifiers["int8"]  # runs every batch size in ONNX Runtime already
    batches = bench_batch_sizes(sweep, frames_one, rounds=max(3, args.rounds - 2))
    rows = []
    for batch, r in batches.items():
        row = [str(batch)] + [f"{r[name]['best'] * 1e3:.3f}" for name in sweep]
        if "onnx" in r:
            row.append(f"{r['torch']['best'] / r['onnx']['best']:.2f}")
        rows.append(row)
    print(f"\n2. model only, ms per clip by batch size (the ONNX backend serves batches <= {ONNX_MAX_BATCH})")
    print(table(rows, ["batch", *[f"{n} ms/clip" for n in sweep]] + (["torch/onnx"] if "onnx" in sweep else [])))

    audio = stream_audio(args.stream_seconds, checkpoint.feature_config.sample_rate)
    live = {name: bench_stream(c, audio, hop=args.hop) for name, c in classifiers.items()}
    live_plain = bench_stream_plain(classifiers["torch"], audio[: round(min(10.0, args.stream_seconds) * 16000)],
                                    hop=args.hop)
    rows = [["plain: librosa + PyTorch per hop", f"{live_plain['compute_ms']['median']:.3f}",
             f"{live_plain['compute_ms']['p90']:.3f}", "", f"{100 * live_plain['cpu_share_of_one_core']:.1f}%"]]
    for name, r in live.items():
        rows.append([f"speechrnn streaming, {name} backend", f"{r['compute_ms']['median']:.3f}",
                     f"{r['compute_ms']['p90']:.3f}", f"{r['push_ms_per_step']:.3f}",
                     f"{100 * r['cpu_share_of_one_core']:.1f}%"])
    print(f"\n3. live listening, hop {args.hop * 1000:.0f} ms, {args.stream_seconds:.0f} s of speech pushed in 20 ms "
          "blocks")
    print(table(rows, ["", "compute median ms", "p90 ms", "push ms/hop", "CPU of one core"]))

    best = single["whole"].get("speechrnn, onnx backend", single["whole"]["speechrnn, torch backend"])
    fastest_live = live.get("onnx", live["torch"])
    goals = {  # issue 4 (one clip) and issue 6 (per hop, share of one core while listening)
        "single_clip_ms": {"value": best["best"] * 1e3, "goal_max": 2.0},
        "per_hop_compute_ms_median": {"value": fastest_live["compute_ms"]["median"], "goal_max": 2.0},
        "live_cpu_share": {"value": fastest_live["cpu_share_of_one_core"], "goal_max": 0.10},
    }
    if NO_TORCH in live:  # what `speechrnn classify` and `listen` run (the app runs the onnx backend above)
        goals["single_clip_ms_no_torch"] = {
            "value": single["whole"][f"speechrnn, {NO_TORCH} backend"]["best"] * 1e3, "goal_max": 2.0}
        goals["per_hop_compute_ms_median_no_torch"] = {
            "value": live[NO_TORCH]["compute_ms"]["median"], "goal_max": 2.0}
    print("\ngoals (default backend):", "; ".join(
        f"{k} {v['value']:.3g} ({'met' if v['value'] <= v['goal_max'] else 'NOT met'}, goal <= {v['goal_max']:g})"
        for k, v in goals.items()))
    if "int8" in live:
        one_clip = single["whole"]["speechrnn, int8 backend"]["best"] * 1e3
        print(f"int8 option (--backend int8): one clip {one_clip:.3f} ms, "
              f"per hop {live['int8']['compute_ms']['median']:.3f} ms")
    result = {
        "model": str(path),
        "random_weights_note": note,
        "model_config": mc.to_dict(),
        "parameters": count_parameters(classifiers["torch"].model),
        "threads": 1,
        "single_clip_seconds": single,
        "model_seconds_per_clip_by_batch": batches,
        "onnx_max_batch": ONNX_MAX_BATCH,
        "live": {"hop_seconds": args.hop, "backends": live, "plain": live_plain},
        "goals": goals,
        "environment": environment(),
    }
    print(f"wrote {write_results('latency', result, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

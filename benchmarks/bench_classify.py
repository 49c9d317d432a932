"""Throughput of ``speechrnn classify`` on a folder of ~15,000 one-second clips, start-up included.

Times, on this machine:

1. the whole command, as a user runs it, in a fresh process each time::

       speechrnn classify DIR -r --format csv --output /dev/null --quiet --model MODEL

2. a plain per-file loop over a subset of the same files (``librosa.load``, librosa log-mel,
   the same model at batch 1 on one torch thread), the way a first script would do it; its
   rate excludes its own start-up, which flatters it.

The two alternate (command, loop, command, loop, ...) so that both see the same load on a shared
machine; the speed-up is reported best-vs-best, median-vs-median and in CPU time per clip.
Before them, one checked run (every file gets a record, none fails) and one more with
``--backend torch``, whose labels and scores are compared with the default path's (on the CPU:
ONNX Runtime without PyTorch, :mod:`speechrnn.onnx_classifier`).

The folder (real Speech Commands clips converted to WAV) is built once outside the repository by
:mod:`make_folder`. Without ``--model`` (or when the default model is not trained yet) the model is
one of the planned size with **random weights, for timing only**: its labels are meaningless.

Usage::

    python benchmarks/bench_classify.py [--model FILE] [--repeats 3] [--loop-files 300]

Prints a table and writes ``benchmarks/results/classify.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_folder import DEFAULT_DEST, DEFAULT_SOURCE, build_folder  # noqa: E402

PLANNED = {"cell": "gru", "hidden_size": 128, "num_layers": 2, "conv_channels": 64, "conv_stride": 2,
           "pooling": "attention", "n_classes": 10}


def random_planned_model(path: Path) -> Path:
    """Save a model of the planned default size with random weights (timing only)."""
    import torch

    from speechrnn.checkpoint import save_checkpoint
    from speechrnn.features import FeatureConfig
    from speechrnn.model import ModelConfig, SpeechRNN

    if path.exists():
        return path
    torch.manual_seed(0)
    model = SpeechRNN(ModelConfig(**PLANNED)).eval()
    labels = ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "go", "stop"]
    save_checkpoint(path, model=model, feature_config=FeatureConfig(), labels=labels,
                    summary={"note": "random weights of the planned default size, for timing only"})
    return path


def speechrnn_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m speechrnn``."""
    script = Path(sys.executable).with_name("speechrnn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "speechrnn"]


def time_command(argv: list[str]) -> dict[str, float]:
    """Run a command; its wall time and the CPU time (user + sys) of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(argv)}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "status": done.returncode}


def compare_with_torch(command: list[str], rows: list[dict[str, str]], out: Path) -> dict[str, float]:
    """Run the command once more with ``--backend torch`` (PyTorch runs everything) and compare the records.

    The default run on the CPU is ONNX Runtime, without PyTorch once the model's export is cached
    (:mod:`speechrnn.onnx_classifier`); its labels should be PyTorch's, its scores equal within ~1e-5.
    """
    at = command.index("--output")
    time_command([*command[:at], "--output", str(out), *command[at + 2 :], "--backend", "torch"])
    with out.open(encoding="utf-8") as handle:
        reference = list(csv.DictReader(handle))
    if [r["path"] for r in reference] != [r["path"] for r in rows]:
        raise SystemExit("--backend torch gave records for other files")
    return {
        "label_differences": sum(a["label"] != b["label"] for a, b in zip(rows, reference, strict=True)),
        "max_score_difference": max(abs(float(a["score"]) - float(b["score"]))
                                    for a, b in zip(rows, reference, strict=True)),
    }


def plain_loop(files: list[str], model_path: Path) -> dict[str, float]:
    """The baseline: librosa.load, librosa log-mel, the model at batch 1, one file at a time."""
    import librosa
    import numpy as np
    import torch

    from speechrnn.checkpoint import load_checkpoint
    from speechrnn.features import fit_clip, log_mel_librosa

    torch.set_num_threads(1)
    checkpoint = load_checkpoint(model_path)
    model = checkpoint.build_model()
    cfg = checkpoint.feature_config

    def one(path: str) -> int:
        audio, _ = librosa.load(path, sr=cfg.sample_rate, mono=True)
        frames = log_mel_librosa(fit_clip(audio[: cfg.clip_samples], cfg.clip_samples), cfg)
        with torch.inference_mode():
            probs = torch.softmax(model(torch.from_numpy(frames)[None]), dim=-1)
        return int(np.argmax(probs.numpy()))

    for path in files[:10]:  # warm-up: librosa's first calls compile and cache
        one(path)
    cpu0, start = time.process_time(), time.perf_counter()
    for path in files:
        one(path)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"files": len(files), "wall_s": wall, "cpu_s": cpu, "clips_per_s": len(files) / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model file (default: a random-weight model of the planned size)")
    parser.add_argument("--folder", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--count", type=int, default=15000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--loop-files", type=int, default=300)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                        help="extra arguments for speechrnn classify (e.g. --workers 1)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "classify.json")
    args = parser.parse_args(argv)

    folder = build_folder(source=args.source, dest=args.folder, count=args.count)
    cache = folder.parent
    random_weights = args.model is None
    model = args.model or random_planned_model(cache / "planned_random.pt")
    files = sorted(str(p) for p in folder.rglob("*.wav"))
    command = [*speechrnn_command(), "classify", str(folder), "-r", "--format", "csv", "--output", os.devnull,
               "--quiet", "--model", str(model), *args.extra]

    # one checked run: every file gets a record and none fails
    check = cache / "check.csv"
    at = command.index("--output")
    run = time_command([*command[:at], "--output", str(check), *command[at + 2 :]])
    with check.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    errors = [r for r in rows if r["error"]]
    if len(rows) != len(files) or errors:
        raise SystemExit(f"check run: {len(rows)} records for {len(files)} files, {len(errors)} errors")
    agreement = compare_with_torch(command, rows, cache / "check_torch.csv")
    # command runs and plain-loop runs alternate, so both see the same machine load
    subset = files[:: max(1, len(files) // args.loop_files)][: args.loop_files]
    runs, loops = [], []
    for _ in range(args.repeats):
        load = os.getloadavg()[0]
        result = time_command(command)
        result["load_before"] = load
        runs.append(result)
        loops.append(plain_loop(subset, model))
    walls = [r["wall_s"] for r in runs]
    best, median = min(walls), statistics.median(walls)
    loop_rates = [lp["clips_per_s"] for lp in loops]
    loop = {"files": len(subset), "runs": loops, "best_clips_per_s": max(loop_rates),
            "median_clips_per_s": statistics.median(loop_rates),
            "cpu_s_per_clip_median": statistics.median(lp["cpu_s"] for lp in loops) / len(subset)}
    summary = {
        "command": " ".join(command),
        "files": len(files),
        "random_weights": random_weights,
        "model": str(model),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor()},
        "runs": runs,
        "check_run": run,
        "torch_backend_agreement": agreement,
        "best_clips_per_s": len(files) / best,
        "median_clips_per_s": len(files) / median,
        "cpu_s_per_clip_median": statistics.median(r["cpu_s"] for r in runs) / len(files),
        "plain_loop": loop,
        "speedup_best": (len(files) / best) / loop["best_clips_per_s"],
        "speedup_median": (len(files) / median) / loop["median_clips_per_s"],
        "speedup_cpu_time": loop["cpu_s_per_clip_median"]
        / (statistics.median(r["cpu_s"] for r in runs) / len(files)),
        "load_average_at_end": os.getloadavg()[0],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    width = shutil.get_terminal_size((100, 20)).columns
    print("=" * min(width, 100))
    print(f"speechrnn classify, {len(files)} one-second WAV clips, whole command (start-up included)")
    if random_weights:
        print("model: random weights of the planned default size -- for timing only, labels are meaningless")
    print(f"{'':28}{'wall s':>10}{'clips/s':>12}{'cpu s':>10}{'load':>8}")
    for i, r in enumerate(runs, 1):
        print(f"{'command run ' + str(i):28}{r['wall_s']:>10.2f}{len(files) / r['wall_s']:>12.0f}"
              f"{r['cpu_s']:>10.2f}{r['load_before']:>8.2f}")
    for i, lp in enumerate(loops, 1):
        print(f"{'plain loop run ' + str(i) + ' (' + str(lp['files']) + ' files)':28}{lp['wall_s']:>10.2f}"
              f"{lp['clips_per_s']:>12.0f}{lp['cpu_s']:>10.2f}")
    print(f"--backend torch on the same files: {agreement['label_differences']} labels differ, "
          f"scores within {agreement['max_score_difference']:.1g}")
    print(f"speed-up over the plain loop: {summary['speedup_best']:.1f}x best vs best, "
          f"{summary['speedup_median']:.1f}x median vs median, {summary['speedup_cpu_time']:.1f}x in CPU time per clip")
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

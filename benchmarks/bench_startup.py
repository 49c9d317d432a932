"""Start-up: ``speechrnn classify`` on one file, the whole command in a fresh process.

Three ways, alternating round by round so they share the machine's load:

- ``first run``: an empty ONNX cache (a private ``SPEECHRNN_CACHE``, emptied before each run), as
  right after installing: PyTorch loads the model file, exports it to ONNX, checks the export and
  caches it;
- ``later runs``: the same cache kept, so the model loads without PyTorch
  (:mod:`speechrnn.onnx_classifier`: numpy features, ONNX Runtime);
- ``--backend torch``: PyTorch runs everything (what every run cost before the torch-free path).

Each run is checked to give the same label. Also reported: whether ``later runs`` imported torch.

Usage::

    python benchmarks/bench_startup.py [--model FILE] [--file AUDIO] [--rounds 5] [--out JSON]

Prints a table and writes ``benchmarks/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import benchmark_model, environment, table, write_results  # noqa: E402

FIXTURE = HERE.parent / "tests" / "fixtures" / "speech_commands" / "right" / "28ce0c58_nohash_3.flac"


def run_once(model: Path, audio: Path, cache: Path, *, backend: str) -> tuple[float, str, bool]:
    """Seconds for one ``speechrnn classify`` process, its label, and whether it imported torch."""
    script = (
        "import json, sys\n"
        "from speechrnn.cli import main\n"
        f"status = main(['classify', {str(audio)!r}, '--model', {str(model)!r}, '--backend', {backend!r}, "
        "'--format', 'json', '--quiet'])\n"
        "sys.stderr.write(json.dumps({'torch': 'torch' in sys.modules}) + '\\n')\n"
        "sys.exit(status)\n"
    )
    env = {**os.environ, "SPEECHRNN_CACHE": str(cache), "PYTHONPATH": str(HERE.parent)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: speechrnn classify failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    label = json.loads(done.stdout)[0]["label"]
    imported = json.loads(done.stderr.strip().splitlines()[-1])["torch"]
    return seconds, label, imported


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--file", default=str(FIXTURE), help="the audio file classified (default: a test fixture)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each way (default: 5)")
    parser.add_argument("--out", help="JSON file (default: benchmarks/results/startup.json)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    model, note = benchmark_model(args.model)
    audio = Path(args.file)
    if not audio.is_file():
        parser.error(f"no such file: {audio}")
    ways = ("first run", "later runs", "--backend torch")
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    labels: set[str] = set()
    torch_free = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        kept, fresh = Path(tmp) / "kept", Path(tmp) / "fresh"
        run_once(model, audio, kept, backend="auto")  # fills the kept cache
        for _ in range(args.rounds):
            shutil.rmtree(fresh, ignore_errors=True)
            for way, cache, backend in ((ways[0], fresh, "auto"), (ways[1], kept, "auto"), (ways[2], kept, "torch")):
                elapsed, label, imported = run_once(model, audio, cache, backend=backend)
                seconds[way].append(elapsed)
                labels.add(label)
                if way == ways[1]:
                    torch_free.append(not imported)
    if len(labels) != 1:
        raise SystemExit(f"error: the ways gave different labels: {sorted(labels)}")
    rows = [[way, f"{min(seconds[way]):.2f}", f"{statistics.median(seconds[way]):.2f}"] for way in ways]
    print(table(rows, ["speechrnn classify, one file", "best s", "median s"]))
    print(f"label {labels.pop()}; later runs without torch: {all(torch_free)}")
    if note:
        print(note)
    results = {
        "environment": environment(),
        "model": str(model),
        "model_note": note,
        "file": str(audio),
        "rounds": args.rounds,
        "seconds": seconds,
        "best": {way: min(values) for way, values in seconds.items()},
        "median": {way: statistics.median(values) for way, values in seconds.items()},
        "later_runs_without_torch": all(torch_free),
    }
    path = write_results("startup", results, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Start-up of the desktop app: from launching the process to the window shown and the model loaded.

Each start is a fresh process that opens the real window (``gui.main_window.MainWindow``, Qt
offscreen unless a display is set, with a private settings file) with the model on ``--device
auto``, as ``speechrnn-gui --model FILE`` does, and waits until the model is loaded. Three ways,
alternating round by round so they share the machine's load:

- ``first start``: an empty ONNX cache (a private ``SPEECHRNN_CACHE``, emptied before each run), as
  right after installing: PyTorch loads the model file, exports it to ONNX, checks and caches it;
- ``later starts``: the same cache kept, so the model loads without PyTorch
  (:func:`speechrnn.onnx_classifier.load_classifier`: numpy features, ONNX Runtime);
- ``SPEECHRNN_BACKEND=torch``: PyTorch loads and runs the model (what every start cost before).

Also reported: whether ``later starts`` imported torch, and the backend each way ran.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_app_startup.py [--model FILE] [--rounds 5] [--out JSON]

Prints a table and writes ``benchmarks/results/app_startup.json``.
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

#: Runs in the child process: opens the window, waits for the model, prints when each step ended.
CHILD = """
import json, sys, time
from PySide6.QtCore import QSettings
from gui.app import create_application, process_events_until
from gui.main_window import MainWindow
app = create_application([])
window = MainWindow(settings=QSettings(sys.argv[2], QSettings.Format.IniFormat), model_path=sys.argv[1],
                    compute_device="auto")
window.show()
app.processEvents()
shown = time.time()
process_events_until(app, lambda: window.classifier is not None or bool(window.last_error), 300.0)
loaded = time.time()
result = {"shown": shown, "loaded": loaded, "torch": "torch" in sys.modules, "error": window.last_error,
          "backend": None if window.classifier is None else window.classifier.backend,
          "classifier": type(window.classifier).__name__}
window.close()
print(json.dumps(result))
"""


def start_once(model: Path, cache: Path, settings: Path, *, backend: str) -> dict[str, object]:
    """One start of the app in a fresh process: seconds to the window shown and to the model loaded."""
    env = {**os.environ, "SPEECHRNN_CACHE": str(cache), "PYTHONPATH": str(HERE.parent), "SPEECHRNN_BACKEND": backend}
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    launched = time.time()
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), str(settings)], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: the app failed to start (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    if child["classifier"] == "NoneType":
        raise SystemExit(f"error: the app did not load {model}: {child['error'] or 'timed out'}")
    return {"window_shown": child["shown"] - launched, "model_loaded": child["loaded"] - launched,
            "torch": child["torch"], "backend": child["backend"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--rounds", type=int, default=5, help="starts of each way (default: 5)")
    parser.add_argument("--out", help="JSON file (default: benchmarks/results/app_startup.json)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    model, note = benchmark_model(args.model)
    ways = ("first start", "later starts", "SPEECHRNN_BACKEND=torch")
    starts: dict[str, list[dict[str, object]]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory(prefix="bench-app-startup-") as tmp:
        kept, fresh, settings = Path(tmp) / "kept", Path(tmp) / "fresh", Path(tmp) / "settings.ini"
        start_once(model, kept, settings, backend="auto")  # fills the kept cache
        for _ in range(args.rounds):
            shutil.rmtree(fresh, ignore_errors=True)
            for way, cache, backend in ((ways[0], fresh, "auto"), (ways[1], kept, "auto"), (ways[2], kept, "torch")):
                starts[way].append(start_once(model, cache, settings, backend=backend))

    def seconds(way: str, key: str) -> list[float]:
        return [float(start[key]) for start in starts[way]]  # type: ignore[arg-type]

    rows = [[way, f"{min(seconds(way, 'window_shown')):.2f}", f"{min(seconds(way, 'model_loaded')):.2f}",
             f"{statistics.median(seconds(way, 'model_loaded')):.2f}", str(starts[way][0]["backend"])]
            for way in ways]
    print(table(rows, ["speechrnn-gui --model FILE", "window shown, best s", "model loaded, best s", "median s",
                       "backend"]))
    torch_free = not any(start["torch"] for start in starts[ways[1]])
    print(f"later starts without torch: {torch_free}")
    if note:
        print(note)
    results = {
        "environment": environment(),
        "model": str(model),
        "model_note": note,
        "rounds": args.rounds,
        "starts": starts,
        "best": {way: {key: min(seconds(way, key)) for key in ("window_shown", "model_loaded")} for way in ways},
        "median": {way: {key: statistics.median(seconds(way, key)) for key in ("window_shown", "model_loaded")}
                   for way in ways},
        "later_starts_without_torch": torch_free,
    }
    path = write_results("app_startup", results, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

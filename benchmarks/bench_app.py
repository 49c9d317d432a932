"""The desktop app while it listens: per-hop compute on its listening thread and the process's CPU use.

Opens the real window (``gui.main_window.MainWindow``, Qt offscreen unless a display is set),
loads the model, and listens for ``--seconds`` to the committed command clips looped in real time
through the microphone interface (``FileSource``), as ``scripts/screenshot.py`` does. Reports the
median per-hop compute the status bar shows ("Inference: … ms/hop", features + model on the
listening thread), the process CPU time over wall time (painting the spectrogram, the bars and the
level at ~30 frames a second included), the frames painted and the dropped blocks; and the
process's CPU use with the window open but not listening, before listening and after it stopped
(``--idle-seconds`` each: nothing changes on screen then, so nothing should be painted). Like the app,
the script leaves importing torch and loading the model to the window's worker threads.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_app.py [--model FILE] [--seconds 10]

Prints one line and writes ``benchmarks/results/app.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import environment, fixture_commands, write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped default model)")
    parser.add_argument("--seconds", type=float, default=10.0, help="listening time (default 10)")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="window open, not listening, before and after (default 5)")
    parser.add_argument("--out", help="JSON output (default benchmarks/results/app.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QSettings, QTimer

    from gui.app import create_application, process_events_until
    from gui.main_window import MainWindow
    from speechrnn import default_model_path
    from speechrnn.microphone import FileSource, InputDevice

    model = Path(args.model) if args.model else default_model_path()
    audio = fixture_commands(sample_rate=16000)
    device = InputDevice(index=0, name="command clips", channels=1, default_samplerate=16000.0, is_default=True)
    app = create_application([])
    with tempfile.TemporaryDirectory() as folder:
        settings = QSettings(str(Path(folder) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(
            settings=settings, model_path=model, compute_device="cpu", device_lister=lambda refresh: [device],
            source_factory=lambda dev, rate: FileSource(audio, sample_rate=rate, realtime=True, loop=True),
        )
        window.show()
        if not process_events_until(app, lambda: window.classifier is not None or bool(window.last_error), 60.0) \
                or window.classifier is None:
            print(f"bench_app: the model did not load: {window.last_error or 'timed out'}", file=sys.stderr)
            window.close()
            return 1
        def idle_for(seconds: float) -> tuple[float, float]:
            """Wall and process CPU seconds of ``seconds`` of the window's events (timers included)."""
            wall, cpu = time.perf_counter(), time.process_time()
            process_events_until(app, lambda: False, seconds)
            return time.perf_counter() - wall, time.process_time() - cpu

        idle_wall, idle_cpu = idle_for(args.idle_seconds)  # open, model loaded, never listened yet
        window.start_listening()
        wall, cpu, paints = time.perf_counter(), time.process_time(), window.paint_count
        QTimer.singleShot(round(args.seconds * 1000), app.quit)
        app.exec()  # the measured span runs under the app's own event loop
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        hops = np.array(window.hop_compute_seconds) * 1e3  # the status bar's last 30 hops
        result = {
            "model": str(model),
            "backend": window.classifier.backend,
            "seconds": wall,
            "per_hop_compute_ms_median": float(np.median(hops)) if hops.size else None,
            "process_cpu_share_of_one_core": cpu / wall,
            "frames_painted_per_second": (window.paint_count - paints) / wall,
            "dropped_blocks": window.dropped_blocks,
            "status_bar": window.status_labels["inference"].text(),
            "idle_before_cpu_share_of_one_core": idle_cpu / idle_wall,
        }
        window.stop_listening()
        process_events_until(app, lambda: not window.is_listening, 10.0)
        stopped_wall, stopped_cpu = idle_for(args.idle_seconds)  # stopped, the last spectrogram still shown
        result["idle_after_cpu_share_of_one_core"] = stopped_cpu / stopped_wall
        window.close()
    result["environment"] = environment()
    print(f"app listening {result['seconds']:.0f} s ({result['backend']} backend): per-hop compute "
          f"{result['per_hop_compute_ms_median']:.2f} ms median, process CPU "
          f"{100 * result['process_cpu_share_of_one_core']:.0f}% of one core, "
          f"{result['frames_painted_per_second']:.0f} frames painted per second, "
          f"{result['dropped_blocks']} dropped blocks; not listening: "
          f"{100 * result['idle_before_cpu_share_of_one_core']:.1f}% before, "
          f"{100 * result['idle_after_cpu_share_of_one_core']:.1f}% after")
    print(f"wrote {write_results('app', result, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

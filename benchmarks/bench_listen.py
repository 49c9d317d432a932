"""The whole ``speechrnn listen`` process in real time: its CPU use while listening, start-up excluded.

``speechrnn listen --file F`` (not ``--fast``) delivers the file through the same audio interface
as a microphone, paced by the wall clock, so the process does what it does on a live input: the
audio blocks, the streaming features and model every hop, the decisions and the output. The file
is the committed command clips with half-second gaps, looped. The command runs twice, for
``--seconds`` and for 5 s; the difference of the two CPU times over the difference of the two
durations is the steady-state share of one core (the import and model-loading cost cancels out).
``bench_streaming.py`` measures the recognizer alone; this measures everything the process does.
With ``--input DEVICE`` it listens to that microphone instead (e.g. the virtual one of
``/work/shared/tools/virtual-mic.sh``: PortAudio's capture thread and the resampling from the
device's rate are then included).

Usage::

    python benchmarks/bench_listen.py [--model FILE] [--backend auto|torch|onnx|int8] [--seconds 25] [--input DEVICE]

Prints one line and writes ``benchmarks/results/listen.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import ROOT, environment, fixture_commands, write_results

SHORT_SECONDS = 5.0


def run_listen(command: list[str], seconds: float) -> dict[str, float]:
    """Run ``command`` with ``--duration seconds``; its wall and CPU seconds and detections."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([*command, "--duration", f"{seconds:g}"], capture_output=True, text=True, env=env,
                          check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"bench_listen: speechrnn listen failed: {last}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": seconds, "wall_s": wall, "cpu_s": cpu, "detections": len(done.stdout.splitlines())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped default model)")
    parser.add_argument("--backend", default="auto", help="as `speechrnn listen --backend` (default auto)")
    parser.add_argument("--seconds", type=float, default=25.0, help="the long run's listening time (default 25)")
    parser.add_argument("--input", metavar="DEVICE", help="listen to this microphone instead of the looped clips")
    parser.add_argument("--out", help="JSON output (default benchmarks/results/listen.json)")
    args = parser.parse_args(argv)
    if not args.seconds > SHORT_SECONDS:
        parser.error(f"--seconds must be more than {SHORT_SECONDS:g}")

    import soundfile as sf


    audio = fixture_commands(sample_rate=16000)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "commands.wav"
        sf.write(path, np.tile(audio, int(np.ceil(args.seconds * 16000 / audio.size)) + 1), 16000)
        source = ["--input", args.input] if args.input else ["--file", str(path)]
        command = [sys.executable, "-m", "speechrnn", "listen", *source, "--format", "jsonl", "--backend", args.backend]
        if args.model:
            command += ["--model", args.model]
        short = run_listen(command, SHORT_SECONDS)
        long = run_listen(command, args.seconds)
    share = (long["cpu_s"] - short["cpu_s"]) / (long["seconds"] - short["seconds"])
    result = {
        "model": args.model or "default",
        "backend": args.backend,
        "input": args.input or "looped command clips (--file, paced in real time)",
        "runs": [short, long],
        "steady_cpu_share_of_one_core": share,
        "start_up_cpu_s": short["cpu_s"] - share * short["seconds"],
        "goal_cpu_share_max": 0.10,
        "environment": environment(),
    }
    print(f"speechrnn listen in real time ({args.backend} backend, {result['input']}): {100 * share:.1f}% of one "
          "core while listening "
          f"(whole process, start-up excluded; start-up {result['start_up_cpu_s']:.1f} s of CPU); "
          f"{long['detections']} detections in {args.seconds:g} s")
    print(f"wrote {write_results('listen', result, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

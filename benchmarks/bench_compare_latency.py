"""One-clip latency (features + model, one CPU thread) of several model files, timed in turn.

Each model classifies the same real one-second clip (at its own sample rate) through
:class:`speechrnn.inference.Classifier` on the CPU, as ``speechrnn classify`` and the live path do
(ONNX Runtime when it is installed). The models' rounds alternate, so they share the machine's
load and the comparison holds on a busy or slow host; use ``bench_latency.py`` for one model's
full picture (breakdown, batch sizes, live path).

Usage::

    python benchmarks/bench_compare_latency.py [NAME=]MODEL.pt [[NAME=]MODEL.pt ...] [--rounds 7]

Prints a table and writes ``benchmarks/results/compare_latency.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import environment, real_clips, table, time_interleaved, write_results


def parse_model(text: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (then the name is the path; an existing file's name may hold "=") -> (name, path)."""
    name, sep, path = text.partition("=")
    return (name, path) if sep and name and path and not Path(text).is_file() else (text, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_compare_latency", description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="[NAME=]MODEL", help="model files to compare")
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds (default 7)")
    parser.add_argument("--number", type=int, default=40, help="calls per round (default 40)")
    parser.add_argument("--out", help="JSON output (default benchmarks/results/compare_latency.json)")
    args = parser.parse_args(argv)

    import torch

    from speechrnn.errors import SpeechRNNError
    from speechrnn.inference import Classifier

    torch.set_num_threads(1)
    pairs = [parse_model(text) for text in args.models]
    repeated = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
    if repeated:  # a second model under the same name would replace the first unseen
        parser.error(f"each model needs its own name; given more than once: {', '.join(repeated)}")
    models = dict(pairs)
    classifiers = {}
    for name, path in models.items():
        try:
            classifiers[name] = Classifier.from_file(path, device="cpu")
        except (OSError, SpeechRNNError) as exc:  # the library's errors already name the file
            parser.error(str(exc) if path in str(exc) else f"{path}: {exc}")
    calls = {}
    for name, classifier in classifiers.items():
        clip = real_clips(1, sample_rate=classifier.feature_config.sample_rate, seed=1)[:1]
        calls[name] = lambda c=classifier, x=clip: c.probabilities(x)
    with torch.inference_mode():
        timing = time_interleaved(calls, number=args.number, rounds=args.rounds)
    rows = []
    results = {}
    for name, classifier in classifiers.items():
        results[name] = {
            "model": models[name],
            "model_config": classifier.model_config.to_dict(),
            "backend": classifier.backend,
            "best_ms": round(timing[name]["best"] * 1e3, 3),
            "median_ms": round(timing[name]["median"] * 1e3, 3),
        }
        rows.append([name, classifier.backend, f"{results[name]['best_ms']:.2f}", f"{results[name]['median_ms']:.2f}"])
    print(table(rows, ["model", "backend", "best ms", "median ms"]))
    out = write_results(
        "compare_latency",
        {"threads": 1, "rounds": args.rounds, "number": args.number, "models": results, "environment": environment()},
        args.out,
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Teach-a-word figures on the shipped model: new-word accuracy, built-in accuracy before/after, time.

Teaches "computer" (10 espeak-ng takes of one synthetic speaker + 6 s of room noise) and "marvin"
(10 real Speech Commands clips of a word the default model never trained on), then measures the
new word on held-out and fresh takes and the built-in commands on real test-split clips (the first
80 testing-split clips of each of the 8 commands, speakers never trained on). The learning time is
the wall time of :func:`training.finetune.finetune`; the seeds are fixed, so the accuracies repeat.

Usage::

    python benchmarks/bench_teach_word.py [--base MODEL] [--data DIR] [--work DIR] [--out FILE]

Needs ``espeak-ng`` on the PATH and the Speech Commands mini set (``--data``). Prints a table and
writes ``benchmarks/results/teach_word.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import MINI_DATA, environment, table, write_results

SAMPLE_RATE = 16000
PROG = "bench_teach_word"


def espeak(word: str, path: Path, rng: np.random.Generator, voice: str = "en-us") -> np.ndarray:
    """Say ``word`` with espeak-ng at a random pitch and speed, pad, add hiss, write ``path``; the audio."""
    import soundfile as sf

    from speechrnn.audio import load_audio

    tmp = path.with_suffix(".raw.wav")
    pitch, speed = str(int(rng.uniform(35, 65))), str(int(rng.uniform(140, 190)))
    subprocess.run(["espeak-ng", "-v", voice, "-p", pitch, "-s", speed, "-w", str(tmp), word], check=True)
    audio = load_audio(tmp, sample_rate=SAMPLE_RATE)
    tmp.unlink()
    audio = audio / np.abs(audio).max() * rng.uniform(0.2, 0.6)
    pre, post = int(rng.uniform(0.2, 0.5) * SAMPLE_RATE), int(rng.uniform(0.2, 0.5) * SAMPLE_RATE)
    out = np.concatenate([np.zeros(pre), audio, np.zeros(post)]).astype(np.float32)
    out += (rng.standard_normal(out.size) * 10 ** rng.uniform(-3.3, -2.7)).astype(np.float32)
    sf.write(path, out, SAMPLE_RATE)
    return out


def room_noise(path: Path) -> Path:
    """Write 6 s of low-frequency room rumble (seed 0) to ``path``."""
    import soundfile as sf

    room = np.cumsum(np.random.default_rng(0).standard_normal(SAMPLE_RATE * 6)) * 0.0002
    room = (room - np.convolve(room, np.ones(200) / 200, mode="same")).astype(np.float32)
    sf.write(path, room, SAMPLE_RATE)
    return path


def eval_builtin(model_path: Path, data: Path, per_word: int = 80) -> tuple[float, float]:
    """Accuracy on real testing-split clips of the 8 commands, and the share labelled as a new word."""
    from speechrnn.inference import Classifier

    classifier = Classifier.from_file(model_path, device="cpu")
    lines = [line.strip() for line in (data / "testing_list.txt").read_text().splitlines() if line.strip()]
    words = [label for label in classifier.labels if not label.startswith("_")][:8]
    files, truth = [], []
    for word in words:
        selected = [line for line in lines if line.startswith(word + "/")][:per_word]
        files += [data / line for line in selected]
        truth += [classifier.labels.index(word)] * len(selected)
    predicted = np.array([classifier.labels.index(p.label) for p in classifier.classify(files)])
    return float((predicted == np.array(truth)).mean()), float((predicted >= 10).mean())


def fresh_eval(model_path: Path, word: str, clips: list[np.ndarray]) -> float:
    """Share of the one-second ``clips`` the model labels ``word``."""
    from speechrnn.inference import Classifier

    classifier = Classifier.from_file(model_path, device="cpu")
    predicted = classifier.probabilities(np.stack(clips)).argmax(1)
    return float((predicted == classifier.labels.index(word)).mean())


def computer_takes(root: Path) -> tuple[Path, list[np.ndarray]]:
    """10 espeak-ng takes of "computer" under ``root/words_a/computer`` and 30 fresh one-second clips (seed 1)."""
    from speechrnn.trim import trim_to_speech

    rng = np.random.default_rng(1)
    words = root / "words_a"
    shutil.rmtree(words, ignore_errors=True)
    (words / "computer").mkdir(parents=True)
    for i in range(10):
        espeak("computer", words / "computer" / f"take-{i + 1:03d}.wav", rng)
    fresh = []
    for _ in range(30):
        speech = trim_to_speech(espeak("computer", root / "tmp.wav", rng), SAMPLE_RATE)[:SAMPLE_RATE]
        clip = (rng.standard_normal(SAMPLE_RATE) * 10 ** rng.uniform(-3.3, -2.7)).astype(np.float32)
        offset = int(rng.integers(0, SAMPLE_RATE - speech.size + 1))
        clip[offset : offset + speech.size] = speech
        fresh.append(clip)
    return words, fresh


def marvin_takes(root: Path, data: Path) -> Path:
    """The real "marvin" clips of ``data`` copied under ``root/words_b/marvin``."""
    words = root / "words_b"
    shutil.rmtree(words, ignore_errors=True)
    (words / "marvin").mkdir(parents=True)
    for f in sorted((data / "marvin").glob("*.flac")):
        shutil.copy(f, words / "marvin" / f.name)
    return words


def teach(base: Path, words: Path, out: Path, data: Path, noise: Path | None = None) -> dict[str, Any]:
    """Fine-tune ``base`` on ``words``; the learning time, the report's figures and the built-in figures."""
    from training.finetune import finetune

    start, cpu_start = time.perf_counter(), time.process_time()
    report = finetune(base=base, words_dir=words, out=out, noise=noise, overwrite=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    after, fires = eval_builtin(out, data)
    print(report.describe())
    return {
        "learning_time_s": round(seconds, 2),
        "learning_cpu_s": round(cpu_seconds, 2),  # all threads; next to the wall time, it shows the load's share
        "report": report.as_dict(),
        "builtin_accuracy_after": after,
        "new_word_fires_on_builtin": fires,
    }


def check_inputs(data: Path, base: Path) -> str | None:
    """Why the benchmark cannot run (one line), or None."""
    if not (data / "testing_list.txt").is_file() or not sorted((data / "marvin").glob("*.flac")):
        return f"{data} is not the Speech Commands mini set (no testing_list.txt or marvin/*.flac); pass --data DIR"
    if shutil.which("espeak-ng") is None:
        return "espeak-ng is not on the PATH (it speaks the 'computer' takes); install it, e.g. apt install espeak-ng"
    if not base.is_file():
        return f"{base}: no such model file; pass --base MODEL"
    return None


def pct(value: float | None) -> str:
    """``0.975`` -> ``97.5%``; None -> ``-``."""
    return "-" if value is None else f"{100 * value:.1f}%"


def run(base: Path, data: Path, root: Path) -> dict[str, Any]:
    """Both words taught to ``base`` (given a rehearsal bank first if it has none), working in ``root``."""
    from speechrnn.checkpoint import load_checkpoint
    from training.finetune import add_rehearsal_bank

    banked, bank_seconds = base, None
    if "rehearsal_embeddings" not in load_checkpoint(base).extras:
        banked = root / "banked.pt"
        start = time.perf_counter()
        add_rehearsal_bank(base, data, banked, per_class=200, heldout_per_class=100, progress=False)
        bank_seconds = round(time.perf_counter() - start, 2)
        print(f"bank built in {bank_seconds:.1f}s")
    before, _ = eval_builtin(banked, data)
    print(f"base: built-in accuracy on testing clips {pct(before)}")

    words_a, fresh = computer_takes(root)
    noise = room_noise(root / "room.wav")
    computer = teach(banked, words_a, root / "out_a.pt", data, noise=noise)
    computer["fresh_takes_accuracy"] = fresh_eval(root / "out_a.pt", "computer", fresh)
    computer["fresh_takes"] = len(fresh)
    computer["takes"] = "10 espeak-ng takes of one voice (en-us, seed 1) + 6 s of room noise (seed 0)"

    words_b = marvin_takes(root, data)
    marvin = teach(banked, words_b, root / "out_b.pt", data)
    marvin["takes"] = f"{len(list((words_b / 'marvin').iterdir()))} real Speech Commands clips ({data / 'marvin'})"
    return {
        "base_model": str(base),
        "bank_built_s": bank_seconds,
        "data": str(data),
        "builtin_eval": "first 80 testing-split clips of each of the 8 commands",
        "builtin_accuracy_before": before,
        "words": {"computer": computer, "marvin": marvin},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="model to extend (default: the shipped default model)")
    parser.add_argument("--data", type=Path, default=MINI_DATA, help=f"Speech Commands mini set (default {MINI_DATA})")
    parser.add_argument("--work", type=Path, help="folder for the takes and new models (default: a temporary one)")
    parser.add_argument("--out", help="JSON output (default benchmarks/results/teach_word.json)")
    args = parser.parse_args(argv)

    from speechrnn import default_model_path

    base = args.base or default_model_path()
    problem = check_inputs(args.data, base)
    if problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 1
    load_at_start = environment()["load_average_1min"]
    with tempfile.TemporaryDirectory(prefix="teach-bench-") as temporary:
        root = args.work or Path(temporary)
        root.mkdir(parents=True, exist_ok=True)
        result = run(base, args.data, root)
    result["environment"] = {**environment(), "load_average_1min_at_start": load_at_start}
    rows = [
        [name, f"{r['learning_time_s']:.1f} s", pct(r["report"]["new_word_accuracy"]),
         pct(r.get("fresh_takes_accuracy")),
         f"{pct(result['builtin_accuracy_before'])} -> {pct(r['builtin_accuracy_after'])}",
         pct(r["new_word_fires_on_builtin"])]
        for name, r in result["words"].items()
    ]
    print(table(rows, ["new word, 10 takes", "learning", "held-out", "fresh", "built-in before -> after", "fires"]))
    print(f"wrote {write_results('teach_word', result, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does a taught word fire on other words said in the takes' own voice, and does ``--others`` stop it?

Teaches "computer" from 10 espeak-ng takes of one voice (``en-us+f3``, speeds 120-160, two
pitches) onto the shipped model three times: without recordings of other words, with 12 and
with 24 other words in the same voice (``--others``). Each model then classifies 18 fresh clips
of six other words in that voice (banana, cat, doctor, hello, monkey, window; three speeds), three
fresh "computer" clips in other voices, and the eight commands in the takes' voice. Everything is
made by espeak-ng at fixed settings and the seeds are fixed, so the counts repeat.

Usage::

    python benchmarks/bench_teach_others.py [--base MODEL] [--work DIR] [--out FILE]

Needs ``espeak-ng`` on the PATH. Prints a table and writes ``benchmarks/results/teach_others.json``
(or ``--out``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import environment, table, write_results

PROG = "bench_teach_others"
VOICE = "en-us+f3"
WORD = "computer"
OTHER_WORDS = (
    "table", "orange", "music", "paper", "garden", "river", "yellow", "morning", "seven", "bottle", "pencil",
    "summer", "potato", "tomato", "umbrella", "elephant", "holiday", "camera", "chocolate", "animal", "family",
    "hospital", "important", "telephone",
)  # fmt: skip
FRESH_WORDS = ("banana", "cat", "doctor", "hello", "monkey", "window")
COMMANDS = ("yes", "no", "up", "down", "left", "right", "go", "stop")


def say(text: str, path: Path, *, voice: str = VOICE, speed: int = 140, pitch: int = 50) -> Path:
    """espeak-ng's rendering of ``text`` written to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text], check=True)
    return path


def make_audio(work: Path) -> dict[str, Any]:
    """The takes, the other words, and the fresh clips to classify; their folders."""
    takes = work / "words"
    for i, (speed, pitch) in enumerate((s, p) for s in (120, 130, 140, 150, 160) for p in (40, 60)):
        say(WORD, takes / WORD / f"take-{i:02d}.wav", speed=speed, pitch=pitch)
    others = [say(w, work / "others" / f"{i:02d}-{w}.wav") for i, w in enumerate(OTHER_WORDS)]
    fresh = [(w, say(w, work / "fresh" / f"{w}-{s}.wav", speed=s)) for w in FRESH_WORDS for s in (125, 150, 170)]
    voices = [(WORD, say(WORD, work / "fresh_word" / f"{v}.wav", voice=v, speed=145))
              for v in ("en-us+f3", "en-us+m3", "en+f2")]
    commands = [(c, say(c, work / "commands" / f"{c}.wav")) for c in COMMANDS]
    return {"takes": takes, "others": others, "fresh": fresh, "voices": voices, "commands": commands}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="model to teach (default: the shipped model)")
    parser.add_argument("--work", help="folder for the generated audio and models (default: a temporary one)")
    parser.add_argument("--out", help="JSON results (default benchmarks/results/teach_others.json)")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print(f"{PROG}: espeak-ng is not installed", file=sys.stderr)
        return 2

    from speechrnn.classify import classify_files
    from speechrnn.inference import Classifier
    from training.finetune import finetune

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        audio = make_audio(work)
        rows, results = [], []
        for n_others in (0, 12, 24):
            out = work / f"taught-{n_others}.pt"
            out.unlink(missing_ok=True)
            report = finetune(base=args.base, words_dir=audio["takes"], out=out,
                              others=audio["others"][:n_others] or None, seed=0)
            classifier = Classifier.from_file(out, device="cpu")

            def labels(pairs: list[tuple[str, Path]], model: Classifier = classifier) -> list[str]:
                """As `speechrnn classify --model OUT` labels the files (a word of up to 1.5 s is one clip)."""
                records = classify_files([path for _, path in pairs], classifier=model, workers=0)
                by_path = {record.path: record.label for record in records}
                return [by_path[str(path)] for _, path in pairs]

            fresh = labels(audio["fresh"])
            fired = sorted({w for (w, _), got in zip(audio["fresh"], fresh, strict=True) if got == WORD})
            voices = labels(audio["voices"])
            commands = labels(audio["commands"])
            result = {
                "others": n_others,
                "other_words_firing": sum(got == WORD for got in fresh),
                "other_words": len(fresh),
                "fired_on": fired,
                "word_in_other_voices": sum(got == WORD for got in voices),
                "word_clips": len(voices),
                "commands_right": sum(got == c for (c, _), got in zip(audio["commands"], commands, strict=True)),
                "commands": len(commands),
                "new_word_heldout": report.new_word_accuracy,
                "others_heldout_firing": report.other_false_accept_rate,
                "builtin_before": report.builtin_accuracy_before,
                "builtin_after": report.builtin_accuracy_after,
            }
            results.append(result)
            rows.append([
                str(n_others), f"{result['other_words_firing']}/{result['other_words']} ({', '.join(fired) or '-'})",
                f"{result['word_in_other_voices']}/{result['word_clips']}",
                f"{result['commands_right']}/{result['commands']}",
                "-" if report.other_false_accept_rate is None else f"{100 * report.other_false_accept_rate:.0f}%",
                f"{100 * report.builtin_accuracy_before:.1f}% -> {100 * report.builtin_accuracy_after:.1f}%",
            ])
    print(table(rows, ["--others", "other words -> computer", "computer, other voices", "commands in the voice",
                       "held-out others firing", "built-in (bank)"]))
    path = write_results("teach_others", {"environment": environment(), "voice": VOICE, "word": WORD,
                                          "results": results}, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

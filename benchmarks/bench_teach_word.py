"""Teach-a-word figures on the shipped model: new-word accuracy, built-in accuracy before/after, time.

Teaches "computer" (10 espeak-ng takes of one synthetic speaker + 6 s of room noise) and "marvin"
(10 real Speech Commands clips of a word the default model never trained on), then measures the
new word on held-out and fresh takes and the built-in commands on real test-split clips.

    .venv/bin/python benchmarks/bench_teach_word.py [--base MODEL] [--data DIR] [--work DIR]
"""

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrnn import default_model_path
from speechrnn.audio import load_audio
from speechrnn.checkpoint import load_checkpoint
from speechrnn.inference import Classifier
from speechrnn.trim import trim_to_speech
from training.finetune import add_rehearsal_bank, finetune

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--base", type=Path, default=default_model_path())
parser.add_argument(
    "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/speech_commands_mini"
)
parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="teach-bench-")))
args = parser.parse_args()
DATA = args.data
root = args.work
root.mkdir(parents=True, exist_ok=True)
banked = args.base
if "rehearsal_embeddings" not in load_checkpoint(banked).extras:
    banked = root / "banked.pt"
    t = time.perf_counter()
    add_rehearsal_bank(args.base, DATA, banked, per_class=200, heldout_per_class=100, progress=False)
    print(f"bank built in {time.perf_counter() - t:.1f}s")


def espeak(word, path, rng, voice="en-us"):
    tmp = path.with_suffix(".raw.wav")
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            voice,
            "-p",
            str(int(rng.uniform(35, 65))),
            "-s",
            str(int(rng.uniform(140, 190))),
            "-w",
            str(tmp),
            word,
        ],
        check=True,
    )
    a = load_audio(tmp, sample_rate=16000)
    tmp.unlink()
    a = a / np.abs(a).max() * rng.uniform(0.2, 0.6)
    pre, post = int(rng.uniform(0.2, 0.5) * 16000), int(rng.uniform(0.2, 0.5) * 16000)
    out = np.concatenate([np.zeros(pre), a, np.zeros(post)]).astype(np.float32)
    out += (rng.standard_normal(out.size) * 10 ** rng.uniform(-3.3, -2.7)).astype(np.float32)
    sf.write(path, out, 16000)
    return out


room = np.cumsum(np.random.default_rng(0).standard_normal(16000 * 6)) * 0.0002
room = (room - np.convolve(room, np.ones(200) / 200, mode="same")).astype(np.float32)
sf.write(root / "room.wav", room, 16000)


def eval_builtin(model_path, per_word=80):
    # real clips of the testing split (speakers never trained on), the 8 commands
    c = Classifier.from_file(model_path, device="cpu")
    lines = [line.strip() for line in (DATA / "testing_list.txt").read_text().splitlines() if line.strip()]
    words = [label for label in c.labels if not label.startswith("_")][:8]
    files, truth = [], []
    for w in words:
        sel = [line for line in lines if line.startswith(w + "/")][:per_word]
        files += [DATA / line for line in sel]
        truth += [c.labels.index(w)] * len(sel)
    preds = [p.label for p in c.classify(files)]
    pi = np.array([c.labels.index(p) for p in preds])
    return float((pi == np.array(truth)).mean()), float((pi >= 10).mean())


def fresh_eval(model_path, word, clips):
    c = Classifier.from_file(model_path, device="cpu")
    p = c.probabilities(np.stack(clips)).argmax(1)
    return float((p == c.labels.index(word)).mean())


b_acc, _ = eval_builtin(banked)
print(f"base: built-in accuracy on testing clips {b_acc:.3f}")
# --- word A: one synthetic "user" (espeak-ng) says "computer" 10 times
rng = np.random.default_rng(1)
wdir = root / "words_a"
shutil.rmtree(wdir, ignore_errors=True)
(wdir / "computer").mkdir(parents=True)
for i in range(10):
    espeak("computer", wdir / "computer" / f"take-{i + 1:03d}.wav", rng)
fresh = []
for _ in range(30):
    a = espeak("computer", root / "tmp.wav", rng)
    w = trim_to_speech(a, 16000)[:16000]
    clip = (rng.standard_normal(16000) * 10 ** rng.uniform(-3.3, -2.7)).astype(np.float32)
    off = int(rng.integers(0, 16000 - w.size + 1))
    clip[off : off + w.size] = w
    fresh.append(clip)
for label, dirp, word, noise in (("computer (espeak, 1 voice)", wdir, "computer", root / "room.wav"),):
    out = root / "out_a.pt"
    t = time.perf_counter()
    rep = finetune(base=banked, words_dir=dirp, out=out, noise=noise, overwrite=True)
    el = time.perf_counter() - t
    a_acc, fire = eval_builtin(out)
    print(f"[{label}] {el:.1f}s\n" + rep.describe())
    print(
        f"  independent: fresh takes {fresh_eval(out, word, fresh):.3f}; "
        f"built-in testing clips {b_acc:.3f} -> {a_acc:.3f}; new word fires on built-in clips {fire:.3f}"
    )
# --- word B: real Speech Commands 'marvin' clips (held-out word, different speakers)
wdir = root / "words_b"
shutil.rmtree(wdir, ignore_errors=True)
for word in ("marvin",):
    (wdir / word).mkdir(parents=True)
    for f in sorted((DATA / word).glob("*.flac")):
        shutil.copy(f, wdir / word / f.name)
out = root / "out_b.pt"
t = time.perf_counter()
rep = finetune(base=banked, words_dir=wdir, out=out, overwrite=True)
el = time.perf_counter() - t
a_acc, fire = eval_builtin(out)
print(f"[marvin (real clips, {len(list((wdir / 'marvin').iterdir()))} speakers)] {el:.1f}s\n" + rep.describe())
print(f"  independent: built-in testing clips {b_acc:.3f} -> {a_acc:.3f}; new word fires on built-in clips {fire:.3f}")

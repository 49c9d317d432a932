#!/usr/bin/env bash
# The CUDA paths on a machine with an NVIDIA GPU, in one go (CI has no GPU, so this is run by hand):
#   1. the test suite without the Qt tests, where the CUDA-only tests run instead of skipping and
#      "--device auto" picks the GPU;
#   2. `speechrnn classify` with --device cuda against --device cpu on the committed fixture clips
#      and a long recording made of them (labels, scores, detections);
#   3. the streaming benchmark with --device cuda (per-hop compute);
#   4. mixed-precision training (optim.amp auto: bf16 where the GPU has it) for a few epochs on a
#      Speech Commands folder, then `training.evaluate --device cuda` on its test split.
# Usage: scripts/cuda_check.sh DATA_FOLDER OUT_FOLDER [EPOCHS]   (PYTHON=... picks the interpreter)
# Every step writes its log to OUT_FOLDER; the last lines printed are the summary.
set -uo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/cuda_check.sh DATA_FOLDER OUT_FOLDER [EPOCHS]}
out=${2:?usage: scripts/cuda_check.sh DATA_FOLDER OUT_FOLDER [EPOCHS]}
epochs=${3:-4}
py=${PYTHON:-python3}
device=${CUDA_CHECK_DEVICE:-cuda}  # cpu only to rehearse the script on a machine without a GPU
mkdir -p "$out"
work=$(mktemp -d)  # the trained model, evaluation report and classification records (logs go to OUT)
trap 'rm -rf "$work"' EXIT
export PYTHONUNBUFFERED=1
summary=()
step() {  # step NAME TIMEOUT_S COMMAND...: run with a time limit, log to OUT/NAME.log, record the status
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    summary+=("$name: exit $rc in $((SECONDS - t0)) s")
    echo "== $name: exit $rc in $((SECONDS - t0)) s"
    tail -n 4 "$out/$name.log"
}

(nvidia-smi -L || true; "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
 "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")') \
    >"$out/machine.log" 2>&1
cat "$out/machine.log"

parallel=()  # pytest-xdist, where installed: 8 test processes
"$py" -c 'import xdist' 2>/dev/null && parallel=(-n 8)
step tests 300 "$py" -m pytest -q -p no:cacheprovider tests --ignore tests/test_gui.py \
    --ignore tests/test_teach_gui.py "${parallel[@]}" -rs

step classify 240 "$py" - "$device" "$work" <<'EOF'
"""classify --device DEVICE against --device cpu: fixture clips and one long recording."""
import json, sys, time
from pathlib import Path
import numpy as np, soundfile as sf
from speechrnn.audio import load_audio
from speechrnn.cli import main

device, out = sys.argv[1], Path(sys.argv[2])
clips = sorted(Path("tests/fixtures/speech_commands").rglob("*.flac"))
parts = []
for clip in clips[:8]:
    parts += [np.zeros(8000, np.float32), load_audio(clip, sample_rate=16000)]
sf.write(out / "long.wav", np.concatenate(parts + [np.zeros(8000, np.float32)]), 16000)
records = {}
for dev in ("cpu", device):
    t0 = time.perf_counter()
    code = main(["classify", "-r", "tests/fixtures/speech_commands", str(out / "long.wav"), "--device", dev,
                 "-f", "json", "-q", "-j", "0", "-o", str(out / f"classify_{dev}.json")])
    records[dev] = json.loads((out / f"classify_{dev}.json").read_text())
    print(f"{dev}: exit {code}, {len(records[dev])} files, {time.perf_counter() - t0:.2f} s")
cpu, other = records["cpu"], records[device]
same = sum(a["label"] == b["label"] for a, b in zip(cpu, other, strict=True))
diff = max(abs(a["score"] - b["score"]) for a, b in zip(cpu, other, strict=True) if a["score"] is not None)
long_cpu, long_dev = (
    [(d["label"], round(d["time"], 1)) for r in recs if r["path"].endswith("long.wav") for d in r["detections"]]
    for recs in (cpu, other)
)
print(f"labels equal {same}/{len(cpu)}; largest score difference {diff:.2e}")
print(f"long recording detections cpu {long_cpu}")
print(f"long recording detections {device} {long_dev}")
sys.exit(0 if same == len(cpu) and long_cpu and long_cpu == long_dev and diff < 1e-3 else 1)
EOF

step streaming 120 "$py" benchmarks/bench_streaming.py --device "$device" --backend torch --compute-seconds 30 \
    --seconds 5 --out "$out/streaming_$device.json"

step train 420 "$py" -m training.train --config training/configs/default.toml --data "$data" --out "$work/run" \
    --device "$device" --set "optim.epochs=$epochs" --set 'optim.amp="auto"' --set data.synth_per_word=0 \
    --set data.synth_commands_per_word=0 --set threads=4 --no-resume --quiet
step evaluate 120 "$py" -m training.evaluate "$work/run/best.pt" --data "$data" --split testing \
    --device "$device" --out "$work/eval" --quiet
cp "$work/run/log.csv" "$out/train_log.csv" 2>/dev/null

echo "== summary"
printf '%s\n' "${summary[@]}"
grep -h -E "passed|failed" "$out/tests.log" | tail -n 1
tail -n 3 "$out/train_log.csv" 2>/dev/null
grep -h "^accuracy" "$out/evaluate.log"

#!/usr/bin/env bash
# Set up everything speechrnn needs on a fresh Debian/Ubuntu machine, idempotently:
#   - Debian packages: PortAudio (sounddevice), libsndfile, the Qt runtime libraries, and for tests
#     and tools PulseAudio (virtual microphone), espeak-ng and sox;
#   - a virtual environment in .venv with the CPU build of PyTorch installed first, then the project.
# Usage: scripts/bootstrap.sh            (SPEECHRNN_VENV overrides the venv folder)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SPEECHRNN_VENV:-.venv}
python=${PYTHON:-python3}

packages=(
  python3-venv                                                # python3 -m venv (not in a minimal Debian/Ubuntu)
  libportaudio2 libsndfile1                                   # audio I/O
  libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 'libglib2.0-0|libglib2.0-0t64'
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0
  libxcb-render-util0 libxcb-image0                           # Qt (xcb platform on a desktop)
  pulseaudio pulseaudio-utils libasound2-plugins              # virtual microphone for tests
  espeak-ng sox ffmpeg                                        # speech synthesis, audio tools, MP3/M4A
)
# "a|b": either name will do (Debian 13 / Ubuntu 24.04 renamed some libraries with a t64 suffix)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${packages[@]}"; do
  IFS='|' read -r -a names <<< "$p"
  found=0
  for name in "${names[@]}"; do installed "$name" && found=1 && break; done
  [ "$found" -eq 1 ] || missing+=("${names[0]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/pip" ]; then
  # --clear: a venv left half-made by an earlier failure (no pip) is made again, not reused
  "$python" -m venv --clear "$venv"
fi
# The CPU build of torch first: a plain "torch" requirement would pull a multi-GB CUDA build.
# (On a machine with an NVIDIA GPU, install the CUDA build you want instead before this script.)
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "$venv/bin/pip" install -q torch==2.13.0 || \
    "$venv/bin/pip" install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
# The project (editable) and its dependencies, skipped when nothing they depend on changed since the
# last successful install (a stamp of pyproject.toml in the venv), so a second run starts in seconds.
stamp="$venv/.speechrnn-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c "import speechrnn, gui, training" 2>/dev/null; then
  "$venv/bin/pip" install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

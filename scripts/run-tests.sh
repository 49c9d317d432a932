#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite (Qt offscreen; the virtual-microphone tests
# start PulseAudio themselves and skip with a reason where it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
"${SPEECHRNN_VENV:-.venv}/bin/ruff" check speechrnn gui training tests benchmarks scripts
exec "${SPEECHRNN_VENV:-.venv}/bin/pytest" -q "$@"

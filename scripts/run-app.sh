#!/usr/bin/env bash
# Set up (if needed) and start the desktop app with the shipped default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec "${SPEECHRNN_VENV:-.venv}/bin/speechrnn-gui" "$@"

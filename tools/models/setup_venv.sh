#!/usr/bin/env bash
# Create the model-conversion venv (outside the repository; default /work/convenv or $1).
set -euo pipefail
VENV="${1:-${VIGIL_CONVENV:-$HOME/.cache/vigil-convenv}}"
HERE="$(cd "$(dirname "$0")" && pwd)"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
"$VENV/bin/pip" install -q --no-deps tensorflowjs==4.22.0 tfjs-graph-converter==1.6.3
echo "conversion venv ready: $VENV  (then: $VENV/bin/python -m tools.models.build)"

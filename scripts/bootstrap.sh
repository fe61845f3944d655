#!/usr/bin/env bash
# Idempotent set-up: .venv, torch (CPU build pinned), the package with its extras, and the offline
# assets named as arguments (aliases of metaie_utils/assets.py, e.g. minilm-l6 smollm2-135m news teacher).
# Usage: bash scripts/bootstrap.sh [ASSET ...]
# Environment: PYTHON (interpreter for the venv, default python3), METAIE_VENV (default .venv),
#              METAIE_NO_VENV=1 to install into the current interpreter (Colab: keeps Colab's torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${METAIE_VENV:-.venv}

if [ "${METAIE_NO_VENV:-0}" = "1" ]; then
  PY=$PYTHON
else
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  PY=$VENV/bin/python
fi
PIP="$PY -m pip --disable-pip-version-check"

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[bootstrap] installing torch 2.13.0 (CPU build)"
  $PIP install -q torch==2.13.0
fi

stamp="$VENV/.metaie-installed"
[ "${METAIE_NO_VENV:-0}" = "1" ] && stamp=".cache/.metaie-installed"
mkdir -p "$(dirname "$stamp")"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[bootstrap] installing metaie-utils and its dependencies"
  $PIP install -q -e '.[dev,lab]'
  touch "$stamp"
fi

if [ "$#" -gt 0 ]; then
  "$PY" -m metaie_utils assets install "$@"
fi

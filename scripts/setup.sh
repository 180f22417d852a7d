#!/usr/bin/env bash
# Create .venv and install linecolor with pinned dependencies (constraints.txt pins every transitive package).
# Idempotent: re-running only installs what changed. Needs python3 >= 3.11 and pip's access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and alone: torch==2.13.0 resolves to the local CPU build on these machines (no CUDA download).
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
.venv/bin/linecolor --version

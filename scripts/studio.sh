#!/usr/bin/env bash
# The main job: set up (scripts/setup.sh) and start the web studio with the bundled model on
# http://127.0.0.1:8000/ . Extra arguments go to `linecolor serve` (e.g. --port 9000, --weights DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/linecolor serve "$@"

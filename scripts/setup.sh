#!/usr/bin/env bash
# Creates .venv (once) and installs su4mlc-hf with its test extras into it.
# torch: where the venv has none yet, installs the CPU build pinned by TORCH_SPEC (default torch==2.13.0),
# so pip never pulls a multi-GB CUDA build on its own. GPU users: create .venv with your CUDA torch first,
# or set TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0" with your index), and this script keeps what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
fi
if ! .venv/bin/python -c "import su4mlc_hf, pytest, hypothesis, matplotlib" 2>/dev/null \
   || [ setup.py -nt .venv/.su4mlc-installed ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
  touch .venv/.su4mlc-installed
fi

#!/usr/bin/env bash
# Creates runners/jax/.venv with the JAX runner's pinned dependencies (JAX on CPU + optax).
# Idempotent: does nothing when the venv already holds what requirements.txt pins (the file's
# sha256 is stamped in the venv after a successful install).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if ! [ -x "$venv/bin/python" ] || ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    "$venv/bin/python" -c 'import jax, optax; assert jax.__version__ == "0.10.2", jax.__version__; assert optax.__version__ == "0.2.8", optax.__version__'
    echo "$want" > "$stamp"
    echo "JAX runner environment ready: $venv"
fi

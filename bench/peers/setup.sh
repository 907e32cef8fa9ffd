#!/usr/bin/env bash
# Creates a throwaway Python virtual environment holding JAX (CPU) + optax,
# used only by jax_steps.py for the peer comparison. Nothing here touches the
# Rust workspace. Override the location with EFFBENCH_PEERS_VENV.
set -euo pipefail

VENV="${EFFBENCH_PEERS_VENV:-/tmp/effbench-peers-venv}"

# Pinned so that results from different days compare like with like.
JAX_VERSION="0.10.2"   # jax[cpu] pins jaxlib to the same version
OPTAX_VERSION="0.2.8"

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet \
    "jax[cpu]==${JAX_VERSION}" "optax==${OPTAX_VERSION}"

"$VENV/bin/python" -c 'import jax, optax; print("jax", jax.__version__, "optax", optax.__version__, "backend", jax.default_backend())'
echo "venv ready: $VENV"
echo "run: $VENV/bin/python $(dirname "$0")/jax_steps.py --threads 1"

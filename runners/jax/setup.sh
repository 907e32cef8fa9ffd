#!/usr/bin/env bash
# Creates runners/jax/.venv with the JAX runner's pinned dependencies (JAX on CPU + optax).
#   bash runners/jax/setup.sh           # CPU (what CI and the tests use)
#   bash runners/jax/setup.sh --cuda    # also JAX's CUDA 13 plugin (requirements-cuda.txt), for
#                                       # EFFBENCH_JAX_PLATFORM=cuda on an NVIDIA GPU machine
# Idempotent: does nothing when the venv already holds what the requirements files pin (their
# sha256 is stamped in the venv after a successful install).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
cuda=0
for arg in "$@"; do
    case "$arg" in
        --cuda) cuda=1 ;;
        *) echo "setup.sh: unknown argument $arg (give nothing, or --cuda)" >&2; exit 2 ;;
    esac
done
files=("$here/requirements.txt")
if [ "$cuda" = 1 ]; then
    files+=("$here/requirements-cuda.txt")
fi
want="$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$cuda" = 0 ]; then
    # The CPU stamp is requirements.txt's own hash, as before --cuda existed.
    want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
fi
if ! [ -x "$venv/bin/python" ] || ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$python" -m venv "$venv"
    for f in "${files[@]}"; do
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$f"
    done
    "$venv/bin/python" -c 'import jax, optax; assert jax.__version__ == "0.10.2", jax.__version__; assert optax.__version__ == "0.2.8", optax.__version__'
    if [ "$cuda" = 1 ]; then
        # A CUDA install that cannot see a GPU is reported now, not at the first run.
        EFFBENCH_JAX_PLATFORM=cuda JAX_PLATFORMS=cuda "$venv/bin/python" -c 'import jax; print("JAX CUDA devices:", jax.devices("cuda"))' \
            || echo "warning: the CUDA plugin is installed, but JAX sees no CUDA device here (driver? GPU?)" >&2
    fi
    echo "$want" > "$stamp"
    echo "JAX runner environment ready: $venv"
fi

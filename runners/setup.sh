#!/usr/bin/env bash
# The Python environments the tests use, each pinned and idempotent (re-running does nothing):
#   runners/reference/.venv  onnxruntime (the reference inference runner, the ONNX export
#                            tests), xmlschema and junit-10.xsd (tests/junit_xsd.rs)
#   runners/jax/.venv        JAX + optax on the CPU (the reference training runner)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/reference/setup.sh"
bash "$here/jax/setup.sh"

#!/usr/bin/env bash
# Creates runners/reference/.venv with the reference runner's dependencies (onnxruntime on CPU)
# and the tests' pinned Python packages, and puts junit-10.xsd in .venv/share (see below).
# Idempotent: does nothing when the venv already has the pinned versions and the schema.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if ! [ -x "$venv/bin/python" ] || ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" > "$stamp"
    echo "reference runner environment ready: $venv"
fi

# junit-10.xsd (the JUnit schema of Jenkins' xunit plugin, which pytest ships in its source tree
# as testing/example_scripts/junit-10.xsd), for tests/junit_xsd.rs. It is pytest's file, so it is
# not committed: it is taken from the pinned pytest sdist on PyPI, both checked by sha256.
pytest_version=8.4.2
pytest_sdist_sha256=86c0d0b93306b961d58d62a4db4879f27fe25513d4b969df351abdddb3c30e01
xsd_sha256=a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6
xsd="$venv/share/junit-10.xsd"
if ! [ -f "$xsd" ] || ! echo "$xsd_sha256  $xsd" | sha256sum --check --status; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        "pytest==$pytest_version" -d "$tmp"
    sdist="$tmp/pytest-$pytest_version.tar.gz"
    echo "$pytest_sdist_sha256  $sdist" | sha256sum --check --status \
        || { echo "setup.sh: $sdist does not have the pinned sha256 $pytest_sdist_sha256" >&2; exit 1; }
    member="pytest-$pytest_version/testing/example_scripts/junit-10.xsd"
    tar -xzf "$sdist" -C "$tmp" "$member"
    echo "$xsd_sha256  $tmp/$member" | sha256sum --check --status \
        || { echo "setup.sh: $member does not have the pinned sha256 $xsd_sha256" >&2; exit 1; }
    mkdir -p "$venv/share"
    mv "$tmp/$member" "$xsd"
    echo "junit-10.xsd ready: $xsd"
fi

#!/usr/bin/env bash
# Copies seed inputs from the repository into fuzz/corpus/<target>/ (not committed):
# harness/tests/fuzz_corpus/ (one seed per line), baselines/*.json, the recipes, the runner
# TOMLs, the shipped IDX files cut to their first images, and fuzz/seeds/<target>/ if any.
set -euo pipefail
cd "$(dirname "$0")"
repo=..
c=corpus
mkdir -p $c/result $c/recipe $c/runner_toml $c/protocol $c/ptd $c/idx
copy() { # copy FILE TARGET: one seed named by the file's hash
    local h
    h=$(sha1sum "$1" | cut -c1-16)
    cp "$1" "$2/seed-$h"
}
find $repo/baselines $repo/results -name '*.json' -print0 | while IFS= read -r -d '' f; do copy "$f" $c/result; done
find $repo/models/recipes -name '*.toml' -print0 | while IFS= read -r -d '' f; do copy "$f" $c/recipe; done
find $repo/runners -name '*.toml' -not -path '*/.venv/*' -print0 | while IFS= read -r -d '' f; do copy "$f" $c/runner_toml; done
lines() { # lines FILE TARGET: each non-empty line of FILE a seed
    local i=0
    while IFS= read -r l || [ -n "$l" ]; do
        [ -n "$l" ] || continue
        printf '%s' "$l" >"$2/line-$(basename "$1" .txt)-$i"
        i=$((i + 1))
    done <"$1"
}
lines $repo/harness/tests/fuzz_corpus/protocol.txt $c/protocol
lines $repo/harness/tests/fuzz_corpus/ptd.txt $c/ptd
for f in $repo/models/data/fashion-mnist-subset/*-ubyte.gz; do
    gzip -dc "$f" | head -c $((16 + 784 * 3)) >$c/idx/seed-$(basename "$f" .gz) || true
done
# A small committed corpus, minimized from earlier runs, where there is one.
for t in result recipe runner_toml protocol ptd idx; do
    [ -d seeds/$t ] && cp seeds/$t/* $c/$t/ 2>/dev/null || true
done
for t in result recipe runner_toml protocol ptd idx; do
    echo "seed $t: $(ls $c/$t | wc -l) files"
done

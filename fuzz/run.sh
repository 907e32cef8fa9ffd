#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer) of every parser target, one after another.
#
#   fuzz/run.sh [SECS] [TARGET...]     # SECS per target, default 60; default all six targets
#
# Needs `cargo install cargo-fuzz --locked`. On a stable toolchain RUSTC_BOOTSTRAP=1 lets
# cargo fuzz pass its nightly flags. Runs niced, one build job and one fuzzer process at a
# time. Seeds come from the repository (fuzz/seed.sh) into fuzz/corpus/<target>/, which grows
# as libFuzzer finds new coverage; crashes land in fuzz/artifacts/<target>/, logs in
# fuzz/logs/<target>.log. Per target it prints the executions, the final coverage (`cov:`
# edges, `ft:` features) and the crash, OOM and timeout artifacts; it exits non-zero if any.
# Extra libFuzzer flags: FUZZ_ARGS="-only_ascii=1" fuzz/run.sh 60
set -uo pipefail
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(result recipe runner_toml protocol ptd idx)
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
# No sanitizer: the parsers are safe Rust, and uninstrumented allocation runs several times
# faster; panics, aborts, over-limit RSS and slow inputs are still caught.
san=(--sanitizer none)
limits=(-rss_limit_mb=2048 -max_len=65536 -timeout=10)

./seed.sh >/dev/null
nice -n 19 cargo fuzz build "${san[@]}" || exit 1
mkdir -p logs
summary=()
fail=0
for t in "${targets[@]}"; do
    mkdir -p artifacts/$t
    before=$(ls artifacts/$t | wc -l)
    echo "== $t: ${secs}s" >&2
    # shellcheck disable=SC2086
    nice -n 19 cargo fuzz run "${san[@]}" $t corpus/$t -- "${limits[@]}" \
        -max_total_time="$secs" -print_final_stats=1 ${FUZZ_ARGS:-} >logs/$t.log 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' logs/$t.log | grep -o '[0-9]*$' | tail -1)
    last=$(grep -E '^#[0-9]+' logs/$t.log | grep 'cov:' | tail -1)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    new=$(($(ls artifacts/$t | wc -l) - before))
    if [ "$rc" -ne 0 ] || [ "$new" -gt 0 ]; then
        fail=1
        found=$(ls -t artifacts/$t | head -n "$((new > 0 ? new : 1))" | tr '\n' ' ')
        grep -m1 -E 'panicked|ERROR: libFuzzer|SUMMARY' logs/$t.log >&2
    else
        found=none
    fi
    summary+=("$(printf '%-12s execs %-10s cov %-6s ft %-7s corp %-12s rc %-3s crashes: %s' \
        "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$rc" "$found")")
    echo "${summary[-1]}" >&2
done
echo "== fuzz summary (${secs}s per target; logs in fuzz/logs/, crashes in fuzz/artifacts/)"
printf '%s\n' "${summary[@]}"
exit $fail

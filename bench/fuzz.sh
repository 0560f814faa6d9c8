#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ (the RNE parser, the ZIP central-directory check) for a
# bounded time each, and prints executions, coverage and findings; BENCHMARKS.md records them.
#
#   bench/fuzz.sh [seconds per target=60] [target…]
#
# cargo-fuzz (libFuzzer) runs here on the stable toolchain with `--sanitizer none`: the targets
# are safe Rust, so what it finds are panics (failed assertions of the targets' properties,
# overflows: debug assertions are on), hangs (> 10 s for one input) and out-of-memory (> 2 GiB).
# cargo-fuzz is installed from crates.io when missing. The corpus grows in fuzz/corpus/<target>
# from run to run; a finding is saved in fuzz/artifacts/<target>/ and replayed with
#   cargo fuzz run --sanitizer none <target> fuzz/artifacts/<target>/<file>
# The first build instruments the AWS SDK too (bcdi-shared depends on it): about 15 minutes on
# 2 cores, then seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
CARGO_FUZZ_VERSION=0.13.2

if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION"* ]]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io…" >&2
    cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

echo "building the fuzz targets (instrumented, release, nice 10)…" >&2
(cd fuzz && nice -n 10 cargo fuzz build --sanitizer none >/dev/null)

logs=fuzz/target/logs
mkdir -p "$logs"
results=()
status=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    before=$(ls "fuzz/artifacts/$target" | wc -l)
    log=$logs/$target.log
    echo "fuzzing $target for ${seconds}s…" >&2
    rc=0
    (cd fuzz && cargo fuzz run --sanitizer none "$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
        >"$log" 2>&1 || rc=$?
    after=$(ls "fuzz/artifacts/$target" | wc -l)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    per_second=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    features=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    corpus=$(ls "fuzz/corpus/$target" | wc -l)
    findings=$((after - before))
    if ((rc != 0 || findings > 0)); then
        status=1
        echo "  $target: finding (exit $rc); log: $log" >&2
        grep -m1 -A3 'panicked at\|ERROR: libFuzzer' "$log" | sed 's/^/    /' >&2 || true
    fi
    results+=("$(printf '| %s | %s | %s | %s | %s | %s | %s |' \
        "$target" "$seconds" "$runs" "$per_second" "$coverage/$features" "$corpus" "$findings")")
done

echo
echo "cargo-fuzz $CARGO_FUZZ_VERSION, libFuzzer, --sanitizer none, $(rustc --version | cut -d' ' -f1-2), $(nproc) cores"
echo
echo "| target | seconds | executions | exec/s | coverage (edges/features) | corpus | new findings |"
echo "|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${results[@]}"
exit "$status"

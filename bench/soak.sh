#!/usr/bin/env bash
# A bounded soak of the local server: a release `bcdi-hosting serve` (its own data directory,
# SQLite, embedded storage and workflows) under mixed GET / POST / upload traffic for 5
# minutes, with this script as the hosting agent (SANDBOX_AGENT=off), reporting every 30 s the
# server's resident memory (VmRSS), the workflow executions still running and the latency of
# each kind of request, then checking that every accepted POST reads back. BENCHMARKS.md records
# its figures.
#
#   bench/soak.sh [seconds=300] [workers=8] [interval=30]
#
# BENCH_TARGET_DIR: where the release build goes (default target/bench); BENCH_NO_BUILD=1 runs
# the binary already there.
# Loopback only; stops by itself. Exit status 1 if anything was lost or answered 5xx.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
workers=${2:-8}
interval=${3:-30}
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$PWD/target/bench}

# BENCH_NO_BUILD=1 takes the binary already there (a build by someone else, of older sources).
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    echo "building bcdi-hosting (release, nice 10) in $CARGO_TARGET_DIR…" >&2
    nice -n 10 cargo build --release --locked --quiet -p bcdi-hosting --bin bcdi-hosting
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
data_dir=$(mktemp -d "${TMPDIR:-/tmp}/bcdi-soak.XXXXXX")
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$data_dir"
}
trap cleanup EXIT

cyber_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
operator_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
port=$(free_port)
PORT=$port DATA_DIR=$data_dir SANDBOX_AGENT=off RUST_LOG=warn NO_COLOR=1 \
    CYBER_KEY_SHA256=$(printf %s "$cyber_key" | sha256sum | cut -d' ' -f1) \
    OPERATOR_KEY_SHA256=$(printf %s "$operator_key" | sha256sum | cut -d' ' -f1) \
    "$CARGO_TARGET_DIR/release/bcdi-hosting" serve >"$data_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || { cat "$data_dir/server.log" >&2; exit 1; }
    curl -fs -o /dev/null "http://127.0.0.1:$port/v1/openapi.json" && break
    sleep 0.1
done

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
python3 bench/soak.py --port "$port" --pid "$server_pid" --cyber-key "$cyber_key" \
    --operator-key "$operator_key" --seconds "$seconds" --workers "$workers" \
    --interval "$interval" --data-dir "$data_dir" || rc=$?
echo "machine load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server warnings and errors: $(grep -c -E 'WARN|ERROR' "$data_dir/server.log" || true)"
grep -E 'ERROR' "$data_dir/server.log" | head -5 || true
exit "$rc"

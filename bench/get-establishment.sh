#!/usr/bin/env bash
# Throughput and latency of GET /v1/establishments/{rne} on the local server, beside a bare
# axum server that answers a constant 200, both measured by wrk in the same run.
#
#   bench/get-establishment.sh [connections=32] [seconds=15] [rounds=3]
#
# Each round measures the API, then the bare server, for `seconds` each: alternating them
# spreads the drift of a shared machine over both. Prints one line per round and the median
# ratio; BENCHMARKS.md records the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=${1:-32}
seconds=${2:-15}
rounds=${3:-3}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p bcdi-hosting --bin bcdi-hosting
cargo build --release --quiet --manifest-path bench/bare-server/Cargo.toml --target-dir "$target_dir"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

data_dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$data_dir"; }
trap cleanup EXIT

key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
digest=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
api_port=$(free_port)
PORT=$api_port DATA_DIR=$data_dir CYBER_KEY_SHA256=$digest RUST_LOG=warn \
    "$target_dir/release/bcdi-hosting" serve >/dev/null &
pids+=($!)
bare_port=$(free_port)
PORT=$bare_port "$target_dir/release/bare-server" &
pids+=($!)
wait_for "http://127.0.0.1:$api_port/v1/openapi.json"
wait_for "http://127.0.0.1:$bare_port/"

curl -fs -o /dev/null -H "Authorization: Bearer $key" -H 'content-type: application/json' \
    -d '{"rne":"0750655E","griffe":"Collège Jean Moulin","code":"ABCDEFGH","version":"CL"}' \
    "http://127.0.0.1:$api_port/v1/establishments"

run() { wrk -t2 -c"$connections" -d"${seconds}s" --latency "$@"; }
results=()
for _ in $(seq "$rounds"); do
    results+=("$(run -H "Authorization: Bearer $key" "http://127.0.0.1:$api_port/v1/establishments/0750655E")")
    results+=("$(run "http://127.0.0.1:$bare_port/")")
done

python3 - "$connections" "${results[@]}" <<'PY'
import re, statistics, sys
connections, outputs = sys.argv[1], sys.argv[2:]
def figures(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def pct(p):
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, pct(50), pct(99), int(errors.group(1)) if errors else 0
print(f"connections: {connections}")
print(f"{'round':<7}{'server':<30}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'ratio':>8}")
ratios, api_p99 = [], []
for round, (api_out, bare_out) in enumerate(zip(outputs[0::2], outputs[1::2]), 1):
    a, b = figures(api_out), figures(bare_out)
    ratios.append(a[0] / b[0])
    api_p99.append(a[2])
    print(f"{round:<7}{'GET /v1/establishments/{rne}':<30}{a[0]:>10.0f}{a[1]:>9.2f}{a[2]:>9.2f}{a[3]:>9}{ratios[-1]:>8.2f}")
    print(f"{'':<7}{'bare constant 200':<30}{b[0]:>10.0f}{b[1]:>9.2f}{b[2]:>9.2f}{b[3]:>9}")
print(f"throughput ratio (API / bare), median of {len(ratios)} rounds: {statistics.median(ratios):.2f}")
print(f"API p99, worst round: {max(api_p99):.2f} ms")
PY

#!/usr/bin/env bash
# Upload throughput to the embedded storage of a release `bcdi-hosting serve`, beside a plain
# file copy of the same bytes on the same disk. A benchmark, not a test: it prints figures.
#
#   bench/upload.sh [archives=4] [MiB per archive=256] [parallel parts=6]
#
# The archives go as the upload page sends them: the upload API creates each file, then its
# parts are PUT to presigned URLs, `parallel` at a time across all archives (browsers open about
# six connections per origin), then each file is completed (storage assembles it). The copy is
# `cp` of the same files into another directory of the same data directory. Both end with
# `sync`, so both include writing to the disk. Prints both throughputs and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

archives=${1:-4}
mib=${2:-256}
parallel=${3:-6}

target_dir=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p bcdi-hosting --bin bcdi-hosting --example upload_bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# The data directory on the disk under test (the work tree's, not a tmpfs).
work=$(mktemp -d "$PWD/target/bench-upload.XXXXXX")
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/source" "$work/copy"
for i in $(seq "$archives"); do
    head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/source/base$i.zip"
done
sync
total=$((archives * mib * 1024 * 1024))

key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
digest=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
port=$(free_port)
base="http://127.0.0.1:$port"
PORT=$port DATA_DIR="$work/data" CYBER_KEY_SHA256=$digest RUST_LOG=warn \
    "$target_dir/release/bcdi-hosting" serve >"$work/server.log" 2>&1 &
pids+=($!)
wait_for "$base/v1/openapi.json"

auth=(-H "Authorization: Bearer $key" -H 'content-type: application/json')
curl -fs -o /dev/null "${auth[@]}" \
    -d '{"rne":"0750655E","griffe":"Collège Jean Moulin","code":"ABCDEFGH","version":"CL"}' \
    "$base/v1/establishments"
# Uploads need status 2: wait for the local installation (the sandbox agent) to get there.
status=
for _ in $(seq 300); do
    status=$(curl -fs "${auth[@]}" "$base/v1/establishments/0750655E" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [[ $status == 2 ]] && break
    sleep 0.2
done
if [[ $status != 2 ]]; then
    echo "the establishment did not reach status 2 (status $status): see $work/server.log" >&2
    exit 1
fi
token=$(curl -fs "${auth[@]}" -d '{}' "$base/v1/establishments/0750655E/upload-sessions" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["url"].split("#token=")[1])')

# The upload, then its data to disk.
started=$(date +%s.%N)
"$target_dir/release/examples/upload_bench" "$base" "$token" "$parallel" "$work"/source/*.zip >/dev/null
sync
upload_seconds=$(python3 -c "import time; print(time.time() - $started)")

# The same bytes copied on the same disk.
started=$(date +%s.%N)
cp "$work"/source/*.zip "$work/copy/"
sync
copy_seconds=$(python3 -c "import time; print(time.time() - $started)")

stored=$(find "$work/data/storage" -name '*.zip' -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
python3 - "$total" "$stored" "$upload_seconds" "$copy_seconds" "$archives" "$mib" "$parallel" <<'PY'
import sys
total, stored = int(sys.argv[1]), int(sys.argv[2])
upload, copy = float(sys.argv[3]), float(sys.argv[4])
archives, mib, parallel = sys.argv[5], sys.argv[6], sys.argv[7]
if stored != total:
    sys.exit(f"storage holds {stored} bytes of archives, not {total}")
to_mib = lambda seconds: total / seconds / 2**20
print(f"{archives} archives x {mib} MiB, {parallel} parts in parallel")
print(f"{'what':<44}{'seconds':>9}{'MiB/s':>9}")
print(f"{'upload through presigned parts (+ complete)':<44}{upload:>9.2f}{to_mib(upload):>9.0f}")
print(f"{'cp of the same files, same disk':<44}{copy:>9.2f}{to_mib(copy):>9.0f}")
print(f"ratio upload / copy: {to_mib(upload) / to_mib(copy):.2f}  (goal >= 0.5)")
PY

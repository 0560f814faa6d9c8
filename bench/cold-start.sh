#!/usr/bin/env bash
# Cold start of every Lambda binary, through a local stand-in for the Lambda Runtime API
# (local/examples/runtime_stub.rs), beside a hello-world lambda_runtime binary built the same way
# (functions/examples/hello-lambda.rs). Per run it measures
#   init            process start → the runtime's first GET …/invocation/next
#                   (configuration and AWS clients are built before it),
#   first response  process start → the POST of the first invocation's response
#                   (the dependency's latency, moto's here, is part of it),
# and prints one Markdown table per run of this script; BENCHMARKS.md records its figures.
#
#   bench/cold-start.sh [runs=10] [function…]     (default: every binary of functions/src/bin)
#
# Builds release binaries in their own target directory (target/bench, slow the first time: the
# AWS SDK optimised), starts a moto server on 127.0.0.1:$BENCH_MOTO_PORT (default 5106) unless
# MOTO_ENDPOINT names one, and creates there the table (from template.yaml), the bucket and the
# two state machines the functions are configured with. Loopback only; bounded by runs × 60 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

runs=${1:-10}
shift || true
wanted=("$@")
if ((${#wanted[@]} == 0)); then
    mapfile -t wanted < <(ls functions/src/bin/*.rs | xargs -n1 basename | sed 's/\.rs$//' | sort)
fi
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$ROOT/target/bench}
VENV=$ROOT/.venv
[[ -x $VENV/bin/moto_server ]] || {
    echo "moto is missing: run scripts/test once (it installs requirements-test.txt into .venv)" >&2
    exit 1
}

# The stand-in only timestamps two requests per run: a debug build in the workspace's usual
# target directory (where bcdi-hosting's dependencies already are) does that as well.
stub_target=${STUB_TARGET_DIR:-$ROOT/target}
# BENCH_NO_BUILD=1 measures the binaries already built (each link of a function takes minutes
# on a busy 2-core machine; older sources then, but the same start-up path).
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    echo "building release binaries in $CARGO_TARGET_DIR (nice 10)…" >&2
    nice -n 10 cargo build --release --locked --quiet -p bcdi-functions --example hello-lambda \
        $(printf -- '--bin %s ' "${wanted[@]}")
    CARGO_TARGET_DIR=$stub_target nice -n 10 cargo build --locked --quiet -p bcdi-hosting \
        --example runtime_stub
fi
release=$CARGO_TARGET_DIR/release

work=$(mktemp -d "${TMPDIR:-/tmp}/bcdi-cold-start.XXXXXX")
moto_pid=
cleanup() {
    [[ -n $moto_pid ]] && kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -z ${MOTO_ENDPOINT:-} ]]; then
    port=${BENCH_MOTO_PORT:-5106}
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
    moto_pid=$!
    MOTO_ENDPOINT=http://127.0.0.1:$port
    for _ in $(seq 100); do
        curl -fs -o /dev/null "$MOTO_ENDPOINT/" && break
        sleep 0.2
    done
fi
moto_version=$("$VENV/bin/python" -c 'import moto; print(moto.__version__)')

export AWS_ENDPOINT_URL=$MOTO_ENDPOINT AWS_REGION=eu-west-3 AWS_DEFAULT_REGION=eu-west-3
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
suffix=$(date +%s)-$$
export TABLE_NAME=bench-$suffix BUCKET_NAME=bench-$suffix

# The resources of template.yaml the functions use, on moto: the table as the template defines
# it, the bucket, and the state machines from their definitions.
eval "$("$VENV/bin/python" - "$TABLE_NAME" "$BUCKET_NAME" <<'PY'
import json, sys, boto3, yaml

table_name, bucket_name = sys.argv[1], sys.argv[2]

class Loader(yaml.SafeLoader):
    pass
# CloudFormation's short forms (!Ref, !GetAtt, !Sub…) read as plain values.
Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
template = yaml.load(open("template.yaml"), Loader=Loader)
resources = template["Resources"]

table = next(r["Properties"] for r in resources.values() if r["Type"] == "AWS::DynamoDB::Table")
dynamodb = boto3.client("dynamodb")
dynamodb.create_table(
    TableName=table_name,
    BillingMode=table.get("BillingMode", "PAY_PER_REQUEST"),
    AttributeDefinitions=table["AttributeDefinitions"],
    KeySchema=table["KeySchema"],
    **({"GlobalSecondaryIndexes": table["GlobalSecondaryIndexes"]} if "GlobalSecondaryIndexes" in table else {}),
)
boto3.client("s3").create_bucket(
    Bucket=bucket_name, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
)
# Every literal setting the template gives a function (limits, lifetimes), as deployed.
literal = {}
for resource in resources.values():
    if resource["Type"] == "AWS::Serverless::Function":
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                literal.setdefault(name, str(value))
for name, value in sorted(literal.items()):
    print(f"export {name}={value}")

sfn = boto3.client("stepfunctions")
for name, resource in resources.items():
    if resource["Type"] != "AWS::Serverless::StateMachine":
        continue
    definition = open(resource["Properties"]["DefinitionUri"]).read()
    arn = sfn.create_state_machine(
        name=f"{table_name}-{name}", definition=definition,
        roleArn="arn:aws:iam::123456789012:role/bench",
    )["stateMachineArn"]
    # ProvisioningStateMachine → PROVISIONING_STATE_MACHINE_ARN
    variable = name.removesuffix("StateMachine").upper() + "_STATE_MACHINE_ARN"
    print(f"export {variable}={arn}")
PY
)"

BENCH_CYBER_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
BENCH_OPERATOR_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
export BENCH_CYBER_KEY BENCH_OPERATOR_KEY
CYBER_KEY_SHA256=$(printf %s "$BENCH_CYBER_KEY" | sha256sum | cut -d' ' -f1)
OPERATOR_KEY_SHA256=$(printf %s "$BENCH_OPERATOR_KEY" | sha256sum | cut -d' ' -f1)
export CYBER_KEY_SHA256 OPERATOR_KEY_SHA256
export ALLOWED_FRAME_ORIGINS=https://cyberlibrairie.example.org
# A !Sub in the template (BCDI/<stack>), so not among the literal settings above.
export METRICS_NAMESPACE=BCDI/bench
export RUST_LOG=info
# Lambda sets neither; this machine sets both, which changes where the TLS roots are read from:
# that would count against the functions' init and not against hello's.
unset SSL_CERT_DIR SSL_CERT_FILE

# The baseline first, then create-establishment (it creates the establishment the others read),
# then every other function binary of the workspace.
functions=("hello-lambda=$release/examples/hello-lambda")
for name in create-establishment $(printf '%s\n' "${wanted[@]}" | grep -vx create-establishment); do
    if [[ " ${wanted[*]} " == *" $name "* ]]; then functions+=("$name=$release/$name"); fi
done

echo "cpu: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(rustc --version)" >&2
# In rounds: each round starts every function once, the baseline first, so that the load of the
# machine at any moment (other builds) weighs on every function and on the baseline alike, not
# on whichever ran while it peaked. Each round is one table of the stub; they are merged below.
for round in $(seq "$runs"); do
    "$stub_target/debug/examples/runtime_stub" --runs 1 \
        --events tests/fixtures/apigw-v2 --events bench/events \
        --baseline hello-lambda --logs "$CARGO_TARGET_DIR/cold-start-logs" \
        --dependency "moto" "${functions[@]}" >"$work/round-$round.md" 2>/dev/null
    echo "round $round/$runs, load $(cut -d' ' -f1 /proc/loadavg)" >&2
done
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$VENV/bin/python" - "$work" "$runs" "moto $moto_version (DynamoDB, Step Functions, S3) on 127.0.0.1, same machine" <<'PY'
import collections, glob, statistics, sys

work, runs, dependency = sys.argv[1], int(sys.argv[2]), sys.argv[3]
order, meta = [], {}
inits, responses = collections.defaultdict(list), collections.defaultdict(list)
outcomes = collections.defaultdict(collections.Counter)
for path in sorted(glob.glob(f"{work}/round-*.md")):
    for line in open(path):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 7 or cells[0] in ("function", "---") or cells[0].startswith("-"):
            continue
        name, event, size, init, response, _, outcome = cells
        if name not in meta:
            order.append(name)
            meta[name] = (event, size)
        for figure, into in ((init, inits), (response, responses)):
            if figure != "–":
                into[name].append(float(figure.split("/")[0]))
        for part in outcome.split(", "):
            what, _, count = part.rpartition(" ×")
            outcomes[name][what] += int(count or 1)

def cell(values):
    if not values:
        return "–"
    return f"{statistics.median(values):.1f} / {min(values):.1f} / {max(values):.1f}"

first = inits[order[0]] if order else []
baseline = (statistics.median(first), min(first)) if first else None
print(f"Runs per function: {runs}, in rounds. First response includes the dependency: {dependency}.")
print(f"Times in ms from process start (median / min / max); init ratio = init median ÷ {order[0] if order else '?'}'s;")
print("min ratio = the fastest init ÷ the baseline's fastest (the run the load disturbed least).")
print()
print("| function | event | size | init | first response | init ratio | min ratio | outcomes |")
print("|---|---|---:|---:|---:|---:|---:|---|")
for name in order:
    event, size = meta[name]
    ratio = f"{statistics.median(inits[name]) / baseline[0]:.2f}×" if baseline and inits[name] else "–"
    fastest = f"{min(inits[name]) / baseline[1]:.2f}×" if baseline and inits[name] else "–"
    said = ", ".join(f"{what} ×{count}" for what, count in sorted(outcomes[name].items()))
    print(f"| {name} | {event} | {size} | {cell(inits[name])} | {cell(responses[name])} | {ratio} | {fastest} | {said} |")
PY
echo >&2
echo "function output: $CARGO_TARGET_DIR/cold-start-logs/<function>.log" >&2

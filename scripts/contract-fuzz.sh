#!/usr/bin/env bash
# Contract fuzzing: Schemathesis (scripts/python-requirements.txt, in the
# virtual environment scripts/python-env.sh makes) against a real otpd on
# loopback, driven by the otpd's own GET /openapi.json. It fails on any 5xx,
# any answer whose status, content type or body the description does not
# allow, a request the server never answers, or an otpd that dies or
# panics. Bounded: EXAMPLES test cases per operation and phase (default
# 20), MAX_TIME seconds for the whole run (default 300; fuzzing and the
# stateful phase go on until it is spent); SEED makes a run
# repeatable (default: a fixed seed, so CI failures reproduce).
#
#   scripts/contract-fuzz.sh                 # as .ci/run runs it
#   EXAMPLES=200 SEED=$RANDOM scripts/contract-fuzz.sh   # a longer hunt
#
# OTPD: the otpd binary (default: target/debug/otpd, built first).
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES=${EXAMPLES:-20}
MAX_TIME=${MAX_TIME:-300}
SEED=${SEED:-20261202}
if [ -z "${OTPD:-}" ]; then
  cargo build -q -p otpd
  OTPD=target/debug/otpd
fi
python=$(scripts/python-env.sh)
schemathesis="$(dirname "$python")/schemathesis"

work=$(mktemp -d /tmp/otpd-contract.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Cheap Argon2 and no rate limits: the fuzzer explores, it does not attack
# (docs/SECURITY.md's limits have their own tests). Test destinations let
# generated logins reach a real account now and then.
cat > "$work/otpd.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$work/data"
log_format = "json"
log_level = "info"

[argon2]
memory_kib = 64
iterations = 1
parallelism = 1

[limits]
issue_per_account_10min = 0
issue_per_account_day = 0
issue_per_destination_10min = 0
issue_per_destination_day = 0
issue_per_ip_minute = 0
issue_per_client_minute = 0
attempts_per_ip_minute = 0
attempts_per_client_minute = 0
sms_per_country_hour = 0
sms_per_country_day = 0
sms_global_hour = 0

[test_mode.destinations]
"+351910000000" = "123456"
"dev@example.pt" = "654321"
TOML
export OTPD_CODE_KEY
OTPD_CODE_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
key=$(env -u OTPD_PYTHON_ENV "$OTPD" --config "$work/otpd.toml" client add contract-fuzz \
  --scopes auth,accounts,admin,sign,audit,recovery)
env -u OTPD_PYTHON_ENV "$OTPD" --config "$work/otpd.toml" > "$work/otpd.log" 2>&1 &
pid=$!
address=
for _ in $(seq 1 300); do
  address=$(sed -n 's/.*"otpd listening".*"address":"\([0-9.:]*\)".*/\1/p; s/.*"address":"\([0-9.:]*\)".*"otpd listening".*/\1/p' "$work/otpd.log" | head -1)
  [ -n "$address" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/otpd.log" >&2; echo "otpd did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$address" ] || { cat "$work/otpd.log" >&2; echo "otpd never said where it listens" >&2; exit 1; }
echo "contract fuzzing otpd at $address (seed $SEED, $EXAMPLES examples per operation)" >&2

status=0
# From the scratch directory: Schemathesis keeps a cache in its working directory.
# One worker: Python 3.11's ast module keeps its recursion count per
# interpreter, not per thread, so two workers parsing at once (Hypothesis
# describing a filter's lambda) can die with "AST constructor recursion
# depth mismatch", a crash of the tool, not a finding (seen once here).
(cd "$work" && timeout --signal=INT "$((MAX_TIME + 120))" "$schemathesis" --no-color run "http://$address/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$EXAMPLES" \
  --max-time "$MAX_TIME" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 40 \
  --suppress-health-check all \
  --generation-database none \
  --report junit --report-dir "${REPORT_DIR:-$work/report}") || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
  echo "otpd died during the run:" >&2
  tail -50 "$work/otpd.log" >&2
  exit 1
fi
if grep -q 'panicked' "$work/otpd.log"; then
  echo "otpd panicked during the run:" >&2
  grep -B2 -A5 'panicked' "$work/otpd.log" | head -40 >&2
  exit 1
fi
exit "$status"

#!/usr/bin/env bash
# Runs otp-loadtest against two otpd nodes sharing one Redis Cluster on
# loopback (3 masters, 3 replicas, scripts/redis-cluster.sh), as
# docs/CAPACITY.md's cluster figures were measured: limits off, SMS to the
# load tester's sink (both nodes send there), ACCOUNTS accounts seeded
# through node A's bulk import, then one load tester with both nodes as
# targets (flows round-robin between them, each node's flows reported),
# CONCURRENCY workers and the arguments given here. Everything is stopped
# at the end.
#
#   CONCURRENCY=64 scripts/loadtest-cluster.sh --flow step-up --duration 10 --warmup 2
#
# Environment: OTPD, LOADTEST (release binaries, built when missing),
# ACCOUNTS (default 20000), CONCURRENCY (default 64, both nodes together),
# KEEP=1 keeps the work directory. Prints the report (with each node's
# flows), then what the run cost: each otpd node's CPU, and the Redis
# nodes' CPU and commands (INFO), and the calls of each command, for
# sizing (docs/CAPACITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# The binaries of this checkout (a no-op when they are up to date: a stale
# build would measure another version), unless given.
if [ -z "${OTPD:-}" ] || [ -z "${LOADTEST:-}" ]; then
  cargo build --release -q -p otpd -p otp-loadtest
fi
OTPD=${OTPD:-target/release/otpd}
LOADTEST=${LOADTEST:-target/release/otp-loadtest}
ACCOUNTS=${ACCOUNTS:-20000}
CONCURRENCY=${CONCURRENCY:-64}
work=$(mktemp -d /tmp/otpd-loadtest-cluster.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  scripts/redis-cluster.sh stop "$work/cluster" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
nodes=$(scripts/redis-cluster.sh start "$work/cluster")
list=$(echo "$nodes" | sed 's/[^,]*/"&"/g')

# node NAME PORT SINK: its configuration file.
node() {
  cat > "$work/$1.toml" <<TOML
listen = "127.0.0.1:$2"
data_dir = "$work/$1"
log_level = "warn"

[store]
backend = "redis-cluster"

[store.redis]
nodes = [$list]

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

[limits.sms_country_budgets.351]
per_hour = 0
per_day = 0

[delivery]
log_sink = false

[[delivery.sms]]
name = "loadtest"
url = "http://$3/sms"
template = '{"to":"{to}","text":"{message}"}'
TOML
}
node a 18081 127.0.0.1:19901
node b 18082 127.0.0.1:19901
export OTPD_CODE_KEY=${OTPD_CODE_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
OTP_LOADTEST_KEY=$("$OTPD" --config "$work/a.toml" client add loadtest --scopes auth,accounts,admin,sign,verify)
export OTP_LOADTEST_KEY
for n in a b; do
  "$OTPD" --config "$work/$n.toml" 2> "$work/$n.log" &
  pids+=($!)
done
for port in 18081 18082; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
done
"$LOADTEST" --target http://127.0.0.1:18081 --sink 127.0.0.1:19901 --accounts-file "$work/all.txt" \
  --seed "$ACCOUNTS" --seed-batch 500 --timeout 30 --rate 1 --duration 1 --warmup 0 --quiet >/dev/null
ports=$(echo "$nodes" | tr ',' '\n' | sed 's/.*://')
# Redis's CPU seconds (user + sys) and commands processed, all six nodes.
redis_cost() {
  for p in $ports; do redis-cli -p "$p" info all; done | tr -d '\r' | awk -F: '
    /^used_cpu_(user|sys):/ { cpu += $2 }
    /^total_commands_processed:/ { cmds += $2 }
    END { printf "%.2f %d\n", cpu, cmds }'
}
# Calls per Redis command (scripts' own calls included), all six nodes.
redis_calls() {
  for p in $ports; do redis-cli -p "$p" info commandstats; done | tr -d '\r' | awk -F'[_:=,]' '
    /^cmdstat_/ { calls[$2] += $4 }
    END { for (c in calls) print c, calls[c] }' | sort
}
otpd_ticks() { for p in "${pids[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | paste -sd' '; }
ticks_before=$(otpd_ticks)
redis_before=$(redis_cost)
calls_before=$(redis_calls)
status=0
"$LOADTEST" --target http://127.0.0.1:18081,http://127.0.0.1:18082 --sink 127.0.0.1:19901 \
  --accounts-file "$work/all.txt" --concurrency "$CONCURRENCY" "$@" || status=$?
ticks_after=$(otpd_ticks)
redis_after=$(redis_cost)
echo "otpd nodes: CPU ticks ($(getconf CLK_TCK)/s) before $ticks_before, after $ticks_after"
echo "redis (6 nodes): CPU seconds and commands before $redis_before, after $redis_after"
echo "redis calls during the run, by command (all six nodes):"
join -a2 -e0 -o 0,1.2,2.2 <(echo "$calls_before") <(redis_calls) |
  awk '$3 - $2 > 0 { printf "  %-16s %d\n", $1, $3 - $2 }' | sort -k2 -nr
exit "$status"

#!/usr/bin/env bash
# Measures step-up issue and verify as fractions of /livez on the same
# otpd under the same generator (issue #19's ratios): wrk, one thread,
# CONNECTIONS connections, each request counted only when it did what was
# asked (201 for an issue, 200 for a verify). A fresh otpd on loopback as
# scripts/otpd-local.sh starts it (limits off, codes delivered to
# otp-loadtest's sink, ACCOUNTS accounts seeded). Per round:
#   1. /livez for SECONDS;
#   2. issue for SECONDS: POST /v1/step-up to the accounts in turn, the
#      sink taking the SMS (otp-loadtest --sink-only);
#   3. verify: otp-loadtest --codes issues one fresh code per account and
#      takes it from the sink (not timed), then wrk verifies them for
#      VERIFY_SECONDS, each code once.
# Prints each rate and its ratio to that round's /livez rate, and otpd's
# CPU per request. Installs wrk (Debian's package) when it is missing.
#
#   scripts/http-ratios.sh            # ROUNDS=2 SECONDS=10 VERIFY_SECONDS=5 CONNECTIONS=64
#
# Environment: those above, and scripts/otpd-local.sh's (OTPD, LOADTEST,
# ACCOUNTS, PORT, SINK, KEEP). ACCOUNTS bounds the verify run: it needs
# more codes than VERIFY_SECONDS can use (a warning says when it ran out).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
SECONDS_EACH=${SECONDS:-10}
VERIFY_SECONDS=${VERIFY_SECONDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian's package) ..." >&2
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
. scripts/otpd-local.sh
export WRK_SCRIPTS=$PWD/scripts/wrk
url="http://127.0.0.1:$PORT"

# One wrk run: prints "<ok> <requests> <seconds> <otpd CPU ticks>".
measure() {
  local seconds=$1 script=$2
  shift 2
  local before out
  before=$(cpu_ticks)
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" -H "Authorization: Bearer $OTP_LOADTEST_KEY" \
    -s "$WRK_SCRIPTS/$script" "$url" -- "$@" | awk '/^ok / {print $2, $4, $6 / 1e6}')
  echo "$out $(( $(cpu_ticks) - before ))"
}

report() {
  local name=$1 ok=$2 requests=$3 seconds=$4 ticks=$5 livez=$6
  awk -v n="$name" -v ok="$ok" -v r="$requests" -v s="$seconds" -v t="$ticks" -v l="$livez" \
    -v hz="$(getconf CLK_TCK)" 'BEGIN {
      rate = ok / s
      printf "  %-7s %9.0f/s  (%d of %d answered as asked)  %.3f of /livez  otpd CPU %.1f us/request\n",
        n, rate, ok, r, (l > 0 ? rate / l : 0), (ok > 0 ? t / hz * 1e6 / ok : 0)
    }'
}

for round in $(seq "$ROUNDS"); do
  echo "round $round ($CONNECTIONS connections, one wrk thread):"
  read -r ok requests seconds ticks < <(measure "$SECONDS_EACH" livez.lua)
  livez=$(awk -v ok="$ok" -v s="$seconds" 'BEGIN {print ok / s}')
  report livez "$ok" "$requests" "$seconds" "$ticks" "$livez"

  "$LOADTEST" --sink "$SINK" --sink-only $((SECONDS_EACH + 5)) >"$work/sink.out" &
  sink=$!
  sleep 0.5
  read -r ok requests seconds ticks < <(measure "$SECONDS_EACH" issue.lua "$work/accounts.txt")
  wait "$sink"
  report issue "$ok" "$requests" "$seconds" "$ticks" "$livez"
  echo "          ($(cat "$work/sink.out"))"

  "$LOADTEST" --target "$url" --sink "$SINK" --accounts-file "$work/accounts.txt" \
    --codes "$work/codes.txt" 2>/dev/null
  codes=$(wc -l < "$work/codes.txt")
  read -r ok requests seconds ticks < <(measure "$VERIFY_SECONDS" verify.lua "$work/codes.txt")
  report verify "$ok" "$requests" "$seconds" "$ticks" "$livez"
  if [ "$requests" -gt "$codes" ]; then
    echo "  warning: the verify run used all $codes codes; raise ACCOUNTS or lower VERIFY_SECONDS" >&2
  fi
done
echo "otpd pid $pid: resident $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status) at the end" >&2

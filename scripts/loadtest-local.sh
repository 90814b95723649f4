#!/usr/bin/env bash
# Runs otp-loadtest against a fresh otpd on loopback, as docs/LOADTEST.md
# describes: a temporary data directory, limits off, SMS to the load
# tester's sink, ACCOUNTS accounts seeded through the bulk import, then one
# run with the arguments given here; otpd is stopped at the end.
#
#   scripts/loadtest-local.sh --flow login --concurrency 8 --duration 20 --argon2-ceiling 2
#
# Environment: as scripts/otpd-local.sh says (OTPD, LOADTEST, ACCOUNTS,
# PORT, SINK, KEEP). otpd's resident memory and CPU time are printed around
# the run (on standard error).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/otpd-local.sh
echo "otpd pid $pid: resident $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status) before the run" >&2
before=$(cpu_ticks)
"$LOADTEST" --target "http://127.0.0.1:$PORT" --sink "$SINK" --accounts-file "$work/accounts.txt" "$@"
echo "otpd pid $pid: resident $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status) after the run" >&2
echo "otpd pid $pid: $(( $(cpu_ticks) - before )) CPU ticks ($(getconf CLK_TCK)/s) during the run" >&2

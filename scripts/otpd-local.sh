# Sourced by scripts/loadtest-local.sh and scripts/http-ratios.sh: starts a
# fresh otpd on loopback (a temporary data directory, limits off, SMS to
# the load tester's sink at $SINK) and seeds $ACCOUNTS accounts through the
# bulk import. Leaves $pid (otpd), $work (its directory, with
# accounts.txt), $OTP_LOADTEST_KEY and cpu_ticks; stops otpd on exit.
#
# Environment: OTPD (the otpd binary, default target/release/otpd),
# LOADTEST (default target/release/otp-loadtest), ACCOUNTS (default 60000),
# PORT (default 18080), SINK (default 127.0.0.1:19900), KEEP=1 keeps the
# data directory.
# The binaries of this checkout (a no-op when they are up to date: a stale
# build would measure another version), unless given.
if [ -z "${OTPD:-}" ] || [ -z "${LOADTEST:-}" ]; then
  cargo build --release -q -p otpd -p otp-loadtest
fi
OTPD=${OTPD:-target/release/otpd}
LOADTEST=${LOADTEST:-target/release/otp-loadtest}
ACCOUNTS=${ACCOUNTS:-60000}
PORT=${PORT:-18080}
SINK=${SINK:-127.0.0.1:19900}
work=$(mktemp -d /tmp/otpd-loadtest.XXXXXX)
cat > "$work/otpd.toml" <<TOML
listen = "127.0.0.1:$PORT"
data_dir = "$work/data"
log_level = "warn"

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
url = "http://$SINK/sms"
template = '{"to":"{to}","text":"{message}"}'
TOML
export OTPD_CODE_KEY=${OTPD_CODE_KEY:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
OTP_LOADTEST_KEY=$("$OTPD" --config "$work/otpd.toml" client add loadtest --scopes auth,accounts,admin,sign,verify)
export OTP_LOADTEST_KEY
"$OTPD" --config "$work/otpd.toml" 2> "$work/otpd.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null && break
  sleep 0.1
done
"$LOADTEST" --target "http://127.0.0.1:$PORT" --sink "$SINK" --accounts-file "$work/accounts.txt" \
  --seed "$ACCOUNTS" --rate 1 --duration 1 --warmup 0 --quiet >/dev/null
# otpd's CPU time so far (user + system, in clock ticks).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

#!/usr/bin/env bash
# Makes (once) target/node-env with the npm packages pinned in
# tests/twilio-sdk/package-lock.json (the official Twilio Node SDK), and
# prints its node_modules path. Exits 3 when there is no Node runtime
# (node and npm): the tests that need it then say so and skip.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
env="${OTPD_NODE_ENV:-$root/target/node-env}"
source="$root/tests/twilio-sdk"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "no Node runtime (node and npm) on this machine" >&2
  exit 3
fi
stamp="$env/.package-lock.json"
if [ ! -d "$env/node_modules/twilio" ] || ! cmp -s "$source/package-lock.json" "$stamp"; then
  mkdir -p "$env"
  # A lock, as tests run in parallel.
  exec 9>"$env.lock"
  flock 9
  if [ ! -d "$env/node_modules/twilio" ] || ! cmp -s "$source/package-lock.json" "$stamp"; then
    cp "$source/package.json" "$source/package-lock.json" "$env/"
    (cd "$env" && npm ci --silent --no-audit --no-fund >&2)
    cp "$source/package-lock.json" "$stamp"
  fi
fi
echo "$env/node_modules"

#!/usr/bin/env bash
# Makes (once) a Python virtual environment under target/python-env with
# scripts/python-requirements.txt installed, and prints its python's path.
# Tests that need an independent implementation (PyJWT, the Twilio SDK,
# Schemathesis) call this; it is a no-op when the requirements are in.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
env="${OTPD_PYTHON_ENV:-$root/target/python-env}"
requirements="$root/scripts/python-requirements.txt"
stamp="$env/.requirements"
if [ ! -x "$env/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  mkdir -p "$(dirname "$env")"
  # A lock, as tests run in parallel.
  exec 9>"$env.lock"
  flock 9
  if [ ! -x "$env/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
    python3 -m venv "$env" >&2
    "$env/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$stamp"
  fi
fi
echo "$env/bin/python"

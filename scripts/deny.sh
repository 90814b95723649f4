#!/usr/bin/env bash
# Supply-chain checks (deny.toml): licenses, bans and sources always; the
# advisories (RustSec's database, which also finds yanked crates) whenever the
# database can be fetched or a copy of it is already on this machine. Where
# neither holds (no route to its git host, as in this project's own CI) the
# advisories are skipped with a message, unless OTPD_REQUIRE_ADVISORIES=1.
# Expects cargo-deny on PATH (scripts/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo deny --locked check bans licenses sources
if cargo deny --locked fetch db >/dev/null 2>&1; then
  cargo deny --locked check advisories
elif compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/*/.git" >/dev/null; then
  # Offline, the yanked-crate check is skipped, and a copy older than 90 days
  # (advisories.maximum-db-staleness) is an error.
  echo "the advisory database cannot be fetched: checking against the copy on this machine" >&2
  cargo deny --locked --offline check advisories
elif [ "${OTPD_REQUIRE_ADVISORIES:-0}" = 1 ]; then
  echo "the advisory database cannot be fetched and there is no copy of it here" >&2
  exit 1
else
  echo "skipped: advisories: the RustSec database cannot be fetched from here and there is no copy of it (OTPD_REQUIRE_ADVISORIES=1 makes this an error)"
fi

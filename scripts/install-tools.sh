#!/usr/bin/env bash
# Installs, once, the tools .ci/run needs beyond the Rust toolchain, and says
# nothing when they are in already:
#   cargo-deny  at the version pinned below, built from crates.io by
#               `cargo install` into Cargo's own bin directory ($CARGO_HOME/bin,
#               OTPD_TOOLS_DIR/bin instead if set), so every checkout, CI's
#               fresh clones included, shares one build;
#   promtool    from Debian's `prometheus` package, when not on PATH;
#   redis-server  (with redis-cli) from Debian's `redis-server` package, when
#               not on PATH: the cluster backend's tests start a local cluster.
# Usage: scripts/install-tools.sh [cargo-deny] [promtool] [redis-server]
#        (default: all three).
# Prints the directory to put first on PATH.
set -euo pipefail
tools="${OTPD_TOOLS_DIR:-${CARGO_HOME:-$HOME/.cargo}}"
cargo_deny_version="0.20.2"

have_cargo_deny() {
  [ "$("$tools/bin/cargo-deny" --version 2>/dev/null)" = "cargo-deny $cargo_deny_version" ]
}

install_cargo_deny() {
  have_cargo_deny && return
  mkdir -p "$tools"
  # A lock, so two runs at once build it once.
  exec 9>"$tools/.otpd-install-tools.lock"
  flock 9
  if ! have_cargo_deny; then
    echo "installing cargo-deny $cargo_deny_version into $tools (once: a few minutes)" >&2
    cargo install --quiet --locked --root "$tools" --version "=$cargo_deny_version" cargo-deny >&2
  fi
  exec 9>&-
}

# Installs Debian package $2 for command $1 when $1 is not on PATH.
install_deb() {
  local command="$1" package="$2"
  command -v "$command" >/dev/null && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "$command is missing: install it (Debian: apt-get install $package)" >&2
    return 1
  fi
  # A lock, so test binaries starting at once install it once.
  exec 8>/tmp/.otpd-install-deb.lock
  flock 8
  if command -v "$command" >/dev/null; then
    exec 8>&-
    return
  fi
  echo "installing $command (Debian's $package package)" >&2
  apt-get update -qq >&2
  # Only the command is wanted, not a server running on this machine:
  # a policy-rc.d for the length of the install stops the package starting it.
  local policy=/usr/sbin/policy-rc.d made="" status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    made=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null || status=$?
  if [ -n "$made" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  exec 8>&-
  return "$status"
}

[ $# -gt 0 ] || set -- cargo-deny promtool redis-server
for tool in "$@"; do
  case "$tool" in
    cargo-deny) install_cargo_deny ;;
    promtool) install_deb promtool prometheus ;;
    redis-server) install_deb redis-server redis-server ;;
    *) echo "unknown tool: $tool" >&2; exit 2 ;;
  esac
done
echo "$tools/bin"

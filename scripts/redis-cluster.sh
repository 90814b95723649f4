#!/usr/bin/env bash
# A throw-away Redis Cluster on loopback, for tests: 3 masters and 3
# replicas, persistence as otpd requires it (appendonly yes, appendfsync
# always, noeviction; docs/OPERATIONS.md), created with
# `redis-cli --cluster create`. redis-server is installed from Debian's
# packages when missing (scripts/install-tools.sh).
#
#   scripts/redis-cluster.sh start DIR [--tls]
#        starts it with its files in DIR and prints the nodes: 127.0.0.1:P,...
#        With --tls every node (clients, replication, cluster bus) speaks
#        TLS only, with a certificate for 127.0.0.1 signed by a CA made for
#        the occasion: DIR/tls/ca.crt.
#   scripts/redis-cluster.sh stop DIR
#        stops every node started in DIR
#   scripts/redis-cluster.sh revive DIR PORT...
#        starts again the nodes of DIR on those ports (killed or stopped:
#        each comes back from its AOF and rejoins the cluster)
#
# Ports are drawn at random (each node also uses its port + 10000 for the
# cluster bus) and drawn again when one is taken. `stop` is safe to run
# twice and after a failed `start`.
set -euo pipefail
cd "$(dirname "$0")/.."
here="$(pwd)"

usage() {
  echo "usage: $0 start DIR | stop DIR | revive DIR PORT..." >&2
  exit 2
}

revive_ports=()
if [ "${1:-}" = revive ] && [ $# -ge 3 ]; then
  action=revive
  dir="$2"
  tls=""
  revive_ports=("${@:3}")
else
  if ! { [ $# -eq 2 ] || { [ $# -eq 3 ] && [ "$3" = --tls ]; }; }; then usage; fi
  action="$1"
  dir="$2"
  tls="${3:-}"
fi

# redis-cli, with TLS when the cluster in $dir has it.
cli() {
  if [ -f "$dir/tls/ca.crt" ]; then
    redis-cli --tls --cacert "$dir/tls/ca.crt" "$@"
  else
    redis-cli "$@"
  fi
}

make_certificates() {
  mkdir -p "$dir/tls"
  (
    cd "$dir/tls"
    openssl req -x509 -new -nodes -newkey rsa:2048 -keyout ca.key -out ca.crt \
      -days 2 -subj "/CN=otpd test CA" 2>/dev/null
    openssl req -new -nodes -newkey rsa:2048 -keyout server.key -out server.csr \
      -subj "/CN=127.0.0.1" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth,clientAuth" >ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
  )
}

stop() {
  [ -f "$dir/ports" ] || return 0
  local port
  for port in $(cat "$dir/ports"); do
    cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  # Whatever did not answer the shutdown (a node still starting).
  local pidfile
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    # Only a redis-server of ours (a pid can be reused).
    if grep -q "redis-server" "/proc/$pid/cmdline" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  rm -f "$dir/ports"
}

free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The listening options of a node on port $1.
listen() {
  if [ -f "$dir/tls/ca.crt" ]; then
    echo "--port 0 --tls-port $1 --tls-cluster yes --tls-replication yes --tls-auth-clients no" \
      "--tls-cert-file $dir/tls/server.crt --tls-key-file $dir/tls/server.key" \
      "--tls-ca-cert-file $dir/tls/ca.crt"
  else
    echo "--port $1"
  fi
}

start_nodes() {
  local base="$1" port
  : >"$dir/ports"
  for i in 0 1 2 3 4 5; do
    port=$((base + i))
    if ! free "$port" || ! free $((port + 10000)); then
      return 1
    fi
  done
  for i in 0 1 2 3 4 5; do
    port=$((base + i))
    mkdir -p "$dir/$port"
    echo "$port" >>"$dir/ports"
    start_node "$port" || return 1
  done
  # shellcheck disable=SC2046
  await_nodes $(cat "$dir/ports")
}

# Starts the node on port $1 (its files, if any, in $dir/$1: a node that
# ran before comes back with its AOF and its place in the cluster).
start_node() {
  # shellcheck disable=SC2046
  redis-server $(listen "$1") --bind 127.0.0.1 --daemonize yes \
    --cluster-enabled yes --cluster-config-file "$dir/$1/nodes.conf" \
    --cluster-node-timeout 2000 \
    --dir "$dir/$1" --pidfile "$dir/$1/redis.pid" \
    --logfile "$dir/$1/redis.log" \
    --appendonly yes --appendfsync always --save "" \
    --maxmemory-policy noeviction \
    --repl-diskless-sync-delay 0 >/dev/null 7>&-
}

# Waits until each node on the ports given answers.
await_nodes() {
  local port
  for port in "$@"; do
    # Up to 20 s: a machine busy with other clusters' fsyncs starts slowly.
    for _ in $(seq 400); do
      cli -p "$port" ping 2>/dev/null | grep -q PONG && break
      sleep 0.05
    done
    if ! cli -p "$port" ping 2>/dev/null | grep -q PONG; then
      echo "127.0.0.1:$port did not answer:" >&2
      tail -5 "$dir/$port/redis.log" >&2 2>/dev/null || true
      return 1
    fi
    # The node answering is ours, not another cluster's that won the port.
    if [ "$(cli -p "$port" config get dir 2>/dev/null | sed -n 2p)" != "$dir/$port" ]; then
      echo "127.0.0.1:$port is another cluster's node" >&2
      return 1
    fi
  done
}

case "$action" in
  start)
    PATH="$("$here/scripts/install-tools.sh" redis-server):$PATH"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ -z "$tls" ] || make_certificates
    # One start at a time on this machine (ports are checked, then taken),
    # and an interrupted start leaves nothing running. The nodes do not
    # inherit the lock (7>&- above): it ends with this script, not with
    # the cluster, or a second start would wait for the first cluster to stop.
    exec 7>/tmp/.otpd-redis-cluster.lock
    flock 7
    trap 'stop; exit 130' INT TERM
    started=""
    for _ in 1 2 3 4 5; do
      base=$((20000 + RANDOM % 9000))
      if start_nodes "$base"; then
        started=1
        break
      fi
      stop
    done
    if [ -z "$started" ]; then
      echo "could not start 6 redis-server nodes (see $dir/*/redis.log)" >&2
      exit 1
    fi
    nodes=""
    for port in $(cat "$dir/ports"); do nodes="$nodes 127.0.0.1:$port"; done
    # shellcheck disable=SC2086
    if ! cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
      cat "$dir/create.log" >&2
      stop
      exit 1
    fi
    # Every node agrees the cluster is up and every master's replica is in
    # sync (so WAIT can count it).
    for port in $(cat "$dir/ports"); do
      for _ in $(seq 200); do
        if cli -p "$port" cluster info | grep -q 'cluster_state:ok'; then break; fi
        sleep 0.05
      done
      if ! cli -p "$port" cluster info | grep -q 'cluster_state:ok'; then
        echo "127.0.0.1:$port never saw the cluster up (see $dir/*/redis.log)" >&2
        stop
        exit 1
      fi
    done
    for port in $(cat "$dir/ports"); do
      if cli -p "$port" role | head -1 | grep -q master; then
        for _ in $(seq 200); do
          cli -p "$port" info replication | grep -q '^slave0:.*state=online' && break
          sleep 0.05
        done
        if ! cli -p "$port" info replication | grep -q '^slave0:.*state=online'; then
          echo "the replica of 127.0.0.1:$port did not come in sync (see $dir/*/redis.log)" >&2
          stop
          exit 1
        fi
      fi
    done
    trap - INT TERM
    exec 7>&-
    echo "$nodes" | sed 's/^ //; s/ /,/g'
    ;;
  revive)
    PATH="$("$here/scripts/install-tools.sh" redis-server):$PATH"
    dir="$(cd "$dir" && pwd)"
    for port in "${revive_ports[@]}"; do
      grep -qx "$port" "$dir/ports" || { echo "no node of $dir on port $port" >&2; exit 2; }
      start_node "$port"
    done
    await_nodes "${revive_ports[@]}"
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    dir="$(cd "$dir" && pwd)"
    stop
    ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# The federated firehose, hydrant -> hydrant, beside the same firehose on one server.
#
#   loadtest/scripts/federated.sh [SUBSCRIBERS] [ITEMS]      (default: 10000 200)
#
# Local: one release `hydrant` (domain local.test), SUBSCRIBERS subscribers and the
# publisher on it. Federated: two (pub.test and sub.test, each its own process and data
# dir), the publisher and the node on pub.test's pubsub service, the SUBSCRIBERS on
# sub.test, every notification crossing s2s (STARTTLS, dialback: the generated
# certificates are self-signed) on one stream pubsub.pub.test -> sub.test. Each server
# finds the other through `[s2s] overrides` on loopback. `hydrant-load firehose`, ITEMS
# items of 2 KB as fast as acks allow (4 in flight), both servers' CPU measured. Client
# connections are plaintext SCRAM-SHA-1, as in bench.sh. Per-address admission limits are
# lifted (one generator stands in for thousands of clients). Loopback only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SUBS=${1:-10000}
ITEMS=${2:-200}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p hydrant-server -p hydrant-loadtest
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
HYDRANT=$TARGET/release/hydrant LOAD=$TARGET/release/hydrant-load
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hydrant-federated.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n 20000

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
	local i
	for i in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
	echo "federated.sh: nothing listens on $1" >&2
	return 1
}

# config DOMAIN C2S_PORT S2S_PORT [OTHER_DOMAIN OTHER_S2S_PORT]
config() {
	local d=$1 c=$2 s=$3 dir=$WORK/$1
	mkdir -p "$dir"
	free_port >"$dir/metrics.port"
	cat >"$dir/hydrant.toml" <<CFG
domain = "$d"
data_dir = "$dir/data"
log = "warn"
[c2s]
listen = ["127.0.0.1:$c"]
direct_tls_listen = []
require_tls = false
max_connections = 19500
max_unauthenticated_per_ip = 100000
connections_per_ip_per_sec = 100000
connection_burst_per_ip = 100000
[registration]
enabled = true
per_ip_per_hour = 0
[pubsub]
read_bytes_per_ip_per_sec = 0
[metrics]
listen = "127.0.0.1:$(cat "$dir/metrics.port")"
[s2s]
listen = ["127.0.0.1:$s"]
CFG
	if [ $# -ge 5 ]; then
		printf '[s2s.overrides]\n"%s" = ["127.0.0.1:%s"]\n"pubsub.%s" = ["127.0.0.1:%s"]\n' \
			"$4" "$5" "$4" "$5" >>"$dir/hydrant.toml"
	fi
	echo "$dir/hydrant.toml"
}
start() { # start CONFIG PORT: prints the PID
	"$HYDRANT" serve --config "$1" >>"$(dirname "$1")/server.log" 2>&1 &
	PIDS+=($!)
	wait_port "$2"
	START_PID=$!
}
COMMON=(firehose --users "$SUBS" --items "$ITEMS" --rate 0 --tls none --auth scram-sha-1 --register
	--sources 127.0.0.2-127.0.0.254)

echo "=== local: $SUBS subscribers on the publisher's server ==="
LC=$(free_port) LS=$(free_port)
start "$(config local.test "$LC" "$LS")" "$LC"
RC=0
"$LOAD" "${COMMON[@]}" --server "127.0.0.1:$LC" --domain local.test --server-pid "$START_PID" || RC=$?

echo "=== federated: publisher on pub.test, $SUBS subscribers on sub.test ==="
PC=$(free_port) PS=$(free_port) SC=$(free_port) SS=$(free_port)
start "$(config pub.test "$PC" "$PS" sub.test "$SS")" "$PC"
PUB_PID=$START_PID
start "$(config sub.test "$SC" "$SS" pub.test "$PS")" "$SC"
SUB_PID=$START_PID
"$LOAD" "${COMMON[@]}" --server "127.0.0.1:$SC" --domain sub.test \
	--publisher-server "127.0.0.1:$PC" --publisher-domain pub.test --pubsub-service pubsub.pub.test \
	--server-pid "$SUB_PID" --publisher-server-pid "$PUB_PID" || RC=$?
# What the servers counted: refusals, waits for the other server, slow consumers.
for d in pub.test sub.test; do
	echo "--- metrics of $d ---"
	curl -s "http://127.0.0.1:$(cat "$WORK/$d/metrics.port")/metrics" |
		grep -E '^hydrant_(s2s|router_remote|pubsub_notifications_(undeliverable|refused|remote)|pubsub_publisher|c2s_slow)' || true
done
exit "$RC"

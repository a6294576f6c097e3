#!/usr/bin/env bash
# The federated firehose, Prosody -> Prosody: the counterpart of federated.sh's
# hydrant -> hydrant run and federated-ejabberd.sh's ejabberd -> ejabberd, with the same
# generator and the same firehose.
#
#   loadtest/scripts/federated-prosody.sh [SUBSCRIBERS] [ITEMS]      (default: 10000 200)
#   SKIP_BUILD=1 LOAD=/path/to/hydrant-load KEEP=1 loadtest/scripts/federated-prosody.sh 500 20
#
# Two Debian Prosody processes, each its own config, data dir and log, run as the prosody
# user: pub.test (the publisher and the node, on the pubsub component pubsub.pub.test)
# and sub.test (the SUBSCRIBERS), every notification crossing s2s on one stream
# pubsub.pub.test -> sub.test. `hydrant-load firehose`: ITEMS items of 2 KB as fast as
# acks allow (4 in flight), plaintext SCRAM-SHA-1 client connections, both servers' CPU
# measured.
#
# Isolation: everything runs inside a private network + mount namespace made here
# (unshare, as tests/federation/run.sh does), whose only interface is lo: pub.test on
# 127.0.0.2, sub.test on 127.0.0.3, each with c2s on 5222 and s2s on 5269. Nothing leaves
# the namespace, DNS included.
#
# How the servers find each other: Prosody resolves with libunbound (lua-unbound) and
# asks for _xmpp-server._tcp SRV records, then, when there are none, connects to the
# domain's address on port 5269. libunbound answers the RFC 6761 .test zone itself:
# NXDOMAIN for the SRV records, and, with `unbound = { hoststxt = true }`, the addresses
# of /etc/hosts, which inside the mount namespace (bind-mounted there only) lists
# pub.test, pubsub.pub.test and sub.test with their 127.0.0.x address. /etc/resolv.conf
# there names a nameserver that does not exist (127.0.0.1:53). No DNS server.
#
# s2s: encryption required (s2s_require_encryption, STARTTLS), certificates from a
# throw-away CA that both servers trust, so the streams authenticate with SASL EXTERNAL
# (mod_dialback is loaded as in the stock configuration but not needed). hydrant's
# federated.sh also encrypts its s2s stream (STARTTLS, dialback), so both pay for TLS.
#
# Settings of the generator, as loadtest/bench.sh gives Prosody: registration open
# (min_seconds_between_registrations = 0, 127.0.0.0/8 allow-listed), no mod_limits (no
# c2s or s2s rate limits), the publishers are admins (Prosody's pubsub lets only admins
# create nodes), network_backend epoll, pubsub_max_items MAX_ITEMS (256) and nodes
# created with that max_items.
#
# Memory: Prosody, too, acknowledges a publish once its notifications are written to the
# s2s stream's buffer, which holds what the peer has not taken yet (measured here: at
# 2,000 x 50 the publishes were acknowledged within 15 s, the stream drained at ~1,300
# notifications/s, and pub.test peaked at 750 MB, ~7 KB per queued notification). A guard
# reads both servers' RSS every 0.5 s; past MEM_LIMIT_MB together (12,000), it kills the
# larger and the generator, and the run fails (exit 1, the report says so).
#
# On exit, also on failure, both Prosody processes are stopped by their PIDs (TERM, 10 s,
# KILL).
#
# Needs root (namespaces, setpriv), prosody and lua-unbound (Debian's), openssl, iproute2,
# util-linux. The fd limit is raised to 20,000 (SUBSCRIBERS up to 10,000 fit one
# generator). Environment: LOAD (hydrant-load binary; default
# $CARGO_TARGET_DIR/release/hydrant-load, built here unless SKIP_BUILD=1), MAX_ITEMS
# (256), MEM_LIMIT_MB (12000), DEADLINE (3600: seconds after which the generator gives
# up), KEEP=1 (keep the work dir and logs), LOGLEVEL (Prosody's, warn; info shows each
# s2s stream and how it authenticated).
set -euo pipefail
SUBS=${1:-10000}
ITEMS=${2:-200}
MAX_ITEMS=${MAX_ITEMS:-256}
MEM_LIMIT_MB=${MEM_LIMIT_MB:-12000}
DEADLINE=${DEADLINE:-3600}
LOGLEVEL=${LOGLEVEL:-warn}
PUB_ADDR=127.0.0.2 SUB_ADDR=127.0.0.3

running() { [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# fwd CMD...: runs CMD and returns its status; a TERM or INT meanwhile is passed on to it
# as TERM (a background command ignores INT), and CMD is waited for, so its cleanup runs.
fwd() {
	local pid rc=0
	"$@" &
	pid=$!
	trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
	while kill -0 "$pid" 2>/dev/null; do
		# wait returns early (status > 128) when a trapped signal arrives
		wait "$pid" && rc=0 || rc=$?
	done
	trap - INT TERM
	return "$rc"
}

# ---------------------------------------------------------------- inside the namespace ----
# The script runs itself again inside the namespace, with FEDP_W set to the work dir.
if [ -n "${FEDP_W:-}" ]; then
	W=$FEDP_W
	STARTED=() # the Prosody processes (setpriv execs prosody: same PID)
	alive() { # any of them still running?
		local p
		for p in "${STARTED[@]}"; do running "$p" && return 0; done
		return 1
	}
	GUARD=
	stop_all() {
		local p i
		[ -z "$GUARD" ] || kill "$GUARD" 2>/dev/null || true
		for p in "${STARTED[@]}"; do running "$p" && kill "$p" 2>/dev/null || true; done
		for i in $(seq 100); do alive || break; sleep 0.1; done
		for p in "${STARTED[@]}"; do running "$p" && kill -KILL "$p" 2>/dev/null || true; done
		for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
	}
	trap stop_all EXIT
	ulimit -n 20000
	ip link set lo up
	# Each address as a /32 of its own: glibc's AI_ADDRCONFIG ignores a lone 127.0.0.1.
	for a in "$PUB_ADDR" "$SUB_ADDR"; do ip addr add "$a/32" dev lo; done
	mount --bind "$W/hosts" /etc/hosts
	mount --bind "$W/resolv.conf" /etc/resolv.conf

	wait_port() { # ADDR PORT WHAT DIR PID
		local i
		for i in $(seq 600); do
			(echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0
			running "$5" || break
			sleep 0.1
		done
		echo "federated-prosody.sh: $3 is not listening on $1:$2" >&2
		tail -n 40 "$4/prosody.log" "$4/stdout.log" >&2 || true
		return 1
	}
	for d in pub sub; do
		setpriv --reuid=prosody --regid=prosody --init-groups -- \
			prosody --config "$W/$d/prosody.cfg.lua" -F >"$W/$d/stdout.log" 2>&1 &
		STARTED+=($!)
	done
	wait_port "$PUB_ADDR" 5222 "pub.test c2s" "$W/pub" "${STARTED[0]}"
	wait_port "$PUB_ADDR" 5269 "pub.test s2s" "$W/pub" "${STARTED[0]}"
	wait_port "$SUB_ADDR" 5222 "sub.test c2s" "$W/sub" "${STARTED[1]}"
	wait_port "$SUB_ADDR" 5269 "sub.test s2s" "$W/sub" "${STARTED[1]}"

	PUB_PID=${STARTED[0]} SUB_PID=${STARTED[1]}
	# The memory guard (see the header): if both servers together pass MEM_LIMIT_MB, the
	# larger is killed, and so is the generator (TERM to this shell, which passes it on).
	rss_kib() { local v; v=$(awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || true); echo "${v:-0}"; }
	guard() {
		local pub sub
		while sleep 0.5; do
			pub=$(rss_kib "$PUB_PID") sub=$(rss_kib "$SUB_PID")
			[ $(((pub + sub) / 1024)) -gt "$MEM_LIMIT_MB" ] || continue
			echo "federated-prosody.sh: MEMORY GUARD: pub.test $((pub / 1024)) MiB + sub.test" \
				"$((sub / 1024)) MiB > MEM_LIMIT_MB=$MEM_LIMIT_MB: killing the larger" >&2
			if [ "$pub" -gt "$sub" ]; then kill -KILL "$PUB_PID"; else kill -KILL "$SUB_PID"; fi
			echo "pub.test $((pub / 1024)) MiB, sub.test $((sub / 1024)) MiB" >"$W/guard"
			kill -TERM $$
			return
		done
	}
	guard &
	GUARD=$!

	echo "=== federated (Prosody): publisher on pub.test, $SUBS subscribers on sub.test ==="
	RC=0
	fwd "$W/bin/hydrant-load" firehose --users "$SUBS" --items "$ITEMS" --rate 0 --tls none --auth scram-sha-1 \
		--register --sources 127.0.0.4-127.0.0.254 --max-items "$MAX_ITEMS" \
		--server "$SUB_ADDR:5222" --domain sub.test \
		--publisher-server "$PUB_ADDR:5222" --publisher-domain pub.test --pubsub-service pubsub.pub.test \
		--server-pid "$SUB_PID" --publisher-server-pid "$PUB_PID" --deadline-secs "$DEADLINE" \
		--json "$W/result.json" || RC=$?
	kill "$GUARD" 2>/dev/null || true
	# What the servers saw: peak memory, anything they logged (warnings and up).
	for d in pub sub; do
		p=$PUB_PID
		[ "$d" = sub ] && p=$SUB_PID
		peak=$(awk '/^VmHWM/{print int($2 / 1024) " MiB"}' "/proc/$p/status" 2>/dev/null || true)
		echo "--- prosody $d.test: peak RSS ${peak:-?}; log (warnings and errors, last 10) ---"
		grep -E '\s(warn|error)\s' "$W/$d/prosody.log" 2>/dev/null | tail -n 10 || true
	done
	if [ -s "$W/guard" ]; then
		echo "*** the memory guard killed a server ($(cat "$W/guard") > MEM_LIMIT_MB=$MEM_LIMIT_MB): this run's figures are not a result ***"
		RC=1
	fi
	exit "$RC"
fi

# ---------------------------------------------------------------- outside: set up ----
die() { echo "federated-prosody.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (network namespace, setpriv)"
for c in prosody openssl unshare ip setpriv; do
	command -v "$c" >/dev/null || die "missing command: $c"
done
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SELF=$PWD/loadtest/scripts/$(basename "${BASH_SOURCE[0]}")
if [ -z "${LOAD:-}" ]; then
	[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p hydrant-loadtest
	LOAD=${CARGO_TARGET_DIR:-$PWD/target}/release/hydrant-load
fi
[ -x "$LOAD" ] || die "no hydrant-load at $LOAD"

W=$(mktemp -d "${TMPDIR:-/tmp}/hydrant-fed-prosody.XXXXXX")
chmod 755 "$W"
cleanup() {
	local p i
	# A backstop: the inner run stops both servers; if it was killed, stop them here.
	for p in $(cat "$W"/*/prosody.pid 2>/dev/null); do
		if [ -d "/proc/$p" ] && grep -q prosody "/proc/$p/cmdline" 2>/dev/null; then
			kill "$p" 2>/dev/null || true
			for i in $(seq 50); do [ -d "/proc/$p" ] || break; sleep 0.1; done
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	if [ -n "${KEEP:-}" ]; then echo "kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
# A copy: a rebuild elsewhere during the run cannot swap the binary under us.
mkdir -p "$W/bin"
cp "$LOAD" "$W/bin/hydrant-load"

# Certificates: a throw-away CA, a leaf per server (its domain and pubsub subdomain).
mkdir -p "$W/ca"
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=federated-prosody test CA" \
	-keyout "$W/ca/ca.key" -out "$W/ca/ca.crt" 2>/dev/null
leaf() { # leaf DOMAIN DIR: DIR/leaf.key and DIR/leaf.crt
	cat >"$2/leaf.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $1
[ext]
subjectAltName = DNS:$1, DNS:pubsub.$1
extendedKeyUsage = serverAuth, clientAuth
basicConstraints = CA:FALSE
CNF
	openssl req -newkey rsa:2048 -nodes -keyout "$2/leaf.key" -out "$2/leaf.csr" \
		-config "$2/leaf.cnf" 2>/dev/null
	openssl x509 -req -in "$2/leaf.csr" -CA "$W/ca/ca.crt" -CAkey "$W/ca/ca.key" \
		-CAcreateserial -days 365 -extfile "$2/leaf.cnf" -extensions ext -out "$2/leaf.crt" 2>/dev/null
	rm -f "$2/leaf.csr"
}

# prosody_instance NAME DOMAIN ADDR: config, data dir and log
prosody_instance() {
	local n=$1 d=$2 a=$3 P=$W/$1 component=''
	mkdir -p "$P/data" "$P/certs"
	leaf "$d" "$P/certs"
	[ "$n" = pub ] && component="
-- Prosody's pubsub lets only admins create nodes: the publisher (pub0) is one.
Component \"pubsub.$d\" \"pubsub\"
	pubsub_max_items = $MAX_ITEMS"
	cat >"$P/prosody.cfg.lua" <<CFG
pidfile = "$P/prosody.pid"
data_path = "$P/data"
admin_socket = "$P/prosody.sock"
log = { $LOGLEVEL = "$P/prosody.log" }
daemonize = false
interfaces = { "$a" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
network_backend = "epoll"
use_ipv6 = false
-- libunbound: the addresses of /etc/hosts; the .test zone is its own (NXDOMAIN for SRV).
unbound = { hoststxt = true }
-- No mod_limits (rate limits) and no c2s TLS: the same plaintext client streams as the others.
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "register"; "posix"; }
modules_disabled = { "limits"; }
ssl = { certificate = "$P/certs/leaf.crt"; key = "$P/certs/leaf.key"; cafile = "$W/ca/ca.crt" }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
authentication = "internal_hashed"
storage = "internal"
allow_registration = true
min_seconds_between_registrations = 0
registration_allowlist = { "127.0.0.0/8" }
admins = { "pub0@pub.test" }
VirtualHost "$d"$component
CFG
	chown -R prosody:prosody "$P"
}
# The namespace's name service (bind-mounted there by the inner run).
printf '127.0.0.1 localhost\n%s pub.test pubsub.pub.test\n%s sub.test\n' "$PUB_ADDR" "$SUB_ADDR" >"$W/hosts"
echo "nameserver 127.0.0.1" >"$W/resolv.conf"
chmod 644 "$W/hosts" "$W/resolv.conf"
prosody_instance pub pub.test "$PUB_ADDR"
prosody_instance sub sub.test "$SUB_ADDR"
chmod 644 "$W/ca/ca.crt"

# The namespace lives as long as the inner run: it stops what it started.
RC=0
FEDP_W=$W MAX_ITEMS=$MAX_ITEMS MEM_LIMIT_MB=$MEM_LIMIT_MB DEADLINE=$DEADLINE \
	fwd unshare --net --mount --propagation private -- "$SELF" "$SUBS" "$ITEMS" || RC=$?
exit "$RC"

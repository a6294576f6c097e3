#!/usr/bin/env bash
# The federated firehose, ejabberd -> ejabberd: the counterpart of federated.sh's
# hydrant -> hydrant run, with the same generator and the same firehose.
#
#   loadtest/scripts/federated-ejabberd.sh [SUBSCRIBERS] [ITEMS]      (default: 10000 200)
#   SKIP_BUILD=1 LOAD=/path/to/hydrant-load KEEP=1 loadtest/scripts/federated-ejabberd.sh 500 20
#
# Two Debian ejabberd instances, each its own Erlang VM, config dir, spool and logs, run
# as the ejabberd user: pub.test (the publisher and the node, on its mod_pubsub service
# pubsub.pub.test) and sub.test (the SUBSCRIBERS), every notification crossing s2s on one
# stream pubsub.pub.test -> sub.test (ejabberd opens one per pair of domains).
# `hydrant-load firehose`: ITEMS items of 2 KB as fast as acks allow (4 in flight),
# plaintext SCRAM-SHA-1 client connections, both servers' CPU measured (their beam.smp
# processes).
#
# Isolation: everything runs inside a private network + mount namespace made here
# (unshare, as tests/federation/run.sh does), whose only interface is lo: pub.test on
# 127.0.0.2, sub.test on 127.0.0.3, each with c2s on 5222 and s2s on 5269. Nothing leaves
# the namespace, DNS included.
#
# How the servers find each other: ejabberd asks DNS for _xmpp-server._tcp (and
# _xmpps-server._tcp) SRV records with Erlang's resolver, then falls back to the domain's
# address, through libc's getaddrinfo, on port 5269 (outgoing_s2s_port's default). Inside
# the mount namespace, /etc/resolv.conf names a nameserver that does not exist
# (127.0.0.1:53: every SRV query is refused at once) and /etc/hosts lists pub.test,
# pubsub.pub.test and sub.test with their 127.0.0.x address (both bind-mounted there
# only): the fallback finds the peer's s2s port. No DNS server, no SRV records.
#
# s2s: STARTTLS required both ways (s2s_use_starttls: required), certificates from a
# throw-away CA that both servers trust, so the streams authenticate with SASL EXTERNAL
# (mod_s2s_dialback is loaded as in the stock configuration but not needed). hydrant's
# federated.sh also encrypts its s2s stream (STARTTLS, dialback), so both pay for TLS.
#
# Settings of the generator, as loadtest/bench.sh gives ejabberd: registration open
# (mod_register for all, registration_timeout: infinity), c2s_shaper: none, and
# s2s_shaper: none (Debian's stock config shapes every s2s stream to 200 kB/s, `fast`:
# the benchmark measures the server, not a shaper; the s2s_in listener has shaper: none
# too); max_fsm_queue left unset (23.01's default: the outgoing s2s stream's queue is
# unbounded, so SUBSCRIBERS notifications per item on one stream are not cut; each
# subscriber's c2s process keeps the listeners' default limit, 10,000 queued stanzas,
# more than the ITEMS it receives); mod_pubsub `flat` with max_items_node MAX_ITEMS
# (256), nodes created with that max_items; c2s listener backlog 1024.
#
# Memory: ejabberd puts no backpressure from an s2s stream on the publisher. A publish
# is acknowledged once its notifications are routed, and pub.test's outgoing s2s stream
# holds whatever the peer has not taken yet (measured here: ~13 KB of pub.test's memory
# per queued notification; at 2,000 x 100 the publishes were acknowledged within 2 s,
# the stream drained at ~10,000 notifications/s, and pub.test peaked at 2.6 GB). The
# default 10,000 x 200 would queue most of 2,000,000 notifications: ~25 GB. So a guard
# reads both VMs' RSS every 0.5 s; past MEM_LIMIT_MB together (12,000), it kills the
# larger VM and the generator, and the run fails (exit 1, the report says so).
#
# The Erlang distribution (ejabberdctl's channel to each VM): no epmd; each VM listens
# on its own fixed port (ERL_DIST_PORT 15211 and 15212, inside the namespace) with its
# own node name (ejpub@localhost, ejsub@localhost) and cookie. On exit, also on failure,
# both instances are stopped (`ejabberdctl stop`, then their PIDs), and any epmd that
# runs in this namespace (none should) is killed by its PID.
#
# Needs root (namespaces, setpriv), ejabberd (Debian's), openssl, iproute2, util-linux.
# The fd limit is raised to 20,000 (SUBSCRIBERS up to 10,000 fit one generator).
# Environment: LOAD (hydrant-load binary; default $CARGO_TARGET_DIR/release/hydrant-load,
# built here unless SKIP_BUILD=1), MAX_ITEMS (256), MEM_LIMIT_MB (12000), DEADLINE
# (3600: seconds after which the generator gives up), KEEP=1 (keep the work dir and
# logs), LOGLEVEL (ejabberd's, warning; info shows how each s2s stream authenticated).
set -euo pipefail
SUBS=${1:-10000}
ITEMS=${2:-200}
MAX_ITEMS=${MAX_ITEMS:-256}
MEM_LIMIT_MB=${MEM_LIMIT_MB:-12000}
DEADLINE=${DEADLINE:-3600}
LOGLEVEL=${LOGLEVEL:-warning}
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
# The script runs itself again inside the namespace, with EJFED_W set to the work dir.
if [ -n "${EJFED_W:-}" ]; then
	W=$EJFED_W
	STARTED=() # the ejabberdctl wrappers; each one's child is its Erlang VM
	NS=$(readlink /proc/self/ns/net)
	vm_pids() { cat "$W"/*/ejabberd.pid "$W/vm.pids" 2>/dev/null | sort -u || true; }
	alive() { # any of our processes still running?
		local p
		for p in $(vm_pids) "${STARTED[@]}"; do running "$p" && return 0; done
		return 1
	}
	wait_gone() { # SECONDS
		local i
		for i in $(seq $(($1 * 10))); do alive || return 0; sleep 0.1; done
		! alive
	}
	GUARD=
	stop_all() {
		local d p
		[ -z "$GUARD" ] || kill "$GUARD" 2>/dev/null || true
		# Politely first; `ejabberdctl stop` returns before the VM has exited.
		for d in pub sub; do timeout 30 "$W/$d/ejctl" stop >/dev/null 2>&1 || true; done
		if ! wait_gone 30; then
			# By PID: TERM, 5 s, KILL.
			for p in $(vm_pids) "${STARTED[@]}"; do [ -d "/proc/$p" ] && kill "$p" 2>/dev/null || true; done
			wait_gone 5 || for p in $(vm_pids) "${STARTED[@]}"; do
				[ -d "/proc/$p" ] && kill -KILL "$p" 2>/dev/null || true
			done
		fi
		for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
		# An epmd of this namespace (-start_epmd false should mean there is none).
		for p in $(pgrep -x epmd || true); do
			[ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$NS" ] && kill "$p" 2>/dev/null || true
		done
	}
	trap stop_all EXIT
	ulimit -n 20000
	ip link set lo up
	# Each address as a /32 of its own: glibc's AI_ADDRCONFIG ignores a lone 127.0.0.1.
	for a in "$PUB_ADDR" "$SUB_ADDR"; do ip addr add "$a/32" dev lo; done
	mount --bind "$W/hosts" /etc/hosts
	mount --bind "$W/resolv.conf" /etc/resolv.conf

	wait_port() { # ADDR PORT WHAT DIR WRAPPER_PID
		local i
		for i in $(seq 600); do
			(echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0
			running "$5" || break
			sleep 0.1
		done
		echo "federated-ejabberd.sh: $3 is not listening on $1:$2" >&2
		tail -n 40 "$4/log/ejabberd.log" "$4/log/foreground.out" >&2 || true
		return 1
	}
	for d in pub sub; do
		"$W/$d/ejctl" foreground >"$W/$d/log/foreground.out" 2>&1 &
		STARTED+=($!)
	done
	wait_port "$PUB_ADDR" 5222 "pub.test c2s" "$W/pub" "${STARTED[0]}"
	wait_port "$PUB_ADDR" 5269 "pub.test s2s" "$W/pub" "${STARTED[0]}"
	wait_port "$SUB_ADDR" 5222 "sub.test c2s" "$W/sub" "${STARTED[1]}"
	wait_port "$SUB_ADDR" 5269 "sub.test s2s" "$W/sub" "${STARTED[1]}"
	PUB_PID=$(cat "$W/pub/ejabberd.pid") SUB_PID=$(cat "$W/sub/ejabberd.pid")
	# ejabberd removes its pid file when it stops: keep the PIDs for the cleanups.
	echo "$PUB_PID $SUB_PID" | tr ' ' '\n' >"$W/vm.pids"

	# The memory guard (see the header): if both VMs together pass MEM_LIMIT_MB, the larger
	# is killed, and so is the generator (TERM to this shell, which passes it on).
	rss_kib() { local v; v=$(awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || true); echo "${v:-0}"; }
	guard() {
		local pub sub
		while sleep 0.5; do
			pub=$(rss_kib "$PUB_PID") sub=$(rss_kib "$SUB_PID")
			[ $(((pub + sub) / 1024)) -gt "$MEM_LIMIT_MB" ] || continue
			echo "federated-ejabberd.sh: MEMORY GUARD: pub.test $((pub / 1024)) MiB + sub.test" \
				"$((sub / 1024)) MiB > MEM_LIMIT_MB=$MEM_LIMIT_MB: killing the larger" >&2
			if [ "$pub" -gt "$sub" ]; then kill -KILL "$PUB_PID"; else kill -KILL "$SUB_PID"; fi
			echo "pub.test $((pub / 1024)) MiB, sub.test $((sub / 1024)) MiB" >"$W/guard"
			kill -TERM $$
			return
		done
	}
	guard &
	GUARD=$!

	echo "=== federated (ejabberd): publisher on pub.test, $SUBS subscribers on sub.test ==="
	RC=0
	fwd "$W/bin/hydrant-load" firehose --users "$SUBS" --items "$ITEMS" --rate 0 --tls none --auth scram-sha-1 \
		--register --sources 127.0.0.4-127.0.0.254 --max-items "$MAX_ITEMS" \
		--server "$SUB_ADDR:5222" --domain sub.test \
		--publisher-server "$PUB_ADDR:5222" --publisher-domain pub.test --pubsub-service pubsub.pub.test \
		--server-pid "$SUB_PID" --publisher-server-pid "$PUB_PID" --deadline-secs "$DEADLINE" \
		--json "$W/result.json" || RC=$?
	kill "$GUARD" 2>/dev/null || true
	ctl_number() { # NAME COMMAND: a count from ejabberdctl, or ? (a VM that is gone)
		local n
		n=$("$W/$1/ejctl" "$2" 2>/dev/null || true)
		case $n in '' | *[!0-9]*) echo '?' ;; *) echo "$n" ;; esac
	}
	# What the servers saw: peak memory, s2s streams, anything they logged (warnings and up).
	for d in pub sub; do
		p=$PUB_PID
		[ "$d" = sub ] && p=$SUB_PID
		peak=$(awk '/^VmHWM/{print int($2 / 1024) " MiB"}' "/proc/$p/status" 2>/dev/null || true)
		echo "--- ejabberd $d.test: peak RSS ${peak:-?}," \
			"s2s streams out $(ctl_number "$d" outgoing_s2s_number), in $(ctl_number "$d" incoming_s2s_number);" \
			"log (warnings and errors, last 10) ---"
		grep -E '\[(warning|error|critical)\]' "$W/$d/log/ejabberd.log" 2>/dev/null | tail -n 10 || true
	done
	if [ -s "$W/guard" ]; then
		echo "*** the memory guard killed a server ($(cat "$W/guard") > MEM_LIMIT_MB=$MEM_LIMIT_MB): this run's figures are not a result ***"
		RC=1
	fi
	exit "$RC"
fi

# ---------------------------------------------------------------- outside: set up ----
die() { echo "federated-ejabberd.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (network namespace, setpriv)"
for c in ejabberdctl openssl unshare ip setpriv timeout; do
	command -v "$c" >/dev/null || die "missing command: $c"
done
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SELF=$PWD/loadtest/scripts/$(basename "${BASH_SOURCE[0]}")
if [ -z "${LOAD:-}" ]; then
	[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p hydrant-loadtest
	LOAD=${CARGO_TARGET_DIR:-$PWD/target}/release/hydrant-load
fi
[ -x "$LOAD" ] || die "no hydrant-load at $LOAD"

W=$(mktemp -d "${TMPDIR:-/tmp}/hydrant-fed-ejabberd.XXXXXX")
chmod 755 "$W"
cleanup() {
	local p i
	# A backstop: the inner run stops both VMs; if it was killed, stop them here.
	for p in $(cat "$W"/*/ejabberd.pid "$W/vm.pids" 2>/dev/null | sort -u); do
		if [ -d "/proc/$p" ] && grep -q beam "/proc/$p/cmdline" 2>/dev/null; then
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
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=federated-ejabberd test CA" \
	-keyout "$W/ca/ca.key" -out "$W/ca/ca.crt" 2>/dev/null
leaf() { # leaf DOMAIN DIR: DIR/server.pem, key and certificate
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
	cat "$2/leaf.key" "$2/leaf.crt" >"$2/server.pem"
	rm -f "$2/leaf.key" "$2/leaf.csr"
}

# ejabberd_instance NAME DOMAIN ADDR DIST_PORT: config dir, spool, logs and ctl wrapper
ejabberd_instance() {
	local n=$1 d=$2 a=$3 dist=$4 E=$W/$1 pubsub=''
	mkdir -p "$E/db" "$E/log"
	leaf "$d" "$E"
	[ "$n" = pub ] && pubsub="
  mod_pubsub:
    hosts:
      - \"pubsub.$d\"
    access_createnode: pubsub_createnode
    max_items_node: $MAX_ITEMS
    plugins:
      - flat"
	cat >"$E/ejabberd.yml" <<CFG
hosts:
  - "$d"
loglevel: $LOGLEVEL
log_rotate_count: 0
certfiles:
  - "$E/server.pem"
ca_file: "$W/ca/ca.crt"
s2s_cafile: "$W/ca/ca.crt"
listen:
  -
    port: 5222
    ip: "$a"
    module: ejabberd_c2s
    # The default accept backlog (5) drops connections under a connect burst.
    backlog: 1024
    max_stanza_size: 262144
    shaper: c2s_shaper
    access: c2s
    starttls_required: false
  -
    port: 5269
    ip: "$a"
    module: ejabberd_s2s_in
    backlog: 1024
    shaper: none
s2s_use_starttls: required
s2s_access: all
outgoing_s2s_families:
  - ipv4
outgoing_s2s_ipv4_address: "$a"
auth_method: internal
auth_password_format: scram
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
  pubsub_createnode:
    allow: local
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 100
  c2s_shaper: none
  s2s_shaper: none
modules:
  mod_disco: {}
  mod_ping: {}
  mod_register:
    ip_access: all
    access: register
  mod_roster: {}
  mod_s2s_dialback: {}$pubsub
CFG
	cat >"$E/ejabberdctl.cfg" <<CFG
ERLANG_NODE=ej$n@localhost
ERL_DIST_PORT=$dist
ERL_OPTIONS="-setcookie fedej$n -kernel inet_dist_use_interface {127,0,0,1} -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$E/ejabberd.pid
CONTRIB_MODULES_PATH=$E/contrib
CONTRIB_MODULES_CONF_DIR=$E/contrib/conf
CFG
	# Erlang's resolver (the SRV queries): the namespace's /etc/hosts and resolv.conf.
	printf '{lookup, ["file", "native"]}.\n{resolv_conf, "/etc/resolv.conf"}.\n' >"$E/inetrc"
	cat >"$E/ejctl" <<CTL
#!/bin/sh
exec env HOME="$E" setpriv --reuid=ejabberd --regid=ejabberd --init-groups -- \\
  /usr/sbin/ejabberdctl --config-dir "$E" --ctl-config "$E/ejabberdctl.cfg" --spool "$E/db" --logs "$E/log" "\$@"
CTL
	chmod 755 "$E/ejctl"
	chown -R ejabberd:ejabberd "$E"
}
# The namespace's name service (bind-mounted there by the inner run).
printf '127.0.0.1 localhost\n%s pub.test pubsub.pub.test\n%s sub.test\n' "$PUB_ADDR" "$SUB_ADDR" >"$W/hosts"
echo "nameserver 127.0.0.1" >"$W/resolv.conf"
chmod 644 "$W/hosts" "$W/resolv.conf"
ejabberd_instance pub pub.test "$PUB_ADDR" 15211
ejabberd_instance sub sub.test "$SUB_ADDR" 15212
chmod 644 "$W/ca/ca.crt"

# The namespace lives as long as the inner run: it stops what it started.
RC=0
EJFED_W=$W MAX_ITEMS=$MAX_ITEMS MEM_LIMIT_MB=$MEM_LIMIT_MB DEADLINE=$DEADLINE \
	fwd unshare --net --mount --propagation private -- "$SELF" "$SUBS" "$ITEMS" || RC=$?
exit "$RC"

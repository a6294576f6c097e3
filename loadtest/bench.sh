#!/usr/bin/env bash
# hydrant vs Prosody vs ejabberd (and the machine's ceiling) on the pubsub scenarios of
# hydrant-load, in one run; writes BENCHMARKS.md at the repository root.
#
#   loadtest/bench.sh                       # all servers, default sizes (~ minutes)
#   SUBS=5000 FEED_ITEMS=4000 loadtest/bench.sh
#   SERVERS="hydrant ejabberd" OUT=/tmp/b.md loadtest/bench.sh
#   REPORT_ONLY=/tmp/hl-bench.XXXXXX loadtest/bench.sh   # rewrite BENCHMARKS.md from a run
#   SCENARIOS="firehose-rate hostile" OUT=loadtest/runs/DATE-hostile.md loadtest/bench.sh
#   RUNS_ONLY=1 loadtest/bench.sh   # refresh BENCHMARKS.md's focused runs and history
#
# A focused run (OUT under loadtest/runs/) is a report of its own; BENCHMARKS.md lists
# every focused run with its targets table, after the full run's tables.
#
# Sizes (environment): SUBS (subscribers, 1000), FIREHOSE_ITEMS (200, published as fast
# as acks allow), RATE_ITEMS (120, published at RATE=60/s); LARGE_SUBS (10000),
# LARGE_ITEMS (30, as fast as acks allow), LARGE_RATE_ITEMS (30 at LARGE_RATE=5/s);
# FEEDS (100), FOLLOW (10), ZIPF (1.0), FEED_ITEMS (1000), IN_FLIGHT (4), ITEM_BYTES
# (2048), MAX_ITEMS (256); CONNECT (idle connection counts, "10000 19000"); DEADLINE (900:
# seconds after which one generator run gives up).
# SCENARIOS picks from: connect-N (N in CONNECT), firehose-max, firehose-rate,
# firehose-max-large, firehose-rate-large, feeds, firehose-max-zlib and
# firehose-max-large-zlib (XEP-0138 zlib on
# every stream, for the servers in ZLIB_SERVERS: "hydrant ejabberd"; Prosody 0.12 ships
# no stream compression), hostile (firehose-rate while attackers
# run issue 8's attacks, ATTACK_CONNS=50 loops of each, from ATTACKERS=127.0.1.1-127.0.1.5,
# one address per attack; compared with firehose-rate, so run both), publishers
# (PUBLISHERS=200 publishers with a node each, each publishing as fast as its acks allow
# with PUB_IN_FLIGHT=1 in flight, PUB_SUBS=10 subscribers per node, PUB_ITEMS=4000 items
# in total), subscribe-storm (STORM_USERS=10000 clients log in and subscribe to one node,
# STORM_CONCURRENCY=200 at a time, against as many logins alone in the same run), mobile
# (firehose at RATE for MOBILE_ITEMS=3600 items, one minute at 60/s, with half the SUBS
# subscribers XEP-0352 inactive: their TCP wake-ups per minute; Prosody with
# mod_csi_simple, ejabberd with mod_client_state, each with its defaults).
#
# The binaries come from CARGO_TARGET_DIR (default: target/ in the tree), built here
# unless SKIP_BUILD=1 (build them first, e.g. under a lock shared with other builds).
#
# hydrant runs firehose-rate and hostile with its default per-address admission limits
# (the 1,000 subscribers come from 253 addresses, ~4 each, under them; the attackers
# from their own addresses meet them) and registration budget (the run's accounts are
# registered first, under the lifted limits); every other scenario lifts them for the
# generator. Prosody and ejabberd keep the generator's settings (registration
# throttles off) in every scenario.
#
# Needs root: installs prosody and ejabberd from Debian if missing (their services are
# not started: Debian's policy-rc.d), runs them as their own users with private configs
# under a temp dir, plaintext c2s on 127.0.0.1, SCRAM-SHA-1, no shapers or rate limits,
# pubsub on pubsub.bench.test (publishers are admins in Prosody, which lets only admins
# create nodes). Every server is started fresh for every scenario and stopped by its
# PID (ejabberd: `ejabberdctl stop` first; its Erlang distribution on a private port
# with ERL_DIST_PORT, no epmd). Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVERS=${SERVERS:-"hydrant prosody ejabberd"}
SUBS=${SUBS:-1000}
FIREHOSE_ITEMS=${FIREHOSE_ITEMS:-200}
RATE=${RATE:-60}
RATE_ITEMS=${RATE_ITEMS:-120}
FEEDS=${FEEDS:-100}
FOLLOW=${FOLLOW:-10}
ZIPF=${ZIPF:-1.0}
FEED_ITEMS=${FEED_ITEMS:-1000}
LARGE_SUBS=${LARGE_SUBS:-10000}
LARGE_ITEMS=${LARGE_ITEMS:-30}
LARGE_RATE=${LARGE_RATE:-5}
LARGE_RATE_ITEMS=${LARGE_RATE_ITEMS:-30}
CONNECT=${CONNECT:-"10000 19000"}
ZLIB_SERVERS=${ZLIB_SERVERS:-"hydrant ejabberd"}
ATTACK_CONNS=${ATTACK_CONNS:-50}
ATTACKERS=${ATTACKERS:-127.0.1.1-127.0.1.5}
IN_FLIGHT=${IN_FLIGHT:-4}
PUBLISHERS=${PUBLISHERS:-200}
PUB_SUBS=${PUB_SUBS:-10}
PUB_ITEMS=${PUB_ITEMS:-4000}
PUB_IN_FLIGHT=${PUB_IN_FLIGHT:-1}
STORM_USERS=${STORM_USERS:-10000}
STORM_CONCURRENCY=${STORM_CONCURRENCY:-200}
MOBILE_ITEMS=${MOBILE_ITEMS:-3600}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ITEM_BYTES=${ITEM_BYTES:-2048}
MAX_ITEMS=${MAX_ITEMS:-256}
# Every generator run gives up after this long: a server that stops answering under
# attack fails its row instead of hanging the whole run.
DEADLINE=${DEADLINE:-900}
OUT=${OUT:-$ROOT/BENCHMARKS.md}
DOMAIN=bench.test

SCENARIOS=${SCENARIOS:-"$(for n in $CONNECT; do printf 'connect-%s ' "$n"; done)firehose-max firehose-rate firehose-max-large firehose-rate-large feeds firehose-max-zlib firehose-max-large-zlib hostile publishers subscribe-storm mobile"}
RUNS_DIR=$ROOT/loadtest/runs
# The focused runs and HISTORY.md, as the sections that end BENCHMARKS.md (before its
# commands): written by a full run, or refreshed alone with RUNS_ONLY=1.
tail_sections() {
	python3 - "$RUNS_DIR" "$ROOT/loadtest/HISTORY.md" <<'PY'
import glob, os, sys
runs, history = sys.argv[1], sys.argv[2]
L = []
def date_of(p):
    return next((l for l in open(p).read().splitlines() if l.startswith("- date: ")), "")
files = sorted(glob.glob(os.path.join(runs, "*.md")), key=lambda p: (date_of(p), p), reverse=True)
if files:
    L.append("## Focused runs\n")
    L.append("Runs of a few scenarios, newest first, each a report of its own with its machine, "
             "versions and commands (figures compare within one run only).\n")
    for p in files:
        lines = open(p).read().splitlines()
        rel = os.path.relpath(p, os.path.dirname(runs.rstrip("/")) + "/..")
        facts = [l[2:] for l in lines if (l.startswith("- hydrant: ") and "build" in l) or l.startswith("- date: ")]
        L.append(f"### [{rel}]({rel}) ({'; '.join(facts)})\n")
        try:
            i = lines.index("## hydrant against the targets of the loadtest issue")
            j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("## "))
            L += [l for l in lines[i + 1:j] if l.startswith("|")] + [""]
        except (ValueError, StopIteration):
            L.append("(no targets table)\n")
if os.path.exists(history):
    L.append(open(history).read().strip() + "\n")
print("\n".join(L))
PY
}
if [ -n "${RUNS_ONLY:-}" ]; then
	tail_sections >"$OUT.tail"
	python3 - "$OUT" "$OUT.tail" <<'PY'
import sys
out, tail = sys.argv[1], sys.argv[2]
lines = open(out).read().splitlines()
# The tail starts at the first focused-runs or history heading and ends at ## Commands.
heads = ("## Focused runs", "## Before and after")
start = next(i for i, l in enumerate(lines) if l.startswith(heads))
end = lines.index("## Commands")
lines[start:end] = open(tail).read().rstrip("\n").splitlines() + [""]
open(out, "w").write("\n".join(lines) + "\n")
print("refreshed", out)
PY
	rm -f "$OUT.tail"
	exit 0
fi
ver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "n/a"; }
if [ -z "${REPORT_ONLY:-}" ]; then
[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (apt-get, setpriv)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
need=()
for s in $SERVERS; do
	case $s in
	prosody) command -v prosody >/dev/null || need+=(prosody) ;;
	ejabberd) command -v ejabberdctl >/dev/null || need+=(ejabberd) ;;
	hydrant) ;;
	*) echo "unknown server $s" >&2; exit 1 ;;
	esac
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

W=$(mktemp -d /tmp/hl-bench.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/bin" "$W/results"
PID='' EJ_CTL=''
stop_pid() { # PID [SECONDS]: TERM, wait, KILL
	local p=$1 t=${2:-10} i
	[ -d "/proc/$p" ] || return 0
	kill -TERM "$p" 2>/dev/null || return 0
	for i in $(seq $((t * 10))); do
		[ -d "/proc/$p" ] || return 0
		[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && return 0
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null || true
}
stop_server() {
	if [ -n "$EJ_CTL" ]; then
		timeout 30 "$EJ_CTL" stop >/dev/null 2>&1 || true
		EJ_CTL=
	fi
	if [ -n "$PID" ]; then
		stop_pid "$PID" 15
		wait "$PID" 2>/dev/null || true
		PID=
	fi
	if [ -n "${WRAP:-}" ]; then stop_pid "$WRAP" 5; wait "$WRAP" 2>/dev/null || true; WRAP=; fi
}
trap stop_server EXIT

if [ -z "${SKIP_BUILD:-}" ]; then
	echo "== building (release)"
	(cd "$ROOT" && cargo build --release -q -p hydrant-server -p hydrant-loadtest)
fi
# Copies: a rebuild elsewhere during the run cannot swap the binaries under us.
cp "$TARGET_DIR/release/hydrant" "$TARGET_DIR/release/hydrant-load" "$W/bin/"
LOAD=$W/bin/hydrant-load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT PID LOG
	for _ in $(seq 300); do
		ss -ltn | grep -q "127.0.0.1:$1 " && return 0
		[ -d "/proc/$2" ] || { echo "server exited:"; tail -30 "$3"; exit 1; }
		sleep 0.1
	done
	echo "server did not listen on $1:"; tail -30 "$3"; exit 1
}
PORT=$(free_port)

# ---------------------------------------------------------------- configs ----
H=$W/hydrant
mkdir -p "$H"
cat >"$H/hydrant.toml" <<CFG
domain = "$DOMAIN"
data_dir = "$H/data"
log = "warn"
[s2s]
enabled = false
[c2s]
listen = ["127.0.0.1:$PORT"]
direct_tls_listen = []
require_tls = false
max_connections = 19500
# Offered, used only by clients that ask (the firehose-max-zlib scenario).
compression = true
# The generator is one host standing in for thousands of clients: lift the
# per-address admission limits (README "Limits and abuse") that would refuse it.
max_unauthenticated_per_ip = 100000
connections_per_ip_per_sec = 100000
connection_burst_per_ip = 100000
[registration]
enabled = true
# every client registers from loopback: no budget per network
per_ip_per_hour = 0
[pubsub]
read_bytes_per_ip_per_sec = 0
CFG
# firehose-rate and hostile: hydrant's default per-address limits, so that they meet
# the attackers (each attack from its own address); the subscribers stay under them
# (their accounts are registered beforehand with the limits above).
grep -v -e '^max_unauthenticated_per_ip' -e '^connections_per_ip_per_sec' -e '^connection_burst_per_ip' \
	-e '^# The generator is one host' -e '^# per-address admission limits' \
	-e '^per_ip_per_hour' -e '^# every client registers from loopback' -e '^read_bytes_per_ip_per_sec' \
	"$H/hydrant.toml" >"$H/hydrant-default-limits.toml"
HCONF=$H/hydrant.toml

P=$W/prosody
mkdir -p "$P/data"
# Publishers of feeds and of publishers (pub0.., whichever has more), and
# subscribe-storm's node owner (pub0).
npub=$((FEEDS > PUBLISHERS ? FEEDS : PUBLISHERS))
admins=$(for i in $(seq 0 $((npub - 1))); do printf '"pub%d@%s"; ' "$i" "$DOMAIN"; done)
cat >"$P/prosody.cfg.lua" <<CFG
pidfile = "$P/prosody.pid"
data_path = "$P/data"
admin_socket = "$P/prosody.sock"
log = { warn = "$P/prosody.log" }
daemonize = false
interfaces = { "127.0.0.1" }
c2s_ports = { $PORT }
c2s_direct_tls_ports = { }
s2s_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
network_backend = "epoll"
-- No mod_limits (c2s rate limits) and no TLS: the same plaintext streams as the others.
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "register"; "posix"; "csi_simple"; }
modules_disabled = { "s2s"; "limits"; }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
allow_registration = true
min_seconds_between_registrations = 0
registration_allowlist = { "127.0.0.0/8" }
-- Prosody's pubsub lets only admins create nodes: every publisher account is one.
admins = { $admins }
VirtualHost "$DOMAIN"
Component "pubsub.$DOMAIN" "pubsub"
	pubsub_max_items = $MAX_ITEMS
CFG
chown -R prosody:prosody "$P"

E=$W/ejabberd
mkdir -p "$E/db" "$E/log"
cat >"$E/ejabberd.yml" <<CFG
hosts:
  - "$DOMAIN"
loglevel: warning
log_rotate_count: 0
listen:
  -
    port: $PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    # The default accept backlog (5) drops connections under a connect burst.
    backlog: 1024
    max_stanza_size: 262144
    shaper: c2s_shaper
    access: c2s
    starttls_required: false
    # Offered, used only by clients that ask (the firehose-max-zlib scenario).
    zlib: true
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
shaper:
  normal:
    rate: 3000
    burst_size: 20000
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
  # XEP-0352 (the mobile scenario), its defaults: presence, chat states and PEP queued.
  mod_client_state: {}
  mod_pubsub:
    hosts:
      - "pubsub.$DOMAIN"
    access_createnode: pubsub_createnode
    max_items_node: $MAX_ITEMS
    plugins:
      - flat
CFG
cat >"$E/ejabberdctl.cfg" <<CFG
ERLANG_NODE=ejabberd@localhost
ERL_DIST_PORT=$(free_port)
ERL_OPTIONS="-setcookie hlbench -kernel inet_dist_use_interface {127,0,0,1} -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$E/ejabberd.pid
CONTRIB_MODULES_PATH=$E/contrib
CONTRIB_MODULES_CONF_DIR=$E/contrib/conf
CFG
printf '{lookup, ["file", "native"]}.\n' >"$E/inetrc"
chown -R ejabberd:ejabberd "$E"
start_server() {
	case $1 in
	hydrant)
		"$W/bin/hydrant" serve --config "$HCONF" >>"$H/server.log" 2>&1 &
		PID=$!
		wait_port "$PORT" "$PID" "$H/server.log"
		;;
	prosody)
		setpriv --reuid=prosody --regid=prosody --init-groups prosody -F --config "$P/prosody.cfg.lua" \
			>>"$P/stdout.log" 2>&1 &
		PID=$!
		wait_port "$PORT" "$PID" "$P/stdout.log"
		;;
	ejabberd)
		rm -f "$E/ejabberd.pid"
		"$W/bin/ejctl" foreground >>"$E/log/foreground.out" 2>&1 &
		WRAP=$!
		EJ_CTL=$W/bin/ejctl
		wait_port "$PORT" "$WRAP" "$E/log/foreground.out"
		PID=$(cat "$E/ejabberd.pid")
		;;
	esac
}
cat >"$W/bin/ejctl" <<EOF
#!/bin/sh
exec env HOME="$E" setpriv --reuid=ejabberd --regid=ejabberd --init-groups -- \
  /usr/sbin/ejabberdctl --config-dir "$E" --ctl-config "$E/ejabberdctl.cfg" --spool "$E/db" --logs "$E/log" "\$@"
EOF
chmod 755 "$W/bin/ejctl"

# -------------------------------------------------------------- scenarios ----
# publishers sets its own --in-flight (per publisher): COMMON_BASE has none.
COMMON_BASE=(--sources 127.0.0.2-127.0.0.254 --item-bytes "$ITEM_BYTES"
	--max-items "$MAX_ITEMS" --drain-secs 15 --allow-loss --deadline-secs "$DEADLINE")
COMMON=("${COMMON_BASE[@]}" --in-flight "$IN_FLIGHT")
STORM_COMMON=(--sources 127.0.0.2-127.0.0.254 --max-items "$MAX_ITEMS" --settle-secs 3
	--allow-failures --deadline-secs "$DEADLINE")
CONNECT_COMMON=(--sources 127.0.0.2-127.0.0.254 --concurrency 100 --settle-secs 3 --deadline-secs "$DEADLINE")
SERVER_OPTS=(--server "127.0.0.1:$PORT" --domain "$DOMAIN" --tls none --auth scram-sha-1)
declare -A ARGS
ARGS[firehose-max]="firehose --users $SUBS --items $FIREHOSE_ITEMS --rate 0"
ARGS[firehose-rate]="firehose --users $SUBS --items $RATE_ITEMS --rate $RATE"
ARGS[firehose-max-large]="firehose --users $LARGE_SUBS --items $LARGE_ITEMS --rate 0"
ARGS[firehose-rate-large]="firehose --users $LARGE_SUBS --items $LARGE_RATE_ITEMS --rate $LARGE_RATE"
ARGS[firehose-max-zlib]="firehose --users $SUBS --items $FIREHOSE_ITEMS --rate 0 --zlib"
ARGS[firehose-max-large-zlib]="firehose --users $LARGE_SUBS --items $LARGE_ITEMS --rate 0 --zlib"
ARGS[hostile]="hostile --users $SUBS --items $RATE_ITEMS --rate $RATE --attack-conns $ATTACK_CONNS --attacker-sources $ATTACKERS"
ARGS[publishers]="publishers --publishers $PUBLISHERS --subscribers-per-node $PUB_SUBS --items $PUB_ITEMS --in-flight $PUB_IN_FLIGHT"
ARGS[subscribe-storm]="subscribe-storm --users $STORM_USERS --concurrency $STORM_CONCURRENCY"
ARGS[mobile]="mobile --users $SUBS --items $MOBILE_ITEMS --rate $RATE"
ARGS[feeds]="feeds --users $SUBS --feeds $FEEDS --follow $FOLLOW --zipf $ZIPF --items $FEED_ITEMS --rate 0"
: >"$W/commands.txt"

run() { # NAME SCENARIO-ARGS...
	local name=$1; shift
	local common=("${COMMON[@]}")
	case $1 in
	connect) common=("${CONNECT_COMMON[@]}") ;;
	publishers) common=("${COMMON_BASE[@]}") ;;
	subscribe-storm) common=("${STORM_COMMON[@]}") ;;
	esac
	echo "hydrant-load $* ${common[*]} --json $name.json" | sed "s|$W/||g" >>"$W/commands.txt"
	"$LOAD" "$@" "${common[@]}" --json "$W/results/$name.json" >"$W/results/$name.txt" 2>"$W/results/$name.err" \
		|| echo "   (exit status $?)"
	grep -E "failed [ 0-9]+×|publish:|ack latency|delivery|loss|LOSS|server pid|generator|slow consumers|DISCONNECTED|connect\+auth|dropped|attack |logins|time to subscribe|DROPPED" \
		"$W/results/$name.txt" | sed 's/^/   /' || true # a run that gave up has no summary
}

for scen in $SCENARIOS; do
	case $scen in
	connect-*)
		n=${scen#connect-}
		for s in $SERVERS; do
			echo "== $s: $n idle connections"
			# Accounts first, then a fresh server: registration's garbage is not counted.
			start_server "$s"
			"$LOAD" connect --users "$n" --register "${CONNECT_COMMON[@]}" "${SERVER_OPTS[@]}" \
				>"$W/results/$s-$scen-register.txt" 2>&1 || echo "   (registration: exit status $?)"
			stop_server
			start_server "$s"
			run "$s-$scen" connect --users "$n" "${SERVER_OPTS[@]}" --server-pid "$PID"
			stop_server
			if [ "$s" = hydrant ]; then
				# hydrant alone over STARTTLS (its generated self-signed certificate): the
				# TLS memory target. The others' TLS setups are not configured here.
				echo "== hydrant: $n idle connections over STARTTLS"
				start_server hydrant
				run "hydrant-$scen-tls" connect --users "$n" --server "127.0.0.1:$PORT" --domain "$DOMAIN" \
					--tls starttls --insecure --auth scram-sha-1 --server-pid "$PID"
				stop_server
			fi
		done
		continue
		;;
	esac
	[ -n "${ARGS[$scen]:-}" ] || { echo "unknown scenario $scen" >&2; exit 1; }
	servers=$SERVERS
	if [ "$scen" = firehose-max-zlib ] || [ "$scen" = firehose-max-large-zlib ]; then
		servers=$(for s in $SERVERS; do case " $ZLIB_SERVERS " in *" $s "*) echo "$s" ;; esac; done)
	elif [ "$scen" != feeds ] && [ "$scen" != hostile ] && [ "$scen" != publishers ] && [ "$scen" != subscribe-storm ] && [ "$scen" != mobile ]; then
		echo "== limit (null server) for $scen"
		# shellcheck disable=SC2086
		run "limit-$scen" limit ${ARGS[$scen]#firehose }
	fi
	case $scen in
	firehose-rate | hostile) HCONF=$H/hydrant-default-limits.toml ;;
	*) HCONF=$H/hydrant.toml ;;
	esac
	for s in $servers; do
		echo "== $s: $scen"
		if [ "$s" = hydrant ] && [ "$HCONF" != "$H/hydrant.toml" ]; then
			# Every account of the run (subscribers, publisher, items attackers) first,
			# under the generator's lifted limits: the default registration budget per
			# address is the attackers' to meet. Nothing is published (--items 0).
			limits=$HCONF HCONF=$H/hydrant.toml
			start_server hydrant
			# shellcheck disable=SC2086
			"$LOAD" hostile --users "$SUBS" --items 0 --attacks items --attack-conns "$ATTACK_CONNS" \
				--attacker-sources "$ATTACKERS" --register "${SERVER_OPTS[@]}" "${COMMON[@]}" \
				>"$W/results/$s-$scen-register.txt" 2>&1 || echo "   (registration: exit status $?)"
			stop_server
			HCONF=$limits
		fi
		start_server "$s"
		# shellcheck disable=SC2086
		run "$s-$scen" ${ARGS[$scen]} "${SERVER_OPTS[@]}" --register --server-pid "$PID"
		stop_server
	done
done

{
	echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -g | awk '/^Mem/{print $2}') GiB RAM, kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")"
	echo "hydrant: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- . 2>/dev/null || echo ' (+ uncommitted changes in the tree)'), release build"
	echo "prosody: $(ver prosody) (Lua $(ver lua5.4))"
	echo "ejabberd: $(ver ejabberd) (Erlang/OTP erts $(ver erlang-base))"
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} >"$W/facts.txt"
else
	W=$REPORT_ONLY
fi

# ------------------------------------------------------------ BENCHMARKS.md --
# A full run's report ends with the focused runs and the history; a focused run's doesn't.
TAIL=/dev/null
case "$OUT" in "$RUNS_DIR"/* | loadtest/runs/*) ;; *) TAIL=$(mktemp) && tail_sections >"$TAIL" ;; esac
python3 - "$W" "$OUT" "$SERVERS" "$SCENARIOS" "$TAIL" <<'PY'
import json, os, sys
w, out, servers, scenarios = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
def load(name):
    p = os.path.join(w, "results", name + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
facts = open(os.path.join(w, "facts.txt")).read().strip().splitlines()
cmds = open(os.path.join(w, "commands.txt")).read().strip()
env = {k: os.environ.get(k) for k in ()}
L = []
L.append("# Benchmarks: hydrant, Prosody, ejabberd\n")
L.append("Written by `loadtest/bench.sh` (do not edit by hand; re-run it). Benchmarks are not")
L.append("tests: figures move with whatever else runs on the machine; compare within one run.\n")
L.append("## Machine and versions\n")
L += ["- " + f for f in facts]
L.append("")
L.append("Everything on one machine over loopback: generator, server and (for `limit`) the null")
L.append("server share the same cores. Plaintext c2s, SCRAM-SHA-1, bound resource, no presence,")
L.append("full-JID subscriptions; nodes created with `pubsub#notify_retract` 0,")
L.append("`deliver_payloads` 1, `access_model` open, `max_items` as below; items are ~2 KB Atom")
L.append("entries; the publisher keeps a fixed number of publishes in flight. Each server is")
L.append("started fresh for each scenario; registration happens before measuring. Server CPU is")
L.append("utime+stime from /proc over the publish phase (first publish to last delivery).\n")
def f(v, fmt="{:,.0f}"):
    return "n/a" if v is None else fmt.format(v)
def gave_up(key):
    """What a run that hit DEADLINE got done, from its progress lines; None if it did not."""
    import re
    p = os.path.join(w, "results", key + ".err")
    if not os.path.exists(p):
        return None
    text = open(p, errors="replace").read()
    m = re.search(r"gave up after --deadline-secs (\d+)", text)
    if not m:
        return None
    prog = re.findall(r"published (\d+)/(\d+) acked, (\d+) failed; delivered (\d+)", text)
    storm = re.findall(r"\] (logins|subscribe): (\d+)/(\d+) ok, (\d+) failed", text)
    if storm and not prog:
        ph, ok, n, fl = storm[-1]
        what = "logged in (baseline)" if ph == "logins" else "logged in and subscribed"
        return f"**gave up after {m.group(1)} s**: {int(ok):,} of {int(n):,} {what}, {int(fl):,} failed"
    if not prog:
        return f"**gave up after {m.group(1)} s** before publishing"
    a, b, fl, d = map(int, prog[-1])
    return f"**gave up after {m.group(1)} s**: {a:,} of {b:,} publishes acknowledged, {d:,} notifications delivered"
def missing(key):
    return gave_up(key) or "(no result)"
def row(name, r, key=None):
    if r is None:
        return f"| {name} | {missing(key or name)} | | | | | | |"
    d, sp, g = r["delivery"], r.get("server_process") or {}, r["generator"]
    lat = d.get("latency") or {}
    loss = d["loss"]
    loss_s = f"**{loss:,} LOST**" if loss else "0"
    rss = sp.get("rss_after_kib")
    return (f"| {name} | {f(d['per_sec'])} | {f(lat.get('p50_ms'),'{:.1f}')} / {f(lat.get('p90_ms'),'{:.1f}')} / "
            f"{f(lat.get('p99_ms'),'{:.1f}')} / {f(lat.get('max_ms'),'{:.1f}')} | {loss_s} ({d['received']:,}/{d['expected']:,}) | "
            f"{f(sp.get('cpu_secs_per_1000'),'{:.4f}')} | {f(rss/1024 if rss else None,'{:.0f}')} | "
            f"{f(g.get('cpu_secs_per_1000'),'{:.4f}')} | {f(r['publish']['per_sec'],'{:.0f}')} |")
titles = {
    "firehose-max": "firehose, as fast as acks allow",
    "firehose-rate": "firehose at a target rate",
    "firehose-max-large": "firehose, many subscribers, as fast as acks allow",
    "firehose-rate-large": "firehose, many subscribers, at a target rate",
    "feeds": "feeds (Zipf)",
    "firehose-max-zlib": "firehose with XEP-0138 zlib, as fast as acks allow",
    "firehose-max-large-zlib": "firehose with XEP-0138 zlib, many subscribers, as fast as acks allow",
    "hostile": "hostile: firehose at a target rate while attackers run issue 8's attacks",
}
# Which attacks meet what on each server with the configs above.
APPLIES = {
    "hydrant": "all five; default per-address admission limits (unauthenticated connections, connection rate) and its registration and login limits",
    "prosody": "all five; registration is on (the generator registers its accounts) with `min_seconds_between_registrations = 0` and 127.0.0.0/8 allow-listed, and mod_limits is off, so the registration flood and the connection floods meet no per-address throttle",
    "ejabberd": "all five; mod_register is on for all with `registration_timeout: infinity` (no per-address registration throttle) and `c2s_shaper: none`",
}
def mib(kib):
    return None if kib is None else kib / 1024
def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b
def hostile_section(servers):
    out = []
    out.append("Each attack runs its loops at full speed from its own source address (the "
               "subscribers use 127.0.0.2-254), from the first publish to the last "
               "acknowledgement: `bomb` (a stream header, then `<x xmlns='urn:` + 64 KiB of "
               "letters + `'>` + 16,000 `<a/>` + `</x>`, read until closed, again), `slowloris` "
               "(one byte every 2 s: half drip the header, half an endless stanza after it), "
               "`register` (XEP-0077 registrations of random names before authentication, 10 "
               "per stream), `guess` (SASL logins to subscriber 0's account with random "
               "passwords, PLAIN when offered, as many per stream as the server answers), "
               "`items` (logged-in accounts asking for 500 item ids of the firehose node per "
               "request: the newest items' ids again and again, every fourth absent). "
               "\"without\" is `firehose-rate` of the same run, on a fresh server too.\n")
    out.append("| server | RSS peak without / with (MiB) | ratio | p99 without / with (ms) | ratio | loss without / with | attacks |")
    out.append("|---|---|---:|---|---:|---|---|")
    checks = []
    for s in servers:
        base, hot = load(f"{s}-firehose-rate"), load(f"{s}-hostile")
        if hot is None:
            out.append(f"| {s} | {missing(s + '-hostile')} | | | | | |")
            continue
        hw = lambda r: ((r or {}).get("server_process") or {}).get("hwm_after_kib")
        m0, m1 = mib(hw(base)), mib(hw(hot))
        p0, p1 = lat99(base), lat99(hot)
        l0 = None if base is None else base["delivery"]["loss"]
        l1 = hot["delivery"]["loss"]
        rm, rp = ratio(m1, m0), ratio(p1, p0)
        att = ", ".join(f"{a['attack']} {a['attempts']:,}" for a in hot.get("attacks", []))
        out.append(f"| {s} | {f(m0,'{:.0f}')} / {f(m1,'{:.0f}')} | {f(rm,'{:.2f}×')} | "
                   f"{f(p0,'{:.1f}')} / {f(p1,'{:.1f}')} | {f(rp,'{:.2f}×')} | "
                   f"{f(l0,'{:,}')} / {'**' + format(l1, ',') + ' LOST**' if l1 else '0'} | {att} |")
        if s == "hydrant":
            checks = [(l1, rm, rp, hot)]
    out.append("")
    out.append("Attack counts (attempts: bombs sent, connections dripped, registrations, logins, "
               "requests; unanswered: still waiting when the attack stopped; outcomes: how "
               "attempts were answered and connections ended; \"closed before the stream "
               "opened\" is a refusal at accept, e.g. a per-address limit):\n")
    out.append("| server | attack | attempts (per s) | unanswered | connections (peak open, mean / max life s) | KiB sent / received | outcomes |")
    out.append("|---|---|---:|---:|---|---|---|")
    for s in servers:
        hot = load(f"{s}-hostile")
        for a in (hot or {}).get("attacks", []):
            oc = "; ".join(f"{n:,} × {k}" for k, n in sorted(a["outcomes"].items(), key=lambda x: -x[1]))
            out.append(f"| {s} | {a['attack']} | {a['attempts']:,} ({a['attempts_per_sec']:.1f}) | {a['unanswered']:,} | "
                       f"{a['connections']:,} ({a['peak_open']}, {f(a.get('mean_connection_secs'),'{:.2f}')} / {a['max_connection_secs']:.1f}) | "
                       f"{a['bytes_sent'] // 1024:,} / {a['bytes_received'] // 1024:,} | {oc} |")
    out.append("")
    out.append("Which attacks apply:\n")
    out += [f"- {s}: {APPLIES.get(s, 'all five')}" for s in servers]
    out.append("")
    return out, checks
CONNECT_HEADER = ["| server | connected | logins/s (latency p50 / p99) | server RSS per connection (KiB) | server CPU per login (ms) | dropped while idle |",
                  "|---|---:|---|---:|---:|---:|"]
def connect_row(name, r):
    if r is None:
        return f"| {name} | (no result) | | | | |"
    c, m, g = r["connect"], r.get("server_memory") or {}, r["generator"]
    lat = c.get("latency") or {}
    cpu = m.get("cpu_connect_secs")
    return (f"| {name} | {c['ok']:,}/{c['attempted']:,} | {f(c['rate_per_sec'])} "
            f"({f(lat.get('p50_ms'),'{:.0f}')} / {f(lat.get('p99_ms'),'{:.0f}')} ms) | "
            f"{f(m.get('rss_per_connection_kib'),'{:.2f}')} | "
            f"{f(cpu * 1000 / c['ok'] if cpu is not None and c['ok'] else None,'{:.2f}')} | "
            f"{f(r['hold'].get('dropped'),'{:,}')} |")
summary = []  # (target, measured, met: True, False or None for a figure only recorded)
def lat99(r):
    return ((r or {}).get("delivery") or {}).get("latency", {}).get("p99_ms")
for scen in scenarios:
    results = {s: load(f"{s}-{scen}") for s in servers}
    if scen.startswith("connect-"):
        n = int(scen.split("-", 1)[1])
        L.append(f"## connect: {n:,} idle connections\n")
        L.append("Accounts registered first, then each server restarted; SCRAM-SHA-1 logins, 100 at a "
                 "time, bound resource, no presence, held idle. Memory is the server's RSS after "
                 "minus before, over the connections (3 s settle).\n")
        L += CONNECT_HEADER
        for s in servers:
            L.append(connect_row(s, results[s]))
        L.append("")
        h = results.get("hydrant")
        hm = ((h or {}).get("server_memory") or {}).get("rss_per_connection_kib")
        if hm is not None:
            others = [(((r or {}).get("server_memory") or {}).get("rss_per_connection_kib"), s) for s, r in results.items() if s != "hydrant" and r]
            others = [o for o in others if o[0]]
            if others:
                best = min(others)
                L.append(f"- hydrant memory per connection / best other ({best[1]}): **{hm / best[0]:.2f}×**\n")
            ok = h["connect"]["ok"] == n
            summary.append((f"idle memory ≤ 4 KiB per plaintext connection at {n:,}", f"{hm:.2f} KiB" + ("" if ok else f" (only {h['connect']['ok']:,} connected)"), hm <= 4.0 and ok))
        t = load(f"hydrant-{scen}-tls")
        tm = ((t or {}).get("server_memory") or {}).get("rss_per_connection_kib")
        if tm is not None:
            L.append("hydrant alone over STARTTLS (TLS 1.3, its self-signed certificate):\n")
            L += CONNECT_HEADER
            L.append(connect_row("hydrant (STARTTLS)", t))
            L.append("")
            ok = t["connect"]["ok"] == n
            summary.append((f"idle memory ≤ 20 KiB per TLS connection at {n:,}", f"{tm:.2f} KiB" + ("" if ok else f" (only {t['connect']['ok']:,} connected)"), tm <= 20.0 and ok))
        continue
    if scen == "mobile":
        any_r = next((r for r in results.values() if r), None)
        L.append("## mobile: half the firehose's subscribers inactive (XEP-0352)\n")
        if any_r:
            c = any_r.get("csi") or {}
            L.append(f"{any_r['subscribers']:,} subscribers of one node, {c.get('inactive_subscribers', 0):,} of them "
                     f"sent `<inactive/>` after subscribing; {any_r['items']:,} items of {any_r['item_bytes']:,} B at "
                     f"{any_r['rate']:g}/s. A wake-up is a read after at least a second of silence on "
                     "that connection (a phone's radio stays up a few seconds after traffic); busy seconds are the "
                     "seconds in which any data arrived; reads are the reads that returned data (the server's TCP "
                     "writes as the generator sees them); all per subscriber per minute of publishing. When publishing "
                     "ends the inactive subscribers send `<active/>` and must then have every item.\n")
        L.append("| server | inactive: wake-ups / busy s / reads per minute (max wake-ups) | active: wake-ups / busy s / reads per minute | loss (received/expected) | server RSS before / end of publishing (MiB) | server CPU-s per 1,000 notifications |")
        L.append("|---|---|---|---|---|---:|")
        for s in servers:
            r = results[s]
            if r is None:
                L.append(f"| {s} | {missing(s + '-' + scen)} | | | | |")
                continue
            c, d, sp = r.get("csi") or {}, r["delivery"], r.get("server_process") or {}
            loss_s = f"**{d['loss']:,} LOST**" if d["loss"] else "0"
            gi, ga = c.get("inactive") or {}, c.get("active") or {}
            g3 = lambda g: (f"{f((g.get('wakeups_per_min') or [None])[0],'{:.1f}')} / {f((g.get('busy_secs_per_min') or [None])[0],'{:.1f}')} / "
                            f"{f((g.get('reads_per_min') or [None])[0],'{:.0f}')}")
            L.append(f"| {s} | {g3(gi)} ({f((gi.get('wakeups_per_min') or [None, None])[1],'{:.0f}')}) | "
                     f"{g3(ga)} | {loss_s} ({d['received']:,}/{d['expected']:,}) | "
                     f"{f(mib(sp.get('rss_before_kib')),'{:.0f}')} / {f(mib(c.get('server_rss_kib_end_of_publishing')),'{:.0f}')} | "
                     f"{f(sp.get('cpu_secs_per_1000'),'{:.4f}')} |")
        L.append("")
        h = results.get("hydrant")
        if h and h.get("csi"):
            c = h["csi"]
            summary.append(("mobile: wake-ups (after ≥1 s of silence) and busy seconds per inactive subscriber per minute on a 60/s firehose (recorded)",
                            f"{c['inactive']['wakeups_per_min'][0]:.1f} wake-ups, {c['inactive']['busy_secs_per_min'][0]:.1f} s busy "
                            f"(active: {c['active']['wakeups_per_min'][0]:.1f}, {c['active']['busy_secs_per_min'][0]:.1f} s)", None))
        continue
    if scen == "publishers":
        any_r = next((r for r in results.values() if r), None)
        L.append("## publishers: many publishers, a node each\n")
        if any_r:
            x = any_r.get("extra") or {}
            L.append(f"{x.get('publishers', any_r['nodes']):,} publishers, each publishing to its own node on one "
                     f"service as fast as its acknowledgements allow ({any_r['in_flight']} in flight per publisher), "
                     f"{x.get('subscribers_per_node')} subscribers per node ({any_r['subscribers']:,} accounts, "
                     f"full-JID subscriptions), {any_r['items']:,} items of {any_r['item_bytes']:,} B in total "
                     f"(round-robin, {x.get('items_per_publisher', 0):g} per publisher). Publishes/s is acknowledged "
                     f"publishes over first publish → last acknowledgement.\n")
        L.append("| server | publishes/s (acked/sent) | publish→ack p50 / p90 / p99 / max (ms) | notifications/s | publish→delivery p50 / p99 / max (ms) | loss (received/expected) | server CPU-s per 1,000 notifications | server RSS after (MiB) |")
        L.append("|---|---:|---|---:|---|---|---:|---:|")
        for s in servers:
            r = results[s]
            if r is None:
                L.append(f"| {s} | {missing(s + '-' + scen)} | | | | | | |")
                continue
            p, d, sp = r["publish"], r["delivery"], r.get("server_process") or {}
            al, dl = p.get("ack_latency") or {}, d.get("latency") or {}
            rss = sp.get("rss_after_kib")
            loss_s = f"**{d['loss']:,} LOST**" if d["loss"] else "0"
            L.append(f"| {s} | {f(p['per_sec'])} ({p['acked']:,}/{p['sent']:,}) | {f(al.get('p50_ms'),'{:.1f}')} / {f(al.get('p90_ms'),'{:.1f}')} / "
                     f"{f(al.get('p99_ms'),'{:.1f}')} / {f(al.get('max_ms'),'{:.1f}')} | {f(d['per_sec'])} | "
                     f"{f(dl.get('p50_ms'),'{:.1f}')} / {f(dl.get('p99_ms'),'{:.1f}')} / {f(dl.get('max_ms'),'{:.1f}')} | "
                     f"{loss_s} ({d['received']:,}/{d['expected']:,}) | {f(sp.get('cpu_secs_per_1000'),'{:.4f}')} | "
                     f"{f(rss/1024 if rss else None,'{:.0f}')} |")
        L.append("")
        notes = []
        for s, r in results.items():
            if r and r["publish"]["failed"]:
                notes.append(f"{s}: {r['publish']['failed']} publish failure(s) or publisher stream end(s): {r['publish']['failures']}")
            for k in ("publishers_setup", "subscribers_setup"):
                su = (r or {}).get(k) or {}
                if su.get("failed"):
                    notes.append(f"{s}: {su['failed']:,} of {su['attempted']:,} {k.split('_')[0]} failed setup ({su.get('failures')})")
        L += ["- " + n for n in notes] + ([""] if notes else [])
        per = []
        for s in servers:
            r = results[s]
            if r:
                a99 = (r["publish"].get("ack_latency") or {}).get("p99_ms")
                per.append(f"{s} {r['publish']['per_sec']:,.0f}/s, p99 {f(a99, '{:.1f}')} ms")
            else:
                per.append(f"{s} {missing(s + '-' + scen)}")
        if any_r:
            summary.append((f"publishers ({x.get('publishers', any_r['nodes']):,} publishers × {x.get('subscribers_per_node')} subscribers): acknowledged publishes/s and p99 publish→ack (a later change's target: ≥ 5× today's hydrant)",
                            "; ".join(per), None))
        continue
    if scen == "subscribe-storm":
        any_r = next((r for r in results.values() if r), None)
        L.append("## subscribe storm\n")
        if any_r:
            L.append(f"{any_r['users']:,} clients log in (SCRAM-SHA-1, bound resource) and subscribe their full JID "
                     f"to one node, {any_r['concurrency']} at a time; the baseline is {any_r['users']:,} logins alone "
                     f"of as many other accounts (each account logs in once, its first login since registration), "
                     f"in the same run, closed before the storm (then 3 s and until the server is idle). Time is "
                     f"first connect → last client up; all accounts registered beforehand (not timed); the node's "
                     f"owner stays online.\n")
        L.append("| server | logins alone (s) | logins + subscribe (s) | difference (s) | up: logins / subscribed | storm latency p50 / p99 (ms) | server CPU per client, logins / storm (ms) | server RSS after storm (MiB) |")
        L.append("|---|---:|---:|---:|---|---|---|---:|")
        for s in servers:
            r = results[s]
            if r is None:
                L.append(f"| {s} | {missing(s + '-' + scen)} | | | | | | |")
                continue
            lg, st, m = r["logins"], r["subscribe"], r["summary"]
            lat = st.get("latency") or {}
            cpu = lambda ph: f(ph["server_cpu_secs"] * 1000 / ph["ok"] if ph.get("server_cpu_secs") is not None and ph["ok"] else None, "{:.2f}")
            rss = st.get("server_rss_after_kib")
            L.append(f"| {s} | {lg['secs']:.2f} | {st['secs']:.2f} | {m['difference_secs']:+.2f} | {lg['ok']:,}/{lg['attempted']:,} / {st['ok']:,}/{st['attempted']:,} | "
                     f"{f(lat.get('p50_ms'),'{:.0f}')} / {f(lat.get('p99_ms'),'{:.0f}')} | {cpu(lg)} / {cpu(st)} | {f(rss/1024 if rss else None,'{:.0f}')} |")
        L.append("")
        notes = []
        for s, r in results.items():
            for k, what in (("logins", "logins alone"), ("subscribe", "storm")):
                ph = (r or {}).get(k) or {}
                if ph.get("failed"):
                    notes.append(f"{s}: {ph['failed']:,} of {ph['attempted']:,} failed in the {what} ({ph.get('failures')})")
                if ph.get("dropped"):
                    notes.append(f"{s}: {ph['dropped']:,} connections dropped while held in the {what} ({ph.get('dropped_reasons')})")
        L += ["- " + n for n in notes] + ([""] if notes else [])
        h = results.get("hydrant")
        if h:
            m = h["summary"]
            measured = (f"{m['subscribe_secs']:.2f} s vs {m['logins_secs']:.2f} s ({m['difference_secs']:+.2f} s)"
                        + ("" if m["complete"] else f" (only {h['subscribe']['ok']:,} of {h['subscribe']['attempted']:,} subscribed)"))
            summary.append((f"subscribe storm: time to subscribe all ≤ logins alone + 2 s ({h['users']:,} clients, {h['concurrency']} at a time)", measured, m["target_met"]))
        elif "hydrant" in servers:
            summary.append(("subscribe storm: time to subscribe all ≤ logins alone + 2 s", missing("hydrant-" + scen), False))
        continue
    limit = load(f"limit-{scen}")
    any_r = next((r for r in results.values() if r), None)
    L.append(f"## {titles.get(scen, scen)}\n")
    if any_r:
        extra = any_r.get("extra") or {}
        shape = (f"{any_r['subscribers']:,} subscribers, {any_r['nodes']:,} node(s), "
                 f"{any_r['follows_per_subscriber']:.1f} follows each, {any_r['items']:,} items of "
                 f"{any_r['item_bytes']:,} B, rate {'as fast as acks allow' if any_r['rate'] == 0 else str(any_r['rate']) + '/s'}, "
                 f"{any_r['in_flight']} in flight")
        if extra:
            shape += f"; Zipf s={extra.get('zipf')}, most popular feed {extra.get('followers_of_most_popular')} followers, least {extra.get('followers_of_least_popular')}"
        L.append(shape + ".\n")
    if scen.endswith("-zlib"):
        L.append("Only servers that offer stream compression (Prosody 0.12 ships no "
                 "mod_compression); compare with `firehose-max` above. Bytes on the wire per "
                 "notification, compressed vs inflated, as the generator's subscribers read them: "
                 + "; ".join(f"{s} {r['wire']['compressed_bytes_per_notification']:.0f} / "
                             f"{r['wire']['plain_bytes_per_notification']:.0f} B = "
                             f"**{r['wire']['ratio']:.2f}×**"
                             for s, r in results.items() if r and r.get("wire"))
                 + ". The generator's entries pad with a repeated phrase, which compresses "
                 "better than real prose would.\n")
        results = {s: r for s, r in results.items() if r}
    L.append("| server | notifications/s | latency p50 / p90 / p99 / max (ms) | loss (received/expected) | server CPU-s per 1,000 | server RSS after (MiB) | generator CPU-s per 1,000 | publishes/s |")
    L.append("|---|---:|---|---|---:|---:|---:|---:|")
    for s in (results if scen.endswith("-zlib") else servers):
        L.append(row(s, results[s], f"{s}-{scen}"))
    if limit:
        L.append(row("limit (null server)", limit))
    L.append("")
    h = results.get("hydrant")
    others = [(s, r) for s, r in results.items() if s != "hydrant" and r]
    notes = []
    if h and others:
        best_s, best = max(others, key=lambda x: x[1]["delivery"]["per_sec"])
        if best["delivery"]["per_sec"] > 0:
            notes.append(f"hydrant / best other ({best_s}): **{h['delivery']['per_sec'] / best['delivery']['per_sec']:.2f}×** notifications/s")
        hc = (h.get("server_process") or {}).get("cpu_secs_per_1000")
        bc = min(((r.get("server_process") or {}).get("cpu_secs_per_1000") or 1e9, s) for s, r in others)
        if hc and bc[0] < 1e9:
            notes.append(f"CPU per notification: hydrant {hc:.4f} s/1000 vs best other ({bc[1]}) {bc[0]:.4f} s/1000 = **{hc / bc[0]:.2f}×**")
    lim = limit or (None if scen.endswith("-zlib") else load("limit-firehose-max"))
    if h and lim and lim["delivery"]["per_sec"] > 0:
        which = "" if limit else " (the firehose `limit`)"
        notes.append(f"hydrant / limit{which}: **{h['delivery']['per_sec'] / lim['delivery']['per_sec']:.0%}** of the null server's notifications/s")
    for s, r in results.items():
        if r and r["delivery"]["loss"]:
            notes.append(f"**{s} LOST {r['delivery']['loss']:,} notifications** at {r['delivery']['subscribers_with_loss']} subscribers")
        if r and r["publish"]["failed"]:
            notes.append(f"{s}: {r['publish']['failed']} publish failure(s) or publisher stream end(s): {r['publish']['failures']}")
        su = (r or {}).get("subscribers_setup") or {}
        if su.get("failed"):
            notes.append(f"{s}: {su['failed']:,} of {su['attempted']:,} subscribers failed to log in and subscribe ({su.get('failures')}); they are not counted as expected")
        if r and r["delivery"].get("other_disconnects"):
            notes.append(f"{s}: subscriber streams ended: {r['delivery']['other_disconnects']}")
    L += ["- " + n for n in notes]
    L.append("")
    if scen == "hostile":
        sec, checks = hostile_section(servers)
        L += sec
        for l1, rm, rp, hot in checks:
            summary.append((f"zero loss under attack ({hot['subscribers']:,} subscribers at {hot['rate']:g}/s)", f"{l1:,} lost", l1 == 0))
            summary.append(("server RSS peak under attack < 2× without", f(rm, "{:.2f}×"), rm is not None and rm < 2))
            summary.append(("p99 publish→delivery under attack < 2× without", f(rp, "{:.2f}×"), rp is not None and rp < 2))
        continue
    if h:
        d = h["delivery"]
        summary.append((f"zero loss: {titles.get(scen, scen)} ({h['subscribers']:,} subscribers)", f"{d['loss']:,} lost", d["loss"] == 0))
        plain = load(f"hydrant-{scen[:-5]}") if scen.endswith("-zlib") else None
        if plain and plain["delivery"]["per_sec"] > 0:
            # The Compression issue's targets, against hydrant's plaintext run of the same shape.
            r = d["per_sec"] / plain["delivery"]["per_sec"]
            summary.append((f"zlib notifications/s ≥ 0.8× plaintext ({h['subscribers']:,} subscribers)", f"{r:.2f}×", r >= 0.8))
            zc = (h.get("server_process") or {}).get("cpu_secs_per_1000")
            pc = (plain.get("server_process") or {}).get("cpu_secs_per_1000")
            if zc and pc:
                summary.append((f"zlib server CPU per notification ≤ 1.25× plaintext ({h['subscribers']:,} subscribers)", f"{zc / pc:.2f}×", zc / pc <= 1.25))
        if scen.endswith("-zlib") and h.get("wire"):
            wr = h["wire"]["ratio"]
            summary.append((f"zlib bytes on the wire ≤ 0.3× plaintext ({h['subscribers']:,} subscribers)", f"{wr:.2f}× ({h['wire']['compressed_bytes_per_notification']:.0f} of {h['wire']['plain_bytes_per_notification']:.0f} B)", wr <= 0.3))
        if scen == "firehose-max-large":
            hc = (h.get("server_process") or {}).get("cpu_secs_per_1000")
            bc = [((r.get("server_process") or {}).get("cpu_secs_per_1000"), s) for s, r in results.items() if s != "hydrant" and r]
            bc = [b for b in bc if b[0]]
            if hc and bc:
                b = min(bc)
                summary.append((f"server CPU per notification ≤ 1/10 of the best other at {h['subscribers']:,} subscribers", f"{hc:.4f} vs {b[1]} {b[0]:.4f} s/1000 = {hc / b[0]:.2f}×", hc <= b[0] / 10))
            if limit and limit["delivery"]["per_sec"] > 0:
                fr = d["per_sec"] / limit["delivery"]["per_sec"]
                summary.append((f"notifications/s ≥ 0.7 of `limit` at {h['subscribers']:,} subscribers", f"{fr:.2f}", fr >= 0.7))
        if scen in ("firehose-rate", "firehose-rate-large") and lat99(h) is not None:
            lim99 = f" (`limit`, the machine's ceiling with this client: {lat99(limit):.1f} ms)" if lat99(limit) is not None else ""
            summary.append((f"p99 publish→delivery ≤ 50 ms, {h['subscribers']:,} subscribers at {h['rate']:g}/s", f"{lat99(h):.1f} ms{lim99}", lat99(h) <= 50))
if summary:
    at = next(i for i, l in enumerate(L) if l.startswith("## Machine"))
    T = ["## hydrant against the targets of the loadtest issue\n",
         "Computed from the tables below (this run only).\n",
         "| target | hydrant | met |", "|---|---|---|"]
    T += [f"| {t} | {m} | {'(recorded)' if ok is None else 'yes' if ok else '**no**'} |" for t, m, ok in summary]
    T.append("")
    L[at:at] = T
tail = open(sys.argv[5]).read().strip()
if tail:
    L.append(tail + "\n")
L.append("## Commands\n")
L.append("Servers on 127.0.0.1:PORT, domain bench.test, configs written by `loadtest/bench.sh`")
L.append("(hydrant: `require_tls = false`, registration on, pubsub defaults; Prosody: no TLS, no")
L.append("mod_limits, publishers are admins, `pubsub_max_items`; ejabberd: `c2s_shaper: none`,")
L.append("`registration_timeout: infinity`, mod_pubsub `flat` with `max_items_node`).\n")
L.append("```")
L.append(cmds)
L.append("```")
open(out, "w").write("\n".join(L) + "\n")
print("wrote", out)
PY
[ "$TAIL" = /dev/null ] || rm -f "$TAIL"
[ -n "${REPORT_ONLY:-}" ] || echo "results and logs: $W"

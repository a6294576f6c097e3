#!/usr/bin/env bash
# Interop suite: real, stock XMPP clients against a freshly started server.
#
#   tests/interop/run.sh [options] path/to/hydrant
#   tests/interop/run.sh [options] --reference-prosody   (developer aid, see below)
#
# Creates a temp dir with a throw-away CA and a certificate for "localhost",
# writes a config listening on free 127.0.0.1 ports (STARTTLS + direct TLS),
# starts the server, creates the accounts, runs every client test, stops the
# server (always, by PID) and prints a PASS/FAIL line per test. Exit status is
# non-zero if any test failed.
#
# Options:
#   --only NAME[,NAME...]  run only these tests: check_config slixmpp_basic
#                          cli_user_list sendxmpp profanity slixmpp_pubsub
#                          aioxmpp_pubsub slixmpp_pep slixmpp_zlib
#                          gloox_zlib slixmpp_negative restart
#                          slixmpp_sm aioxmpp_sm
#                          slixmpp_csi xmppjs_pep aioxmpp_pep
#                          profanity_cb
#   --keep                 keep the temp dir (configs, logs, certificates)
#   --debug                verbose client output (slixmpp debug log, go-sendxmpp -d,
#                          gloox's XML log)
#   --reference-prosody    run the same client tests against Debian's Prosody
#                          (apt-get install prosody) instead of hydrant: when a
#                          test fails against hydrant, this tells whether the
#                          test or the server is wrong. Never used by
#                          scripts/test.sh; the project does not depend on it.
#                          (Prosody 0.12's pubsub has no RSM on items:
#                          slixmpp_pubsub stops at its RSM step there.)
#
# Needs: bash, openssl, /usr/bin/python3 + python3-slixmpp + python3-venv,
# go-sendxmpp, profanity, tmux, g++ + pkg-config + libgloox-dev (gloox_zlib
# compiles its client at test time; without them it fails, it does not skip)
# (scripts/test.sh installs them all), and for aioxmpp_pubsub a venv with
# aioxmpp from PyPI: aioxmpp-venv.sh creates it (idempotent; scripts/test.sh
# runs it in its packages stage, run.sh again when the venv is missing).
# INTEROP_AIOXMPP_PYTHON overrides its python.
# xmppjs_pep: node >= 20.10 + npm; xmppjs-install.sh installs the pinned xmpp.js
# (npm ci, cached like the venv; INTEROP_XMPPJS_MODULES overrides its node_modules).
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TESTS=(check_config slixmpp_basic cli_user_list sendxmpp profanity slixmpp_pubsub aioxmpp_pubsub
	slixmpp_pep slixmpp_zlib gloox_zlib slixmpp_negative restart)
TESTS+=(slixmpp_sm aioxmpp_sm) # XEP-0198: resumption after a cut TCP connection
TESTS+=(slixmpp_csi) # XEP-0352
TESTS+=(xmppjs_pep aioxmpp_pep) # PEP with xmpp.js (node) and aioxmpp's PEPClient
TESTS+=(profanity_cb) # XEP-0280 carbons and XEP-0191 blocking, profanity + slixmpp
TEST_TIMEOUT=${INTEROP_TEST_TIMEOUT:-120}  # hard cap per test, seconds

SERVER=hydrant HYDRANT='' ONLY='' KEEP=0 DEBUG=0
while [ $# -gt 0 ]; do
	case $1 in
	--only) ONLY=$2; shift 2 ;;
	--only=*) ONLY=${1#*=}; shift ;;
	--keep) KEEP=1; shift ;;
	--debug) DEBUG=1; shift ;;
	--reference-prosody) SERVER=prosody; shift ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) HYDRANT=$1; shift ;;
	esac
done
if [ "$SERVER" = hydrant ]; then
	[ -n "$HYDRANT" ] || die "usage: $0 [options] path/to/hydrant"
	[ -x "$HYDRANT" ] || die "not an executable: $HYDRANT"
	HYDRANT=$(cd "$(dirname "$HYDRANT")" && pwd -P)/$(basename "$HYDRANT")
fi
for c in openssl timeout "$PY"; do command -v "$c" >/dev/null || die "missing command: $c"; done
"$PY" -c 'import slixmpp' 2>/dev/null || die "$PY cannot import slixmpp (apt-get install python3-slixmpp)"

selected() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
for t in ${ONLY//,/ }; do
	[[ " ${TESTS[*]} " == *" $t "* ]] || die "--only: unknown test '$t' (tests: ${TESTS[*]})"
done

# --- temp dir, cleanup ---------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hydrant-interop.XXXXXX")
SERVER_PID='' TEST_PID=''
SERVER_LOG=$WORK/server.log
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$TEST_PID" ]; then
		stop_pid "$TEST_PID" 5
	fi
	if [ -n "$SERVER_PID" ]; then
		stop_pid "$SERVER_PID" 10
		SERVER_PID=
	fi
	if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
		say "kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_log_tail() {
	echo "---- last 60 lines of the server log ($SERVER_LOG) ----"
	tail -n 60 "$SERVER_LOG" 2>/dev/null || true
	echo "---- end of server log ----"
}

# Test a private copy: cargo may replace target/debug/hydrant while we run
# (other builds), and gdb needs the exact executable for backtraces.
if [ "$SERVER" = hydrant ]; then
	cp "$HYDRANT" "$WORK/hydrant"
	say "testing $HYDRANT (copied to $WORK/hydrant)"
	HYDRANT=$WORK/hydrant
fi

# --- certificates, ports, config -------------------------------------------------
export XMPP_DOMAIN=localhost XMPP_HOST=127.0.0.1
make_ca "$WORK/tls" "$XMPP_DOMAIN"
export XMPP_CA=$WORK/tls/ca.crt
read -r XMPP_C2S_PORT XMPP_TLS_PORT < <(free_ports 2)
export XMPP_C2S_PORT XMPP_TLS_PORT INTEROP_WORK=$WORK INTEROP_DEBUG=$DEBUG
CFG=$WORK/hydrant.toml

write_hydrant_config() {
	cat >"$CFG" <<EOF
domain = "$XMPP_DOMAIN"
data_dir = "$WORK/data"

[tls]
cert = "$WORK/tls/$XMPP_DOMAIN.chain.pem"
key = "$WORK/tls/$XMPP_DOMAIN.key"

[s2s]
enabled = false
[c2s]
listen = ["$XMPP_HOST:$XMPP_C2S_PORT"]
direct_tls_listen = ["$XMPP_HOST:$XMPP_TLS_PORT"]
require_tls = true
# XEP-0138 for the clients that ask (slixmpp_zlib, gloox_zlib)
compression = true

[registration]
enabled = true
# every client registers from loopback: no budget per network
per_ip_per_hour = 0
EOF
}

write_prosody_config() {
	CFG=$WORK/prosody.cfg.lua
	mkdir -p "$WORK/data"
	cat >"$CFG" <<EOF
-- reference server for the interop tests (run.sh --reference-prosody)
pidfile = "$WORK/prosody.pid"
data_path = "$WORK/data"
run_as_root = true  -- private temp dir, loopback only, short-lived
log = { debug = "$SERVER_LOG" }
interfaces = { "$XMPP_HOST" }
c2s_ports = { $XMPP_C2S_PORT }
c2s_direct_tls_ports = { $XMPP_TLS_PORT }
s2s_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "register"; "offline"; "pep"; "carbons"; "blocklist" }
ssl = { certificate = "$WORK/tls/$XMPP_DOMAIN.crt"; key = "$WORK/tls/$XMPP_DOMAIN.key" }
c2s_require_encryption = true
authentication = "internal_hashed"
password_hash = "SHA-256"  -- so that SCRAM-SHA-256 is offered, as hydrant does
storage = "internal"
allow_registration = true
-- Prosody's pubsub lets only admins create nodes (hydrant: any local user)
admins = { "ps_a@$XMPP_DOMAIN", "aiox_a@$XMPP_DOMAIN", "rs_a@$XMPP_DOMAIN" }
VirtualHost "$XMPP_DOMAIN"
Component "pubsub.$XMPP_DOMAIN" "pubsub"
	pubsub_max_items = 10000
EOF
}

# add_user LOCALPART PASSWORD [stdin]: create an account with the server's admin tool
add_user() {
	local user=$1 pw=$2 how=${3:-flag}
	if [ "$SERVER" = prosody ]; then
		prosodyctl --config "$CFG" register "$user" "$XMPP_DOMAIN" "$pw" >>"$WORK/admin.log" 2>&1
	elif [ "$how" = stdin ]; then
		printf '%s\n' "$pw" | "$HYDRANT" user add "$user" --config "$CFG" >>"$WORK/admin.log" 2>&1
	else
		"$HYDRANT" user add "$user@$XMPP_DOMAIN" --config "$CFG" --password "$pw" >>"$WORK/admin.log" 2>&1
	fi || {
		tail -n 20 "$WORK/admin.log" >&2
		return 1
	}
}

# add_users LOCALPART...: add_user each with $PASSWORD
add_users() {
	local u
	for u; do add_user "$u" "$PASSWORD" || return 1; done
}

# --- test runner ------------------------------------------------------------------
# run_test NAME CMD...: run with a hard timeout, output to the console and
# $WORK/NAME.log; record PASS/FAIL; on failure show the server log tail.
run_test() {
	local name=$1 start rc reason; shift
	selected "$name" || return 0
	echo
	say "---- $name ----"
	start=$(now_ms)
	set +e
	if declare -F "$1" >/dev/null; then
		# a shell function: in this shell (not a pipeline's subshell), so that
		# it may restart the server (SERVER_PID); it bounds its own waits.
		# Output to the log, shown afterwards (not through a pipe to tee: a
		# server it starts would inherit the pipe and keep tee waiting).
		"$@" >"$WORK/$name.log" 2>&1
		rc=$?
		cat "$WORK/$name.log"
	else
		# in the background + wait, so that a SIGTERM/SIGINT to run.sh runs
		# the cleanup trap at once (bash defers traps while a foreground
		# command runs); timeout(1) passes the TERM on to the test.
		: >"$WORK/$name.log" # exists before tail opens it
		timeout --kill-after=5 "$TEST_TIMEOUT" "$@" >>"$WORK/$name.log" 2>&1 &
		TEST_PID=$!
		tail -s 0.1 -n +1 -f --pid="$TEST_PID" "$WORK/$name.log" &
		local tail_pid=$!
		wait "$TEST_PID"
		rc=$?
		TEST_PID=
		wait "$tail_pid" 2>/dev/null # tail exits after printing the rest
	fi
	set -e
	local secs
	secs=$(awk -v ms=$(($(now_ms) - start)) 'BEGIN { printf "%.1f", ms / 1000 }')
	if [ "$rc" = 0 ]; then
		record "$name" PASS "$secs"
	else
		case $rc in
		124 | 137) reason="killed after ${TEST_TIMEOUT}s (hung)" ;;
		*) reason=$(grep -E 'FAIL|[Ee]rror' "$WORK/$name.log" | tail -n 1 | cut -c1-160) || true ;;
		esac
		record "$name" FAIL "$secs" "exit $rc${reason:+: $reason}"
		server_log_tail
		if pid_alive "$SERVER_PID"; then
			[ -e "$WORK/server-threads.txt" ] || dump_threads "$SERVER_PID" "$WORK/server-threads.txt"
		else
			warn "the server (pid $SERVER_PID) is no longer running"
		fi
	fi
}

# --- start the server ---------------------------------------------------------------
# start_server: start the server on $CFG (its data dir is kept across calls:
# the restart test calls this again after a SIGKILL), append its output to
# $SERVER_LOG, set SERVER_PID and wait until both c2s ports accept.
start_server() {
	if [ "$SERVER" = hydrant ]; then
		say "starting $HYDRANT serve --config $CFG"
		echo "==== interop: hydrant serve started at $(date -u +%FT%T.%3NZ) ====" >>"$SERVER_LOG"
		"$HYDRANT" serve --config "$CFG" </dev/null >>"$SERVER_LOG" 2>&1 &
		SERVER_PID=$!
	else
		say "starting prosody -F --config $CFG (reference mode)"
		prosody -F --config "$CFG" </dev/null >>"$SERVER_LOG" 2>&1 &
		SERVER_PID=$!
	fi
	local start
	start=$(now_ms)
	wait_port "$XMPP_HOST" "$XMPP_C2S_PORT" 20 "$SERVER_PID" &&
		wait_port "$XMPP_HOST" "$XMPP_TLS_PORT" 5 "$SERVER_PID" || return 1
	say "server pid $SERVER_PID accepting on $XMPP_HOST:$XMPP_C2S_PORT (STARTTLS) and :$XMPP_TLS_PORT (direct TLS) after $(($(now_ms) - start)) ms"
}

# kill9_server: SIGKILL the server (no shutdown code runs) and reap it.
kill9_server() {
	say "kill -9 $SERVER_PID"
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	pid_alive "$SERVER_PID" && { warn "pid $SERVER_PID survived SIGKILL"; return 1; }
	SERVER_PID=
}

PW=$(openssl rand -hex 6)
PASSWORD="pw-$PW"
if [ "$SERVER" = hydrant ]; then
	write_hydrant_config
	run_test check_config "$HYDRANT" check-config --config "$CFG"
else
	command -v prosody >/dev/null || die "prosody is not installed (apt-get install prosody)"
	write_prosody_config
fi
if ! start_server; then
	record server_start FAIL 0 "server did not start listening"
	server_log_tail
	print_summary
	exit 1
fi

# --- accounts ---------------------------------------------------------------------
# alice registers in-band inside slixmpp_basic; everybody else is created with
# the admin CLI (bob's password through stdin, the others with --password).
# alice/bob: slixmpp_basic, carol/dave: sendxmpp, erin/frank: profanity,
# grace: slixmpp_negative, ps_*: slixmpp_pubsub, aiox_*: aioxmpp_pubsub,
# pep_*: slixmpp_pep, z_*: slixmpp_zlib, gz_*: gloox_zlib, rs_*: restart.
if ! { add_user bob "$PASSWORD" stdin &&
	add_user carol "$PASSWORD" && add_user dave "$PASSWORD" &&
	add_user erin "$PASSWORD" && add_user frank "$PASSWORD" && add_user grace "$PASSWORD" &&
	add_users ps_a ps_b ps_c aiox_a aiox_b pep_a pep_b pep_c z_a z_b z_c gz_a gz_b gz_c rs_a rs_b; }; then
	record user_add FAIL 0 "could not create accounts with the admin CLI"
	print_summary
	exit 1
fi

# --- tests -------------------------------------------------------------------------
PYDEBUG=()
[ "$DEBUG" = 1 ] && PYDEBUG=(--debug)

run_test slixmpp_basic "$PY" "$INTEROP_DIR/slixmpp_basic.py" \
	--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --tls-port "$XMPP_TLS_PORT" \
	--domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
	--a-user alice --b-user bob --b-precreated --password "$PASSWORD" "${PYDEBUG[@]}"

cli_user_list() {
	# the account registered in-band must be visible to the admin CLI
	local out
	out=$("$HYDRANT" user list --config "$CFG" 2>&1) || { echo "FAIL: hydrant user list: $out"; return 1; }
	echo "$out"
	for u in alice bob carol; do
		grep -Eq "(^|[^a-z])$u(@$XMPP_DOMAIN)?([^a-z]|$)" <<<"$out" ||
			{ echo "FAIL: '$u' missing from hydrant user list"; return 1; }
	done
	echo "PASS: user list shows the in-band registered and the CLI-created accounts"
}
if [ "$SERVER" = hydrant ] && selected slixmpp_basic; then
	run_test cli_user_list cli_user_list
fi

run_test sendxmpp "$INTEROP_DIR/sendxmpp.sh" carol "$PASSWORD" dave "$PASSWORD"
run_test profanity "$INTEROP_DIR/profanity.sh" erin "$PASSWORD" frank "$PASSWORD"

# XEP-0280 carbons and XEP-0191 blocking: profanity (in tmux) as cb_u/tui next to
# slixmpp as cb_u/slix and cb_c (profanity_cb.py drives all three). Accounts
# cb_*, created here. Fails (does not skip) without profanity or tmux.
profanity_cb() {
	local ref=()
	# Prosody drops a blocked contact's chat to an online full JID (its issue
	# #690); hydrant bounces it with <service-unavailable/>, as XEP-0191 3.5 says
	[ "$SERVER" = prosody ] && ref=(--full-jid-block-drops)
	add_users cb_u cb_c || { echo "FAIL: could not create cb_u, cb_c"; return 1; }
	timeout --kill-after=5 "$TEST_TIMEOUT" "$PY" "$INTEROP_DIR/profanity_cb.py" \
		--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
		--users cb_u,cb_c --password "$PASSWORD" --work "$(mktemp -d "$WORK/profanity-cb.XXXXXX")" \
		"${ref[@]}" "${PYDEBUG[@]}"
}
run_test profanity_cb profanity_cb

# PubSub (XEP-0060) on pubsub.$XMPP_DOMAIN and PEP (XEP-0163)
ANY_ORDER=() # hydrant lists items newest first (documented); Prosody oldest first
[ "$SERVER" = prosody ] && ANY_ORDER=(--any-order)
run_test slixmpp_pubsub "$PY" "$INTEROP_DIR/slixmpp_pubsub.py" \
	--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
	--users ps_a,ps_b,ps_c --password "$PASSWORD" "${PYDEBUG[@]}" "${ANY_ORDER[@]}"

aioxmpp_pubsub() {
	local py=${INTEROP_AIOXMPP_PYTHON:-}
	if [ -z "$py" ]; then
		py=$("$INTEROP_DIR/aioxmpp-venv.sh") || { echo "FAIL: could not set up the aioxmpp venv"; return 1; }
	fi
	timeout --kill-after=5 "$TEST_TIMEOUT" "$py" "$INTEROP_DIR/aioxmpp_pubsub.py" \
		--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
		--users aiox_a,aiox_b --password "$PASSWORD" "${PYDEBUG[@]}"
}
run_test aioxmpp_pubsub aioxmpp_pubsub

# XEP-0198 stream management: the subscriber's TCP connection is cut (a relay
# resets it both ways, tcpcut.py), the client resumes the stream, and every
# notification and message sent meanwhile arrives exactly once. Accounts sm_*
# (slixmpp) and asm_* (aioxmpp), created here.
slixmpp_sm() {
	add_users sm_s sm_p || { echo "FAIL: could not create sm_s, sm_p"; return 1; }
	timeout --kill-after=5 "$TEST_TIMEOUT" "$PY" "$INTEROP_DIR/slixmpp_sm.py" \
		--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
		--users sm_s,sm_p --password "$PASSWORD" "${PYDEBUG[@]}"
}
run_test slixmpp_sm slixmpp_sm

aioxmpp_sm() {
	local py=${INTEROP_AIOXMPP_PYTHON:-}
	if [ -z "$py" ]; then
		py=$("$INTEROP_DIR/aioxmpp-venv.sh") || { echo "FAIL: could not set up the aioxmpp venv"; return 1; }
	fi
	add_users asm_s asm_p || { echo "FAIL: could not create asm_s, asm_p"; return 1; }
	timeout --kill-after=5 "$TEST_TIMEOUT" "$py" "$INTEROP_DIR/aioxmpp_sm.py" \
		--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
		--users asm_s,asm_p --password "$PASSWORD" "${PYDEBUG[@]}"
}
run_test aioxmpp_sm aioxmpp_sm

run_test slixmpp_pep "$PY" "$INTEROP_DIR/slixmpp_pep.py" \
	--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
	--users pep_a,pep_b,pep_c --password "$PASSWORD" "${PYDEBUG[@]}"

# XEP-0352 client state indication with slixmpp's xep_0352 plugin: held while
# inactive, released by <active/>, by a message with a body and by size.
# Accounts csi_* (S inactive subscriber, W active witness, P publisher), created here.
slixmpp_csi() {
	add_users csi_s csi_w csi_p || { echo "FAIL: could not create csi_s, csi_w, csi_p"; return 1; }
	timeout --kill-after=5 "$TEST_TIMEOUT" "$PY" "$INTEROP_DIR/slixmpp_csi.py" \
		--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
		--users csi_s,csi_w,csi_p --password "$PASSWORD" "${PYDEBUG[@]}"
}
run_test slixmpp_csi slixmpp_csi

# xmpp.js (@xmpp/client, node): SCRAM-SHA-1 over STARTTLS, the account's PEP
# service, a XEP-0080 location to a +notify contact. Accounts xj_*, created here.
xmppjs_pep() {
	local modules=${INTEROP_XMPPJS_MODULES:-}
	command -v node >/dev/null || { echo "FAIL: node is not installed"; return 1; }
	if [ -z "$modules" ]; then
		modules=$("$INTEROP_DIR/xmppjs-install.sh") || { echo "FAIL: could not install xmpp.js (npm ci)"; return 1; }
	fi
	add_users xj_a xj_b xj_c || { echo "FAIL: could not create xj_a, xj_b, xj_c"; return 1; }
	NODE_EXTRA_CA_CERTS=$XMPP_CA timeout --kill-after=5 "$TEST_TIMEOUT" node "$INTEROP_DIR/xmppjs_pep.mjs" \
		--modules "$modules" --host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" \
		--users xj_a,xj_b,xj_c --password "$PASSWORD" "${PYDEBUG[@]}"
}
run_test xmppjs_pep xmppjs_pep

# aioxmpp's PEPClient (register_pep_node notify=True) for a contact's location,
# typed node configuration forms on pubsub.<domain>. Accounts ap_*, created here.
aioxmpp_pep() {
	local py=${INTEROP_AIOXMPP_PYTHON:-}
	if [ -z "$py" ]; then
		py=$("$INTEROP_DIR/aioxmpp-venv.sh") || { echo "FAIL: could not set up the aioxmpp venv"; return 1; }
	fi
	add_users ap_a ap_b || { echo "FAIL: could not create ap_a, ap_b"; return 1; }
	timeout --kill-after=5 "$TEST_TIMEOUT" "$py" "$INTEROP_DIR/aioxmpp_pep.py" \
		--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
		--users ap_a,ap_b --password "$PASSWORD" "${PYDEBUG[@]}"
}
run_test aioxmpp_pep aioxmpp_pep

# XEP-0138 zlib (hydrant only: Prosody 0.12 ships no stream compression), with two
# independent client implementations: slixmpp (Python's zlib) and gloox (C++, GnuTLS,
# its own CompressionZlib), compiled here from gloox_zlib.cpp.
gloox_zlib() {
	local bin=$WORK/gloox_zlib dbg=() c
	[ "$DEBUG" = 1 ] && dbg=(--debug)
	for c in g++ pkg-config; do
		command -v "$c" >/dev/null || { echo "FAIL: $c is not installed (apt-get install $c)"; return 1; }
	done
	pkg-config --exists gloox || { echo "FAIL: gloox is not installed (apt-get install libgloox-dev)"; return 1; }
	# shellcheck disable=SC2046 # pkg-config's flags are separate words
	timeout 120 g++ -std=c++17 -O1 -Wall -o "$bin" "$INTEROP_DIR/gloox_zlib.cpp" \
		$(pkg-config --cflags --libs gloox) ||
		{ echo "FAIL: could not compile gloox_zlib.cpp against gloox $(pkg-config --modversion gloox)"; return 1; }
	echo "compiled gloox_zlib.cpp against gloox $(pkg-config --modversion gloox)"
	timeout --kill-after=5 "$TEST_TIMEOUT" "$bin" \
		--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
		--users gz_a,gz_b,gz_c --password "$PASSWORD" "${dbg[@]}"
}
if [ "$SERVER" = hydrant ]; then
	run_test slixmpp_zlib "$PY" "$INTEROP_DIR/slixmpp_zlib.py" \
		--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
		--users z_a,z_b,z_c --password "$PASSWORD" "${PYDEBUG[@]}"
	run_test gloox_zlib gloox_zlib
fi

# last: refusals (duplicate registration, wrong password) and a login after
# them; a server that breaks here cannot hide the results above.
run_test slixmpp_negative "$PY" "$INTEROP_DIR/slixmpp_negative.py" \
	--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA" \
	--user grace --password "$PASSWORD" "${PYDEBUG[@]}"

# --- the server must have survived all of it ----------------------------------------
if pid_alive "$SERVER_PID"; then
	record server_alive PASS 0 "pid $SERVER_PID still running after the tests"
else
	wait "$SERVER_PID" 2>/dev/null && rc=0 || rc=$?
	record server_alive FAIL 0 "server exited during the tests (status $rc)"
	server_log_tail
fi
# --- kill -9 and restart: acknowledged items and subscriptions survive -------------
# restart_pubsub.py --phase before publishes (acknowledged one by one, then a
# pipelined storm), and signals once the storm is under way; the server gets
# SIGKILL in mid-storm and is started again on the same config and data dir;
# --phase after checks every acknowledged item and the old subscription.
restart() {
	local state=$WORK/restart-state.json ready=$WORK/restart-storm-started p1 rc common
	common=(--host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --domain "$XMPP_DOMAIN" --ca "$XMPP_CA"
		--users "rs_a,rs_b" --password "$PASSWORD" --state "$state" "${PYDEBUG[@]}")
	pid_alive "$SERVER_PID" || { echo "FAIL: the server is not running before the restart test"; return 1; }
	rm -f "$ready"
	timeout --kill-after=5 60 "$PY" "$INTEROP_DIR/restart_pubsub.py" --phase before --ready-file "$ready" "${common[@]}" &
	p1=$!
	if ! wait_file_line "$ready" . 30 "$p1"; then
		wait "$p1"
		echo "FAIL: phase 'before' did not get its publish storm going (exit $?)"
		return 1
	fi
	kill9_server || { echo "FAIL: could not SIGKILL the server"; return 1; }
	wait "$p1" && rc=0 || rc=$?
	[ "$rc" = 0 ] || { echo "FAIL: phase 'before' exited $rc"; return 1; }
	start_server || { echo "FAIL: the server did not come back after SIGKILL"; return 1; }
	timeout --kill-after=5 60 "$PY" "$INTEROP_DIR/restart_pubsub.py" --phase after "${common[@]}"
}
if [ "$SERVER" = hydrant ] && selected restart && pid_alive "$SERVER_PID"; then
	run_test restart restart
fi

# --- and stop cleanly on SIGTERM ---------------------------------------------------
if pid_alive "$SERVER_PID"; then
	start=$(now_ms)
	kill -TERM "$SERVER_PID"
	deadline=$((start + 10000))
	while pid_alive "$SERVER_PID" && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
	if pid_alive "$SERVER_PID"; then
		record server_stop FAIL 10 "still running 10s after SIGTERM (killing it)"
		server_log_tail
		dump_threads "$SERVER_PID" "$WORK/server-threads-at-stop.txt"
		kill -KILL "$SERVER_PID" 2>/dev/null || true
	else
		wait "$SERVER_PID" 2>/dev/null && rc=0 || rc=$?
		record server_stop PASS "$(awk -v ms=$(($(now_ms) - start)) 'BEGIN { printf "%.1f", ms / 1000 }')" \
			"exited $rc after SIGTERM"
	fi
fi
SERVER_PID=

# --- the log an operator reads (issue 12): plain text when it is not a terminal, and
# one line per stream end with its reason ---------------------------------------------
if [ "$SERVER" = hydrant ]; then
	if grep -q $'\x1b\[' "$SERVER_LOG"; then
		record server_log FAIL 0 "ANSI escape codes in a log that is not a terminal"
	elif ! grep -q 'stream ended.*reason' "$SERVER_LOG"; then
		record server_log FAIL 0 "no 'stream ended' line with a reason"
	elif grep -q -F -e "$PASSWORD" "$SERVER_LOG"; then
		# The accounts' password went through SASL PLAIN (go-sendxmpp), SCRAM and
		# the admin CLI: it must never reach the log at the default level.
		record server_log FAIL 0 "the test accounts' password is in the server log"
	elif grep -q -E 'hello B from A|hi A, B here|while you were away' "$SERVER_LOG"; then
		# slixmpp_basic's message bodies: no message body is logged at info.
		record server_log FAIL 0 "a message body is in the server log"
	else
		record server_log PASS 0 "plain text, no password or message body; $(grep -c 'stream ended' "$SERVER_LOG") stream-end lines with reasons"
	fi
fi

print_summary
if [ "$FAILED" -gt 0 ]; then
	say "$FAILED interop check(s) FAILED (logs in $WORK)"
	exit 1
fi
say "all interop checks passed"

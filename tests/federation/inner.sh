#!/usr/bin/env bash
# The federation test inside its network + mount namespace (run by run.sh only).
set -euo pipefail
PIDS=()
stop_all() {
	local p
	# ejabberd first, politely: its wrapper's child is the Erlang VM.
	[ -s "$W/ejabberd/ejabberd.pid" ] && timeout 20 "$W/ejabberd/ejctl" stop >/dev/null 2>&1 || true
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop_all EXIT
show_logs() {
	echo "--- hydrant log (tail) ---"; tail -n 60 "$W/hydrant/log" || true
	echo "--- prosody log (tail) ---"; tail -n 60 "$W/prosody/prosody.log" || true
	echo "--- ejabberd log (tail) ---"; tail -n 60 "$W/ejabberd/log/ejabberd.log" || true
	echo "--- dns queries (tail) ---"; tail -n 20 "$W/dnsmasq.log" || true
}
wait_port() { # wait_port HOST PORT WHAT
	local i
	for i in $(seq 100); do
		(echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "federation: $3 is not listening on $1:$2" >&2
	show_logs
	return 1
}

ip link set lo up
# Each address as a /32 of its own: glibc's AI_ADDRCONFIG ignores a lone 127.0.0.1.
for a in 127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.53; do ip addr add "$a/32" dev lo; done
mount --bind "$W/resolv.conf" /etc/resolv.conf

dnsmasq --conf-file="$W/dnsmasq.conf" --keep-in-foreground --pid-file="$W/dnsmasq.pid" &
PIDS+=($!)
setpriv --reuid=prosody --regid=prosody --init-groups -- \
	prosody --config "$W/prosody/prosody.cfg.lua" -F >"$W/prosody/stdout.log" 2>&1 &
PIDS+=($!)
"$W/ejabberd/ejctl" foreground >"$W/ejabberd/log/foreground.out" 2>&1 &
PIDS+=($!)
HPID=
start_hydrant() { # start_hydrant CONFIG
	"$HYDRANT" serve --config "$1" >>"$W/hydrant/log" 2>&1 &
	HPID=$!
	PIDS+=("$HPID")
}
start_hydrant "$W/hydrant/hydrant.toml"
wait_port 127.0.0.53 53 dnsmasq
wait_port 127.0.0.2 15222 prosody
wait_port 127.0.0.3 15222 ejabberd
wait_port 127.0.0.4 15222 hydrant
wait_port 127.0.0.4 15269 "hydrant s2s"

PW=federation-test-pw
for u in alice-prosody1 alice-ejabberd1 alice-prosody2 alice-ejabberd2; do "$HYDRANT" user add "$u@hydrant.test" --config "$W/hydrant/hydrant.toml" --password "$PW" >/dev/null; done
for u in admin bob; do setpriv --reuid=prosody --regid=prosody --init-groups -- \
	prosodyctl --config "$W/prosody/prosody.cfg.lua" register "$u" prosody.test "$PW" >/dev/null; done
for u in admin bob; do "$W/ejabberd/ejctl" register "$u" ejabberd.test "$PW" >/dev/null; done

rc=0
run_peers() { # run_peers TAG
	local peer
	for peer in prosody ejabberd; do
		/usr/bin/python3 "$HERE/peer.py" --peer "$peer" --tag "$1" --ca "$W/ca/ca.crt" \
			--password "$PW" $([ "$DEBUG" = 1 ] && echo --debug) || rc=1
	done
}
# expect_log FILE FROM_LINE PATTERN WHAT: the peer's own log, from line FROM_LINE on,
# must show how it authenticated. Servers write their logs asynchronously: wait for the
# line (10 s at most) rather than read too early.
expect_log() {
	local i
	for i in $(seq 50); do
		if tail -n +"$2" "$1" | grep -qE "$3"; then
			echo "PASS: $4"
			return 0
		fi
		sleep 0.2
	done
	echo "FAIL: $4 (no line matching '$3' in $1 from line $2)"
	rc=1
}

echo "=== phase 1: certificates trusted both ways (SASL EXTERNAL) ==="
run_peers 1
expect_log "$W/prosody/prosody.log" 1 "Accepting SASL EXTERNAL identity from hydrant.test" \
	"Prosody authenticated hydrant.test with SASL EXTERNAL"
expect_log "$W/ejabberd/log/ejabberd.log" 1 "Accepted inbound s2s EXTERNAL authentication hydrant.test" \
	"ejabberd authenticated hydrant.test with SASL EXTERNAL"
expect_log "$W/ejabberd/log/ejabberd.log" 1 "Accepted outbound s2s EXTERNAL authentication ejabberd.test -> hydrant.test" \
	"hydrant authenticated ejabberd.test with SASL EXTERNAL"
# ejabberd offers XEP-0138 after SASL EXTERNAL (s2s_zlib): hydrant's streams to it
# are compressed from then on, and every check above ran over them.
expect_log "$W/hydrant/log" 1 "s2s outbound stream compressed.*ejabberd.test" \
	"hydrant's streams to ejabberd.test are compressed (XEP-0138, after SASL EXTERNAL)"

echo "=== phase 2: hydrant does not trust the peers' CA (Server Dialback) ==="
kill "$HPID"; wait "$HPID" 2>/dev/null || true
P_FROM=$(($(wc -l <"$W/prosody/prosody.log") + 1))
E_FROM=$(($(wc -l <"$W/ejabberd/log/ejabberd.log") + 1))
start_hydrant "$W/hydrant/dialback.toml"
wait_port 127.0.0.4 15269 "hydrant s2s (restarted)"
run_peers 2
expect_log "$W/ejabberd/log/ejabberd.log" "$E_FROM" "Accepted inbound s2s dialback authentication hydrant.test" \
	"ejabberd authenticated hydrant.test with dialback"
expect_log "$W/ejabberd/log/ejabberd.log" "$E_FROM" "Accepted outbound s2s dialback authentication ejabberd.test -> hydrant.test" \
	"hydrant authenticated ejabberd.test with dialback"
expect_log "$W/prosody/prosody.log" "$P_FROM" "Incoming s2s connection hydrant.test->prosody.test complete" \
	"Prosody accepted hydrant.test again"

if tail -n +"$P_FROM" "$W/prosody/prosody.log" | grep -q "Accepting SASL EXTERNAL identity from hydrant.test"; then
	echo "FAIL: Prosody still used SASL EXTERNAL with hydrant in phase 2"; rc=1
fi

if [ "$rc" != 0 ]; then show_logs; fi
exit "$rc"

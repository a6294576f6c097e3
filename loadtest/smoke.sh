#!/usr/bin/env bash
# CI smoke of hydrant-load: proves each scenario works end to end, not a benchmark.
#
#   loadtest/smoke.sh            # debug build (PROFILE=release for release)
#
# Starts a private hydrant on 127.0.0.1 (temp config and data dir, plaintext c2s,
# in-band registration on), then runs `connect`, `firehose`, `feeds`, `hostile` (100
# subscribers while every attack runs) against it and `limit` against the tool's own
# null server, ~200 connections each. Fails (exit 1) on
# any failed step, any lost notification (hydrant-load exits 1 on loss) or a JSON
# result whose loss is not 0. Loopback only; stops the server it started by its PID.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=${PROFILE:-debug}
N=${N:-200}
flag=()
[ "$PROFILE" = release ] && flag=(--release)
(cd "$ROOT" && cargo build -q "${flag[@]}" -p hydrant-server -p hydrant-loadtest)
BIN=$ROOT/target/$PROFILE
W=$(mktemp -d "${TMPDIR:-/tmp}/hl-smoke.XXXXXX")
PID=
cleanup() {
	if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	rm -rf "$W"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$W/hydrant.toml" <<CFG
domain = "smoke.test"
data_dir = "$W/data"
log = "warn"
[s2s]
enabled = false
[c2s]
listen = ["127.0.0.1:$PORT"]
direct_tls_listen = []
require_tls = false
# The generator is one host standing in for thousands of clients: lift the
# per-address admission limits (README "Limits and abuse") that would refuse it.
max_unauthenticated_per_ip = 100000
connections_per_ip_per_sec = 100000
connection_burst_per_ip = 100000
[registration]
enabled = true
# every client registers from loopback: no budget per network
per_ip_per_hour = 0
CFG
"$BIN/hydrant" serve --config "$W/hydrant.toml" 2>>"$W/server.log" &
PID=$!
for _ in $(seq 300); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
	kill -0 "$PID" 2>/dev/null || { cat "$W/server.log"; exit 1; }
	sleep 0.1
done

LOAD=$BIN/hydrant-load
S=(--server "127.0.0.1:$PORT" --domain smoke.test --tls none --auth scram-sha-1
	--sources 127.0.0.2-127.0.0.254 --server-pid "$PID")
check() { # NAME: the JSON says zero loss and something was delivered
	python3 - "$W/$1.json" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r["delivery"]
assert d["loss"] == 0, f"{sys.argv[2]}: loss {d['loss']}"
assert d["received"] == d["expected"] > 0, f"{sys.argv[2]}: received {d['received']} of {d['expected']}"
assert d["duplicates"] == 0, f"{sys.argv[2]}: {d['duplicates']} duplicates"
print(f"smoke {sys.argv[2]}: OK, {d['received']} notifications, {d['per_sec']:.0f}/s, loss 0")
PY
}
step() { echo "== $*"; }

step "connect: $N connections (registering them)"
"$LOAD" connect "${S[@]}" --users "$N" --register --settle-secs 0 --json "$W/connect.json" >"$W/connect.txt" 2>&1 \
	|| { cat "$W/connect.txt"; exit 1; }
python3 -c "import json,sys; r=json.load(open('$W/connect.json')); c=r['connect']; assert c['ok']==$N and c['failed']==0, c; print('smoke connect: OK,', c['ok'], 'connections')"

step "firehose: $N subscribers, 50 items as fast as acks allow"
"$LOAD" firehose "${S[@]}" --users "$N" --register --items 50 --rate 0 --json "$W/firehose.json" >"$W/firehose.txt" 2>&1 \
	|| { cat "$W/firehose.txt"; exit 1; }
check firehose

step "firehose: $N bare-JID subscribers with presence, 30 items at 60/s"
"$LOAD" firehose "${S[@]}" --users "$N" --items 30 --rate 60 --subscribe-jid bare --json "$W/firehose-bare.json" >"$W/firehose-bare.txt" 2>&1 \
	|| { cat "$W/firehose-bare.txt"; exit 1; }
check firehose-bare

step "feeds: $N subscribers following 5 of 20 feeds (Zipf 1.0), 100 items"
"$LOAD" feeds "${S[@]}" --users "$N" --register --feeds 20 --follow 5 --items 100 --rate 0 --json "$W/feeds.json" >"$W/feeds.txt" 2>&1 \
	|| { cat "$W/feeds.txt"; exit 1; }
check feeds

step "hostile: 100 subscribers, 60 items at 30/s, 5 connections of each attack from 127.0.1.1-127.0.1.5"
"$LOAD" hostile "${S[@]}" --users 100 --register --items 60 --rate 30 --attack-conns 5 --drip-secs 0.5 \
	--attacker-sources 127.0.1.1-127.0.1.5 --json "$W/hostile.json" >"$W/hostile.txt" 2>&1 \
	|| { cat "$W/hostile.txt"; exit 1; }
check hostile
python3 - "$W/hostile.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a = {x["attack"]: x for x in r["attacks"]}
assert sorted(a) == ["bomb", "guess", "items", "register", "slowloris"], sorted(a)
for name, x in a.items():
    assert x["attempts"] > 0, f"hostile: attack {name} made no attempt: {x}"
    assert not any("SUCCESS" in k for k in x["outcomes"]), f"hostile: {name}: {x['outcomes']}"
print("smoke hostile attacks:", ", ".join(f"{n} {x['attempts']}" for n, x in sorted(a.items())))
PY

step "publishers: 10 publishers with a node each, 3 subscribers per node, 100 items"
"$LOAD" publishers "${S[@]}" --register --publishers 10 --subscribers-per-node 3 --items 100 --json "$W/publishers.json" >"$W/publishers.txt" 2>&1 \
	|| { cat "$W/publishers.txt"; exit 1; }
check publishers

step "subscribe-storm: 100 clients subscribing to one node, 20 at a time, against 100 logins alone"
# Exits non-zero if any login or subscription failed (no --allow-failures).
"$LOAD" subscribe-storm "${S[@]}" --register --users 100 --concurrency 20 --settle-secs 0 --json "$W/storm.json" >"$W/storm.txt" 2>&1 \
	|| { cat "$W/storm.txt"; exit 1; }
echo "smoke subscribe-storm: OK"

step "limit: $N subscribers on the null server, 50 items"
"$LOAD" limit --users "$N" --items 50 --rate 0 --sources 127.0.0.2-127.0.0.254 --json "$W/limit.json" >"$W/limit.txt" 2>&1 \
	|| { cat "$W/limit.txt"; exit 1; }
check limit
echo "SMOKE PASS"

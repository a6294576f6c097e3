#!/usr/bin/env bash
# Memory per idle authenticated connection of hydrant: plaintext, TLS, and plaintext with
# XEP-0138 zlib.
#
#   loadtest/scripts/hydrant-memory.sh [N ...]      (default: 10000)
#
# For each N: starts a fresh release `hydrant` on 127.0.0.1 (its own temp data dir,
# test CA + leaf certificate made with openssl), registers N accounts in-band, restarts
# the server (so freed memory does not flatter the figure), opens N plaintext
# SCRAM-SHA-256 connections with `hydrant-load connect` and reads the server's RSS
# before and after; then restarts it again and does the same over STARTTLS, and again with
# zlib negotiated after authentication (plaintext). Prints the three summaries and writes JSON next to them in the temp dir (path printed at the end).
# Needs: cargo (builds both binaries in release), openssl. Loopback only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SIZES=("${@:-10000}")
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p hydrant-server -p hydrant-loadtest
HYDRANT=$PWD/target/release/hydrant LOAD=$PWD/target/release/hydrant-load
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hydrant-memory.XXXXXX")
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; true; }
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=hydrant-memory-ca \
	-keyout "$WORK/ca.key" -out "$WORK/ca.crt" -addext basicConstraints=critical,CA:TRUE 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$WORK/leaf.key" -out "$WORK/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$WORK/ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial \
	-days 2 -extfile "$WORK/ext" -out "$WORK/leaf.crt" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
cat >"$WORK/hydrant.toml" <<CFG
domain = "localhost"
data_dir = "$WORK/data"
log = "warn"
[tls]
cert = "$WORK/leaf.crt"
key = "$WORK/leaf.key"
[s2s]
enabled = false
[c2s]
listen = ["127.0.0.1:$PORT"]
direct_tls_listen = []
require_tls = false
compression = true
max_connections = 19500
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

start() {
	cleanup
	"$HYDRANT" serve --config "$WORK/hydrant.toml" 2>>"$WORK/server.log" &
	PID=$!
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
		kill -0 "$PID" || { cat "$WORK/server.log"; exit 1; }
		sleep 0.05
	done
	echo "server did not start" >&2
	exit 1
}

common=(--server "127.0.0.1:$PORT" --domain localhost --sources 127.0.0.2-127.0.0.254 --auth scram-sha-256 --concurrency 100 --settle-secs 3)
for n in "${SIZES[@]}"; do
	start
	echo "== registering $n accounts"
	"$LOAD" connect "${common[@]}" --users "$n" --register --tls none --server-pid "$PID" >"$WORK/register-$n.txt" 2>&1
	start
	echo "== $n idle connections, plaintext (SCRAM-SHA-256)"
	"$LOAD" connect "${common[@]}" --users "$n" --tls none --server-pid "$PID" --json "$WORK/plain-$n.json" 2>/dev/null
	start
	echo "== $n idle connections, STARTTLS (SCRAM-SHA-256)"
	"$LOAD" connect "${common[@]}" --users "$n" --tls starttls --ca "$WORK/ca.crt" --server-pid "$PID" --json "$WORK/tls-$n.json" 2>/dev/null
	start
	echo "== $n idle connections, plaintext + zlib (SCRAM-SHA-256)"
	"$LOAD" connect "${common[@]}" --users "$n" --tls none --zlib --server-pid "$PID" --json "$WORK/zlib-$n.json" 2>/dev/null
done
echo "results: $WORK"

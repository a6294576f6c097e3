#!/usr/bin/env bash
# Baseline figures for `hydrant-load connect` against a private Prosody (Debian
# package) on loopback: memory per idle connection, plaintext and TLS, SCRAM and PLAIN.
#
#   loadtest/scripts/prosody-baseline.sh [USERS]      (default 1000)
#
# Needs root (apt-get, running Prosody as the 'prosody' user). Everything lives in a
# temporary directory; Prosody is stopped by its PID on exit. Results: one JSON per
# run in $OUT (default ./prosody-baseline-results).
set -euo pipefail
USERS=${1:-1000}
OUT=${OUT:-$PWD/prosody-baseline-results}
PORT=${PORT:-25222}
TLS_PORT=${TLS_PORT:-25223}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

command -v prosody >/dev/null || { apt-get update -qq && apt-get install -y -qq prosody; }
command -v openssl >/dev/null || apt-get install -y -qq openssl

D=$(mktemp -d /tmp/hl-prosody.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT

# A private CA and a leaf certificate for each domain (webpki refuses a CA as leaf).
# Leaves go in certs/ next to the config: Prosody picks the direct-TLS certificate by
# SNI from that directory.
mkdir -p "$D/certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=hydrant-load test CA" \
  -keyout "$D/ca.key" -out "$D/ca.crt" 2>/dev/null
for d in load.test load256.test; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$d" -keyout "$D/certs/$d.key" -out "$D/$d.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$d" >"$D/$d.ext"
  openssl x509 -req -in "$D/$d.csr" -CA "$D/ca.crt" -CAkey "$D/ca.key" -CAcreateserial \
    -days 2 -extfile "$D/$d.ext" -out "$D/certs/$d.crt" 2>/dev/null
done

mkdir -p "$D/data"
cat >"$D/prosody.cfg.lua" <<CFG
pidfile = "$D/prosody.pid"
data_path = "$D/data"
admin_socket = "$D/prosody.sock"
log = { warn = "$D/prosody.log" }
daemonize = false
interfaces = { "127.0.0.1" }
c2s_ports = { $PORT }
c2s_direct_tls_ports = { $TLS_PORT }
s2s_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
network_backend = "epoll"
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "register"; "posix"; }
modules_disabled = { "s2s"; }
ssl = { certificate = "$D/certs/load.test.crt"; key = "$D/certs/load.test.key"; }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "internal"
allow_registration = true
min_seconds_between_registrations = 0
registration_allowlist = { "127.0.0.0/8" }
VirtualHost "load.test"
-- Prosody 0.12 offers SCRAM-SHA-256 only for hosts storing SHA-256 keys.
VirtualHost "load256.test"
	password_hash = "SHA-256"
	ssl = { certificate = "$D/certs/load256.test.crt"; key = "$D/certs/load256.test.key"; }
CFG
chown -R prosody:prosody "$D"

start_prosody() {
  [ -n "$PID" ] && { kill "$PID"; wait "$PID" 2>/dev/null || true; }
  setpriv --reuid=prosody --regid=prosody --init-groups prosody -F --config "$D/prosody.cfg.lua" \
    >"$D/stdout.log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do ss -ltn | grep -q "127.0.0.1:$PORT " && return; sleep 0.2; done
  echo "prosody did not start:"; cat "$D/stdout.log" "$D/prosody.log"; exit 1
}

cargo build --release -q -p hydrant-loadtest --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/hydrant-load"
mkdir -p "$OUT"
COMMON=(--users "$USERS" --sources 127.0.0.2-127.0.0.254 --concurrency 100 --register)

run() { # name, then hydrant-load connect options
  local name=$1; shift
  start_prosody   # a fresh server per measurement: freed Lua memory would blur "before"
  echo "== $name"
  "$BIN" connect "${COMMON[@]}" --server-pid "$PID" --json "$OUT/$name.json" "$@" 2>/dev/null
}
run plain-none      --server 127.0.0.1:$PORT --domain load.test --tls none --auth plain
run scram1-none     --server 127.0.0.1:$PORT --domain load.test --tls none --auth scram-sha-1
run scram1-starttls --server 127.0.0.1:$PORT --domain load.test --tls starttls --ca "$D/ca.crt" --auth scram-sha-1
run plain-starttls  --server 127.0.0.1:$PORT --domain load.test --tls starttls --ca "$D/ca.crt" --auth plain
run scram256-direct --server 127.0.0.1:$TLS_PORT --domain load256.test --tls direct --ca "$D/ca.crt" --auth scram-sha-256

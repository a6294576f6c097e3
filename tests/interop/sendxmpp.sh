#!/usr/bin/env bash
# Interop test: go-sendxmpp sends a message over XEP-0368 direct TLS.
#
#   sendxmpp.sh SENDER SENDER_PASSWORD RECIPIENT RECIPIENT_PASSWORD
#
# Environment (exported by run.sh): XMPP_HOST, XMPP_DOMAIN, XMPP_C2S_PORT,
# XMPP_TLS_PORT, XMPP_CA, INTEROP_WORK, INTEROP_DEBUG.
#
# A slixmpp receiver logs in as RECIPIENT (STARTTLS) first and prints READY;
# then go-sendxmpp (Debian 0.5.6) connects to the direct TLS port (-t, and
# -j host:port because it would otherwise dial DOMAIN:5222/5223) and sends a
# unique body. Pass = the receiver got exactly that body from SENDER.
#
# TLS trust: go-sendxmpp verifies the certificate against the JID's domain
# using Go's crypto/x509, which reads SSL_CERT_FILE on Linux: we point it at
# the test CA only (no -n / --no-tls-verify).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# = 4 ] || die "usage: $0 SENDER SENDER_PASSWORD RECIPIENT RECIPIENT_PASSWORD"
FROM=$1@$XMPP_DOMAIN FROM_PW=$2 TO=$3@$XMPP_DOMAIN TO_PW=$4
command -v go-sendxmpp >/dev/null || die "go-sendxmpp is not installed"

D=$(mktemp -d "$INTEROP_WORK/sendxmpp.XXXXXX")
mkdir "$D/empty-certdir" # only the test CA is trusted
RECV_PID=
cleanup() {
	[ -z "$RECV_PID" ] || stop_pid "$RECV_PID" 5
}
trap cleanup EXIT

BODY="go-sendxmpp over direct TLS $(openssl rand -hex 6)"
DBG=()
[ "${INTEROP_DEBUG:-0}" = 1 ] && DBG=(--debug)

"$PY" "$INTEROP_DIR/xmpp_receive.py" --host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --ca "$XMPP_CA" \
	--jid "$TO/sendxmpp-receiver" --password "$TO_PW" --expect-body "$BODY" --expect-from "$FROM" \
	--timeout 30 "${DBG[@]}" >"$D/receiver.out" 2>"$D/receiver.err" &
RECV_PID=$!
if ! wait_file_line "$D/receiver.out" '^READY' 20 "$RECV_PID"; then
	cat "$D/receiver.out" "$D/receiver.err" >&2
	die "FAIL: the receiver ($TO) did not come online"
fi
say "receiver: $(grep '^READY' "$D/receiver.out")"

# go-sendxmpp keeps state under HOME (~/.config, ~/.local/share): isolate it.
GODBG=()
[ "${INTEROP_DEBUG:-0}" = 1 ] && GODBG=(-d)
say "go-sendxmpp $(go-sendxmpp --version 2>/dev/null | head -n 1): $FROM -> $TO via direct TLS $XMPP_HOST:$XMPP_TLS_PORT"
set +e
printf '%s\n' "$BODY" | HOME=$D SSL_CERT_FILE=$XMPP_CA SSL_CERT_DIR=$D/empty-certdir \
	go-sendxmpp "${GODBG[@]}" -t -j "$XMPP_HOST:$XMPP_TLS_PORT" -u "$FROM" -p "$FROM_PW" \
	--timeout 15 "$TO" >"$D/sendxmpp.out" 2>&1
rc=$?
set -e
cat "$D/sendxmpp.out"
[ "$rc" = 0 ] || die "FAIL: go-sendxmpp exited with status $rc"
say "go-sendxmpp exited 0"

# the receiver exits by itself once the body has arrived (or at its timeout)
set +e
wait "$RECV_PID"
rc=$?
set -e
RECV_PID=
cat "$D/receiver.out"
if [ "$rc" != 0 ]; then
	cat "$D/receiver.err" >&2
	die "FAIL: the message from go-sendxmpp did not arrive at $TO (receiver exit $rc)"
fi
echo "PASS: go-sendxmpp -> $TO over direct TLS"

#!/usr/bin/env bash
# Interop test: profanity (TUI, libstrophe) logs in over STARTTLS and sends a
# message, driven through tmux.
#
#   profanity.sh USER PASSWORD RECIPIENT RECIPIENT_PASSWORD
#
# Environment (exported by run.sh): XMPP_HOST, XMPP_DOMAIN, XMPP_C2S_PORT,
# XMPP_CA, INTEROP_WORK, INTEROP_DEBUG.
#
# A slixmpp receiver logs in as RECIPIENT and prints READY. profanity runs in
# a private tmux server (own socket) with its own HOME/XDG dirs, connects with
# `/connect USER@DOMAIN server HOST port PORT tls force`, gets the password
# typed at its prompt, must report "logged in successfully", then sends a
# unique body with /msg. Pass = the receiver got exactly that body from USER
# (an end-to-end proof of the login, the session and the routing).
#
# TLS trust: libstrophe (OpenSSL backend) calls SSL_CTX_set_default_verify_paths,
# which honours SSL_CERT_FILE/SSL_CERT_DIR, so profanity runs with
# SSL_CERT_FILE=test CA and SSL_CERT_DIR=an empty dir: the certificate then
# verifies normally ("Certificate verification passed" in its debug log) and
# profanity's interactive "/tls allow" prompt never appears. Without the CA
# that prompt shows up, and this test fails on it rather than answering it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# = 4 ] || die "usage: $0 USER PASSWORD RECIPIENT RECIPIENT_PASSWORD"
ME=$1@$XMPP_DOMAIN MY_PW=$2 TO=$3@$XMPP_DOMAIN TO_PW=$4
for c in profanity tmux; do command -v "$c" >/dev/null || die "$c is not installed"; done

D=$(mktemp -d "$INTEROP_WORK/profanity.XXXXXX")
mkdir -p "$D/home/.config" "$D/home/.local/share" "$D/empty-certdir"
SOCK=$D/tmux.sock
TMUX_PID='' RECV_PID=''
T() { tmux -S "$SOCK" "$@"; }
cleanup() {
	if [ -n "$TMUX_PID" ]; then
		T send-keys -t prof "/quit" Enter 2>/dev/null || true
		T kill-server 2>/dev/null || true # our private server only (own socket)
		stop_pid "$TMUX_PID" 5
	fi
	[ -z "$RECV_PID" ] || stop_pid "$RECV_PID" 5
}
trap cleanup EXIT

screen() { T capture-pane -p -J -t prof -S -300 2>/dev/null || true; }
# wait_screen REGEX SECONDS [FAIL_REGEX]: poll the pane until REGEX shows up;
# fail at the deadline or as soon as FAIL_REGEX shows up.
wait_screen() {
	local re=$1 secs=$2 bad=${3:-} deadline s
	deadline=$(($(now_ms) + secs * 1000))
	while :; do
		s=$(screen)
		grep -Eq -- "$re" <<<"$s" && return 0
		if [ -n "$bad" ] && grep -Eq -- "$bad" <<<"$s"; then
			echo "---- profanity screen ----"; grep -v '^[[:space:]]*$' <<<"$s" | tail -n 25
			echo "FAIL: profanity showed: $(grep -Eo -- "$bad" <<<"$s" | tail -n 1)"
			return 1
		fi
		if ! pid_alive "$TMUX_PID" || ! T has-session -t prof 2>/dev/null; then
			echo "FAIL: profanity/tmux exited while waiting for '$re'"
			return 1
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "---- profanity screen ----"; grep -v '^[[:space:]]*$' <<<"$s" | tail -n 25
			echo "FAIL: '$re' did not appear on profanity's screen within ${secs}s"
			return 1
		fi
		sleep 0.1
	done
}

BODY="profanity says hi $(openssl rand -hex 6)"
DBG=()
[ "${INTEROP_DEBUG:-0}" = 1 ] && DBG=(--debug)

# --- receiver --------------------------------------------------------------------
"$PY" "$INTEROP_DIR/xmpp_receive.py" --host "$XMPP_HOST" --port "$XMPP_C2S_PORT" --ca "$XMPP_CA" \
	--jid "$TO/profanity-receiver" --password "$TO_PW" --expect-body "$BODY" --expect-from "$ME" \
	--timeout 40 "${DBG[@]}" >"$D/receiver.out" 2>"$D/receiver.err" &
RECV_PID=$!
if ! wait_file_line "$D/receiver.out" '^READY' 20 "$RECV_PID"; then
	cat "$D/receiver.out" "$D/receiver.err" >&2
	die "FAIL: the receiver ($TO) did not come online"
fi
say "receiver: $(grep '^READY' "$D/receiver.out")"

# --- profanity in tmux -------------------------------------------------------------
say "$(profanity --version 2>/dev/null | head -n 1) in tmux $(tmux -V | cut -d' ' -f2), logging in as $ME"
T -f /dev/null new-session -d -s prof -x 200 -y 50 \
	env HOME="$D/home" XDG_CONFIG_HOME="$D/home/.config" XDG_DATA_HOME="$D/home/.local/share" \
	SSL_CERT_FILE="$XMPP_CA" SSL_CERT_DIR="$D/empty-certdir" \
	profanity -l DEBUG
TMUX_PID=$(T display-message -p '#{pid}')
PLOG=$D/home/.local/share/profanity/logs/profanity.log
FAILS='Login failed|[Cc]onnection failed|/tls allow|Lost connection'

wait_screen "Type '/help'|\[offline\]" 15
T send-keys -t prof -l "/connect $ME server $XMPP_HOST port $XMPP_C2S_PORT tls force"
T send-keys -t prof Enter
wait_screen 'Enter password:' 10 "$FAILS"
T send-keys -t prof -l "$MY_PW"
T send-keys -t prof Enter
if ! wait_screen "$ME/[^ ]+ logged in successfully" 20 "$FAILS"; then
	echo "---- profanity log (TLS/SASL lines) ----"
	grep -E 'tls|sasl|auth|SENT|RECV' "$PLOG" 2>/dev/null | tail -n 30 || true
	exit 1
fi
say "profanity: $(screen | grep -Eo "$ME/[^ ]+ logged in successfully[^.]*" | tail -n 1)"
grep -q 'Certificate verification passed' "$PLOG" 2>/dev/null &&
	say "libstrophe: certificate verification passed against the test CA"

T send-keys -t prof -l "/msg $TO $BODY"
T send-keys -t prof Enter

# the receiver exits by itself once the body has arrived (or at its timeout)
set +e
wait "$RECV_PID"
rc=$?
set -e
RECV_PID=
cat "$D/receiver.out"
if [ "$rc" != 0 ]; then
	cat "$D/receiver.err" >&2
	echo "---- profanity screen ----"; screen | grep -v '^[[:space:]]*$' | tail -n 20
	die "FAIL: the message typed into profanity did not arrive at $TO (receiver exit $rc)"
fi
echo "PASS: profanity logged in as $ME over STARTTLS and its message reached $TO"

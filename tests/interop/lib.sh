# Shared helpers for the interop harness (sourced by run.sh and the client tests).
# shellcheck shell=bash
#
# Nothing here depends on anything outside the repository and Debian packages
# that scripts/test.sh installs (openssl, python3, tmux, the XMPP clients).

# shellcheck disable=SC2034 # used by the scripts that source this file
INTEROP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# Debian's python3-slixmpp lives in the system interpreter; a pyenv/venv
# python3 earlier on PATH would not see it.
PY=${INTEROP_PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1 # keep the source tree clean

say() { echo "interop: $*"; }
warn() { echo "interop: $*" >&2; }
die() { echo "interop: error: $*" >&2; exit 1; }

# now_ms: monotonic-enough wall clock in milliseconds (for deadlines)
now_ms() { date +%s%3N; }

# pid_alive PID: the process exists and is not a zombie
pid_alive() {
	[ -n "${1:-}" ] && [ -d "/proc/$1" ] || return 1
	[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop_pid PID [SECONDS]: SIGTERM, wait for it to go, then SIGKILL. Only for
# processes this harness started itself.
stop_pid() {
	local p=${1:-} t=${2:-10} deadline
	pid_alive "$p" || return 0
	kill -TERM "$p" 2>/dev/null || return 0
	deadline=$(($(now_ms) + t * 1000))
	while pid_alive "$p"; do
		if [ "$(now_ms)" -ge "$deadline" ]; then
			warn "pid $p ignored SIGTERM for ${t}s, sending SIGKILL"
			kill -KILL "$p" 2>/dev/null || true
			break
		fi
		sleep 0.05
	done
	wait "$p" 2>/dev/null || true
}

# free_ports N: print N distinct TCP ports on 127.0.0.1 that the kernel just
# handed out as free (all bound at once, so they are distinct; closed again
# before returning, the usual small race is accepted).
free_ports() {
	"$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# port_open HOST PORT: something accepts TCP connections there right now
port_open() {
	# bash's /dev/tcp; the subshell closes the descriptor again
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_port HOST PORT SECONDS [PID]: poll until HOST:PORT accepts; fail at the
# deadline, or as soon as PID (the server) has exited.
wait_port() {
	local host=$1 port=$2 secs=$3 pid=${4:-} deadline
	deadline=$(($(now_ms) + secs * 1000))
	until port_open "$host" "$port"; do
		if [ -n "$pid" ] && ! pid_alive "$pid"; then
			warn "server (pid $pid) exited while waiting for $host:$port"
			return 1
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			warn "$host:$port not accepting connections after ${secs}s"
			return 1
		fi
		sleep 0.05
	done
}

# wait_file_line FILE REGEX SECONDS [PID]: poll until FILE has a line matching
# REGEX (grep -E); fail at the deadline or when PID has exited without it.
wait_file_line() {
	local file=$1 re=$2 secs=$3 pid=${4:-} deadline
	deadline=$(($(now_ms) + secs * 1000))
	until grep -Eq -- "$re" "$file" 2>/dev/null; do
		if [ -n "$pid" ] && ! pid_alive "$pid"; then
			grep -Eq -- "$re" "$file" 2>/dev/null && return 0
			warn "pid $pid exited before '$re' appeared in $file"
			return 1
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			warn "'$re' did not appear in $file within ${secs}s"
			return 1
		fi
		sleep 0.05
	done
}

# make_ca DIR DOMAIN: a throw-away test CA (DIR/ca.crt, ca.key) and a leaf for
# DOMAIN (DIR/DOMAIN.crt, DIR/DOMAIN.key; DIR/DOMAIN.chain.pem = leaf + CA)
# with SAN DNS:DOMAIN + DNS:pubsub.DOMAIN (the default XEP-0060 service) +
# IP:127.0.0.1 and EKU serverAuth+clientAuth.
# Also DIR/capath/: the CA under its OpenSSL subject-hash name (for clients
# that take a CA *directory*, e.g. libstrophe/profanity).
make_ca() {
	local dir=$1 domain=$2 out
	mkdir -p "$dir"
	out=$(
		set -e
		openssl req -x509 -newkey rsa:2048 -sha256 -days 2 -nodes \
			-keyout "$dir/ca.key" -out "$dir/ca.crt" \
			-subj "/O=hydrant interop test/CN=hydrant interop test CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" \
			-addext "subjectKeyIdentifier=hash" 2>&1
		cat >"$dir/$domain.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:$domain, DNS:pubsub.$domain, IP:127.0.0.1
EOF
		openssl req -new -newkey rsa:2048 -sha256 -nodes \
			-keyout "$dir/$domain.key" -out "$dir/$domain.csr" \
			-subj "/O=hydrant interop test/CN=$domain" 2>&1
		openssl x509 -req -in "$dir/$domain.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
			-CAcreateserial -CAserial "$dir/ca.srl" -days 2 -sha256 \
			-extfile "$dir/$domain.ext" -out "$dir/$domain.crt" 2>&1
		openssl verify -CAfile "$dir/ca.crt" -purpose sslserver "$dir/$domain.crt" 2>&1
		cat "$dir/$domain.crt" "$dir/ca.crt" >"$dir/$domain.chain.pem"
		mkdir -p "$dir/capath"
		cp "$dir/ca.crt" "$dir/capath/$(openssl x509 -hash -noout -in "$dir/ca.crt").0"
	) || { echo "$out" >&2; die "could not create the test CA/certificate in $dir"; }
	chmod 600 "$dir/ca.key" "$dir/$domain.key"
	rm -f "$dir/$domain.csr"
}

# --- result bookkeeping (run.sh) ---------------------------------------------
RESULTS=()
FAILED=0

# record NAME STATUS SECONDS [REASON]
record() {
	RESULTS+=("$(printf '%-22s %-4s %6ss  %s' "$1" "$2" "$3" "${4:-}")")
	[ "$2" = PASS ] || FAILED=$((FAILED + 1))
}

print_summary() {
	local r
	echo
	echo "==================== interop summary ===================="
	for r in "${RESULTS[@]}"; do echo "  $r"; done
	echo "========================================================="
}

# dump_threads PID FILE: if gdb is installed, write every thread's backtrace
# of PID to FILE (for a server that hangs) and print the frames in hydrant's
# own crates. Optional diagnostics: nothing depends on gdb being present.
dump_threads() {
	local pid=$1 file=$2
	pid_alive "$pid" || return 0
	command -v gdb >/dev/null || { warn "(install gdb for thread backtraces of a hung server)"; return 0; }
	timeout 60 gdb -q -batch "/proc/$pid/exe" -p "$pid" -ex 'set pagination off' -ex 'thread apply all bt 40' \
		>"$file" 2>&1 </dev/null || true
	echo "---- server threads (full backtraces: $file) ----"
	grep -E '^Thread |hydrant' "$file" | grep -vE '^\s*$' | cut -c1-200 | head -n 80
	echo "---- end of server threads ----"
}

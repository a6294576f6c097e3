#!/usr/bin/env bash
# hydrant's test command: everything CI runs, in one place.
#
#   ./scripts/test.sh [options]
#
# Stages (all by default, in this order):
#   packages   install the interop clients with apt if missing (needs root on a
#              fresh machine; skipped when everything is already installed),
#              then the venv with aioxmpp from PyPI that aioxmpp_pubsub runs in
#              (tests/interop/aioxmpp-venv.sh: pinned, under
#              ~/.cache/hydrant-interop, created once and reused), and xmpp.js
#              from npm for xmppjs_pep (tests/interop/xmppjs-install.sh: npm ci
#              from a lock file, cached beside the venv)
#   fmt        cargo fmt --all --check
#   clippy     cargo clippy --workspace --all-targets -- -D warnings
#   deps       scripts/check-deps.sh (crate dependency directions, DESIGN.md)
#   unit       cargo nextest run --workspace (cargo test if nextest is missing)
#              + cargo test --workspace --doc (nextest does not run doctests)
#   build      cargo build -p hydrant-server (debug: target/debug/hydrant)
#   fuzz       scripts/fuzz-smoke.sh: every cargo-fuzz target built and run 10 s
#              (FUZZ_SECS) over its corpus
#   interop    tests/interop/run.sh target/debug/hydrant (real clients:
#              slixmpp, go-sendxmpp, profanity, aioxmpp, gloox; PubSub, PEP,
#              XEP-0138 zlib and a kill -9 restart)
#   federation tests/federation/run.sh target/debug/hydrant (stock Prosody and
#              ejabberd over s2s: messages, pubsub both ways, presence subscription,
#              with SASL EXTERNAL, then with dialback; DNS SRV from a private
#              dnsmasq in a network namespace)
#   deploy     tests/deploy/run.sh target/debug/hydrant (deploy/hydrant.service through
#              systemd-analyze verify and its security review; the container image
#              from deploy/container/Containerfile built with podman and started)
#
# Options (for developers; CI runs the default):
#   --interop-only   only packages, build, interop
#   --no-lint        skip fmt and clippy
#   --no-unit        skip unit tests
#   --no-interop     skip build and interop (and packages)
#   --no-install     never call apt-get (fail if a client is missing)
#   --interop-args ARGS  extra arguments for tests/interop/run.sh
#                        (e.g. "--only slixmpp_basic --keep --debug")
#
# Exit status is non-zero if any stage failed; a summary is printed at the end.
# Expects Debian 12 with Rust (cargo, rustfmt, clippy) and, ideally,
# cargo-nextest preinstalled.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD

DO_LINT=1 DO_UNIT=1 DO_DEPS=1 DO_INTEROP=1 DO_INSTALL=1 INTEROP_ARGS=()
while [ $# -gt 0 ]; do
	case $1 in
	--interop-only) DO_LINT=0 DO_UNIT=0 DO_DEPS=0; shift ;;
	--no-lint) DO_LINT=0; shift ;;
	--no-unit) DO_UNIT=0; shift ;;
	--no-interop) DO_INTEROP=0; shift ;;
	--no-install) DO_INSTALL=0; shift ;;
	--interop-args) read -r -a INTEROP_ARGS <<<"$2"; shift 2 ;;
	-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Debian's python3-slixmpp is for the system interpreter; a pyenv python3
# earlier on PATH would not have it. The interop scripts call /usr/bin/python3.
SYSPY=/usr/bin/python3

SUMMARY=() FAILED=0
T_START=$(date +%s)
now() { date +%s; }
banner() { printf '\n=== %s ===\n' "$*"; }
# stage NAME CMD...: run, record PASS/FAIL with the time taken
stage() {
	local name=$1 t0 rc; shift
	banner "$name: $*"
	t0=$(now)
	"$@"
	rc=$?
	if [ "$rc" = 0 ]; then
		SUMMARY+=("$(printf '%-9s PASS %5ss' "$name" $(($(now) - t0)))")
	else
		SUMMARY+=("$(printf '%-9s FAIL %5ss  (exit %s)' "$name" $(($(now) - t0)) "$rc")")
		FAILED=$((FAILED + 1))
	fi
	return "$rc"
}
skip() { SUMMARY+=("$(printf '%-9s SKIP         %s' "$1" "$2")"); }

# --- packages ----------------------------------------------------------------------
# libgloox-dev + g++ + pkg-config: gloox_zlib compiles its gloox client at test time
PKGS=(python3-slixmpp python3-venv go-sendxmpp profanity tmux openssl ca-certificates
	libgloox-dev g++ pkg-config prosody ejabberd dnsmasq-base iproute2
	systemd podman runc mmdebstrap)
missing_pkgs() {
	local p
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}
install_packages() {
	local missing log
	mapfile -t missing < <(missing_pkgs)
	if [ ${#missing[@]} -eq 0 ]; then
		echo "all interop packages present: ${PKGS[*]}"
		return 0
	fi
	echo "missing: ${missing[*]}"
	if [ "$DO_INSTALL" = 0 ]; then
		echo "--no-install given; install them with: apt-get install -y ${missing[*]}" >&2
		return 1
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "not root: run 'sudo apt-get install -y ${missing[*]}' first" >&2
		return 1
	fi
	log=$(mktemp "${TMPDIR:-/tmp}/hydrant-apt.XXXXXX")
	echo "apt-get update && apt-get install -y ${missing[*]} (log: $log)"
	if DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$log" 2>&1; then
		rm -f "$log"
		mapfile -t missing < <(missing_pkgs)
		[ ${#missing[@]} -eq 0 ] || { echo "still missing after apt-get: ${missing[*]}" >&2; return 1; }
		echo "installed"
	else
		tail -n 30 "$log" >&2
		return 1
	fi
}
# the aioxmpp venv (pip, PyPI): quick no-op when it exists
install_python_packages() {
	local py
	py=$(tests/interop/aioxmpp-venv.sh) || return 1
	echo "aioxmpp venv: $py"
}
# xmpp.js for xmppjs_pep (npm ci from the lock file): quick no-op when it exists
install_node_packages() {
	local dir
	dir=$(tests/interop/xmppjs-install.sh) || return 1
	echo "xmpp.js: $dir"
}
install_all() {
	local rc=0
	install_packages || rc=1
	install_python_packages || rc=1
	install_node_packages || rc=1
	return "$rc"
}

# --- rust stages ----------------------------------------------------------------------
run_unit() {
	local rc=0
	if cargo nextest --version >/dev/null 2>&1; then
		local extra=()
		cargo nextest run --help 2>/dev/null | grep -q -- '--no-tests' && extra=(--no-tests=warn)
		cargo nextest run --workspace "${extra[@]}" || rc=$?
		echo "--- doctests (nextest does not run them) ---"
		cargo test --workspace --doc || rc=$?
	else
		echo "cargo-nextest not found; falling back to cargo test"
		cargo test --workspace || rc=$?
	fi
	return "$rc"
}

target_dir() {
	cargo metadata --no-deps --format-version 1 2>/dev/null |
		"$SYSPY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
		echo "${CARGO_TARGET_DIR:-$ROOT/target}"
}

# --- run ----------------------------------------------------------------------------
if [ "$DO_INTEROP" = 1 ]; then
	stage packages install_all || true
else
	skip packages "(--no-interop)"
fi

if [ "$DO_LINT" = 1 ]; then
	stage fmt cargo fmt --all --check || true
	stage clippy cargo clippy --workspace --all-targets -- -D warnings || true
else
	skip fmt "(--no-lint / --interop-only)"
	skip clippy "(--no-lint / --interop-only)"
fi

if [ "$DO_DEPS" = 1 ]; then
	stage deps scripts/check-deps.sh || true
else
	skip deps "(--interop-only)"
fi

if [ "$DO_UNIT" = 1 ]; then
	stage unit run_unit || true
else
	skip unit "(--no-unit / --interop-only)"
fi

if [ "$DO_INTEROP" = 1 ]; then
	if stage build cargo build -p hydrant-server; then
		HYDRANT_BIN=$(target_dir)/debug/hydrant
		if [ -x "$HYDRANT_BIN" ]; then
			stage interop tests/interop/run.sh "${INTEROP_ARGS[@]}" "$HYDRANT_BIN" || true
			# Federation with a stock Prosody over s2s, DNS SRV from a private dnsmasq,
			# in a network namespace of its own (tests/federation/run.sh).
			stage federation tests/federation/run.sh "$HYDRANT_BIN" || true
			# deploy/: the systemd unit (systemd-analyze) and the container image
			# (podman, a Debian base from mmdebstrap) with the binary under test.
			stage deploy tests/deploy/run.sh "$HYDRANT_BIN" || true
		else
			echo "test.sh: build succeeded but $HYDRANT_BIN does not exist" >&2
			SUMMARY+=("$(printf '%-9s FAIL         no binary at %s' interop "$HYDRANT_BIN")")
			FAILED=$((FAILED + 1))
		fi
	else
		skip interop "(build failed)"
	fi
else
	skip build "(--no-interop)"
	skip interop "(--no-interop)"
fi

# Fuzz smoke (issue 8 item 16): every cargo-fuzz target builds and runs briefly over
# its committed corpus and recorded crash inputs (the 10-minute runs: fuzz/README.md).
if [ "$DO_UNIT" = 1 ]; then
	stage fuzz scripts/fuzz-smoke.sh "${FUZZ_SECS:-10}" || true
else
	skip fuzz "(--no-unit / --interop-only)"
fi

# Load-generator smoke (issue: benchmarks are not tests; CI only proves each scenario
# works): connect, firehose, feeds and limit at ~200 connections, zero loss required.
if [ "$DO_INTEROP" = 1 ]; then
	stage loadsmoke loadtest/smoke.sh || true
else
	skip loadsmoke "(--no-interop)"
fi

banner "summary ($(($(now) - T_START))s)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
if [ "$FAILED" -gt 0 ]; then
	echo "test.sh: FAIL ($FAILED stage(s) failed)"
	exit 1
fi
echo "test.sh: PASS"

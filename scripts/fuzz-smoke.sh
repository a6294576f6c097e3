#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target under fuzz/ and runs each briefly
# over its committed corpus (fuzz/corpus/<target>) and its recorded crash inputs
# (fuzz/regressions/<target>, if any). Fails if a build fails or a target crashes.
#
#   ./scripts/fuzz-smoke.sh [seconds per target, default 20] [target...]
#
# Works with stable Rust: cargo-fuzz needs nightly-only flags, which
# RUSTC_BOOTSTRAP=1 allows. Installs cargo-fuzz if it is missing, and g++ (libFuzzer
# is C++) with apt-get when running as root without one. Builds go to fuzz/target.
# Sanitizers are off (`-s none`): the fuzzed crates forbid `unsafe` and contain no C,
# so AddressSanitizer would find nothing the Rust runtime does not already catch,
# and without it builds and runs are twice as fast. New inputs found during the run
# go to a temporary directory; the committed corpus is never changed.
# Set HYDRANT_CARGO_LOCK=/path to wrap cargo builds in `flock` on that file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
SECS=${1:-20}
shift || true

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# The fuzz project keeps its own target dir (fuzz/target): its flags differ from the
# workspace's, so sharing would rebuild both every time.
export CARGO_TARGET_DIR=$ROOT/fuzz/target

locked() {
	if [ -n "${HYDRANT_CARGO_LOCK:-}" ]; then
		flock "$HYDRANT_CARGO_LOCK" "$@"
	else
		"$@"
	fi
}

if ! command -v c++ >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "fuzz-smoke: installing g++ (libFuzzer is C++)"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
	else
		echo "fuzz-smoke: a C++ compiler (g++) is needed to build libFuzzer" >&2
		exit 1
	fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz-smoke: installing cargo-fuzz"
	locked cargo install cargo-fuzz --locked --version 0.13.2
fi

cd "$ROOT/fuzz"
if [ $# -gt 0 ]; then
	TARGETS=("$@")
else
	mapfile -t TARGETS < <(cargo fuzz list)
fi
echo "fuzz-smoke: building ${TARGETS[*]}"
locked cargo fuzz build -s none

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=()
for t in "${TARGETS[@]}"; do
	mkdir -p "$WORK/$t"
	dirs=("$WORK/$t" "corpus/$t")
	if [ -d "regressions/$t" ]; then
		dirs+=("regressions/$t")
	fi
	echo "fuzz-smoke: $t for ${SECS}s"
	if ! cargo fuzz run -s none "$t" "${dirs[@]}" -- \
		-max_total_time="$SECS" -rss_limit_mb=2048 -malloc_limit_mb=512 \
		-artifact_prefix="$WORK/$t-" -print_final_stats=1 >"$WORK/$t.log" 2>&1; then
		echo "fuzz-smoke: $t FAILED; last lines of its log:" >&2
		tail -n 40 "$WORK/$t.log" >&2
		for a in "$WORK/$t"-*; do
			[ -e "$a" ] && echo "fuzz-smoke: input: $(base64 -w0 "$a")" >&2
		done
		FAILED+=("$t")
	else
		grep -E '^stat::number_of_executed_units' "$WORK/$t.log" | sed "s/^/fuzz-smoke: $t /" || true
	fi
done
if [ ${#FAILED[@]} -gt 0 ]; then
	echo "fuzz-smoke: FAILED: ${FAILED[*]}" >&2
	exit 1
fi
echo "fuzz-smoke: all ${#TARGETS[@]} targets ran without a crash"

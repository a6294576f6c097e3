#!/usr/bin/env bash
# Dependency-direction check: the crate graph must point the way DESIGN.md
# says ("Dependencies point one way only"). For each crate, the transitive
# normal dependencies (cargo tree -e normal, all features, host target) are
# compared against the rules below; any violation fails the script and is
# printed with the path that brings the dependency in.
#
#   scripts/check-deps.sh        (run from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# crate | hydrant-* crates it may depend on ("*" = any) | forbidden crates
# (shell globs on crate names, space separated). A crate missing from the
# workspace is an error: rename the rule together with the crate.
RULES=(
	"hydrant-proto    | -                              | hydrant-* tokio tokio-* rustls tokio-rustls mio"
	"hydrant-pubsub   | hydrant-proto                  | tokio tokio-* mio socket2 async-std async-io smol rustls rusqlite libsqlite3-sys"
	"hydrant-storage  | hydrant-proto hydrant-pubsub   | tokio tokio-*"
	"hydrant-stream   | hydrant-proto                  | hydrant-c2s hydrant-s2s hydrant-storage hydrant-pubsub hydrant-server"
	"hydrant-c2s      | hydrant-proto hydrant-stream   | hydrant-s2s hydrant-storage hydrant-pubsub hydrant-server"
	"hydrant-s2s      | hydrant-proto hydrant-stream   | hydrant-c2s hydrant-storage hydrant-pubsub hydrant-server"
	"hydrant-loadtest | -                              | hydrant-*"
	"hydrant-server   | *                              | hydrant-loadtest"
)

trim() { sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$1"; }

failed=0
for rule in "${RULES[@]}"; do
	IFS='|' read -r crate allowed forbidden <<<"$rule"
	crate=$(trim "$crate") allowed=$(trim "$allowed") forbidden=$(trim "$forbidden")

	if ! tree=$(cargo tree -q -e normal --all-features -p "$crate" --prefix none --format '{p}' 2>&1); then
		echo "check-deps: FAIL $crate: cargo tree failed:"
		sed 's/^/    /' <<<"$tree"
		failed=1
		continue
	fi
	# "name vX.Y.Z (path)" -> name; drop the crate itself and duplicates
	deps=$(awk '{ print $1 }' <<<"$tree" | sort -u | grep -vx -- "$crate" || true)
	hydrant_deps=$(grep -E '^hydrant-' <<<"$deps" || true)

	bad=()
	for d in $deps; do
		why=
		for pat in $forbidden; do
			# shellcheck disable=SC2254 # $pat is a glob on purpose
			case $d in $pat) why="forbidden: $pat" && break ;; esac
		done
		if [ -z "$why" ] && [[ $d == hydrant-* ]]; then
			case " $allowed " in
			*" * "* | *" $d "*) ;;
			*) why="not an allowed hydrant dependency" ;;
			esac
		fi
		[ -z "$why" ] || bad+=("$d ($why)")
	done

	n=$(grep -c . <<<"$deps" || true)
	if [ ${#bad[@]} -eq 0 ]; then
		printf 'check-deps: ok   %-17s hydrant deps: %-32s none of: %s  (%s crates checked)\n' \
			"$crate" "$(tr '\n' ' ' <<<"${hydrant_deps:-none}")" "$forbidden" "$n"
	else
		failed=1
		printf 'check-deps: FAIL %s\n' "$crate"
		for b in "${bad[@]}"; do
			name=${b%% *}
			echo "    depends on $b; path:"
			cargo tree -q -e normal --all-features -p "$crate" -i "$name" 2>/dev/null | sed 's/^/        /' | head -n 20
		done
	fi
done

if [ "$failed" != 0 ]; then
	echo "check-deps: FAILED (see DESIGN.md, 'Dependencies point one way only')"
	exit 1
fi
echo "check-deps: all dependency directions hold"

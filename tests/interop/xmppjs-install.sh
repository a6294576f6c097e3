#!/usr/bin/env bash
# Installs (once) xmpp.js for xmppjs_pep.mjs and prints its node_modules
# directory on stdout. Idempotent and quiet: `npm ci` from xmppjs/package.json
# and xmppjs/package-lock.json (every package pinned, with its integrity
# hash), into a directory keyed by the hash of both files and reused while
# they are unchanged.
#
#   tests/interop/xmppjs-install.sh   -> /root/.cache/hydrant-interop/xmppjs-<hash>/node_modules
#
# Location: $HYDRANT_INTEROP_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/hydrant-interop
# (outside the repository; safe to delete). Needs node (>= 20.10, @xmpp/client
# 0.14's engines) and npm with access to the npm registry. Progress and errors
# go to stderr; no registry, no xmpp.js: exit 1 (the test fails, it does not skip).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
src=$here/xmppjs
base=${HYDRANT_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hydrant-interop}
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-12)
dir=$base/xmppjs-$hash

if [ -d "$dir/node_modules" ] && [ -e "$dir/.complete" ]; then
	echo "$dir/node_modules"
	exit 0
fi
for c in node npm; do
	command -v "$c" >/dev/null || { echo "xmppjs-install: $c is not installed" >&2; exit 1; }
done
echo "xmppjs-install: creating $dir (npm ci: @xmpp/client from package-lock.json)" >&2
mkdir -p "$base"
rm -rf "$base"/xmppjs-* # this one, half-made, or those of older lock files
mkdir -p "$dir"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
log=$base/xmppjs-$hash.log
# shellcheck disable=SC2016 # the JavaScript is single-quoted on purpose
if ! { (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) &&
	(cd "$dir" && node --input-type=module -e '
		import { client } from "@xmpp/client";
		import { readFileSync } from "node:fs";
		if (typeof client !== "function") throw new Error("no client()");
		const v = JSON.parse(readFileSync("node_modules/@xmpp/client/package.json")).version;
		console.log(`@xmpp/client ${v} on node ${process.version}`);'); } >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	echo "xmppjs-install: failed (log: $log; node >= 20.10 and npm installed? npm registry reachable?)" >&2
	rm -rf "$dir"
	exit 1
fi
touch "$dir/.complete"
echo "xmppjs-install: $(tail -n 1 "$log") in $dir" >&2
echo "$dir/node_modules"

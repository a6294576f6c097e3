#!/usr/bin/env bash
# Creates (once) the venv with aioxmpp that aioxmpp_pubsub.py runs in, and
# prints its python on stdout. Idempotent and quiet: the venv is keyed by the
# hash of aioxmpp-requirements.txt and reused while that file is unchanged.
#
#   tests/interop/aioxmpp-venv.sh          -> /root/.cache/hydrant-interop/aioxmpp-<hash>/bin/python
#
# Location: $HYDRANT_INTEROP_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/hydrant-interop
# (outside the repository; safe to delete). Needs Debian's python3-venv and
# access to PyPI (pip). Progress and errors go to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
req=$here/aioxmpp-requirements.txt
base=${HYDRANT_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hydrant-interop}
hash=$(sha256sum "$req" | cut -c1-12)
venv=$base/aioxmpp-$hash
py=$venv/bin/python

if [ -x "$py" ] && [ -e "$venv/.complete" ]; then
	echo "$py"
	exit 0
fi
echo "aioxmpp-venv: creating $venv (pip install -r $(basename "$req"))" >&2
mkdir -p "$base"
rm -rf "$base"/aioxmpp-* # this one, half-made, or those of older requirements
log=$base/aioxmpp-$hash.log
if ! { /usr/bin/python3 -m venv "$venv" &&
	PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install -q --no-input -r "$req" &&
	"$py" -c 'import aioxmpp, aioxmpp.pubsub, OpenSSL; print("aioxmpp", aioxmpp.__version__)'; } >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	echo "aioxmpp-venv: failed (log: $log; python3-venv installed? PyPI reachable?)" >&2
	rm -rf "$venv"
	exit 1
fi
touch "$venv/.complete"
echo "aioxmpp-venv: $(tail -n 1 "$log") in $venv" >&2
echo "$py"

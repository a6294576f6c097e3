#!/usr/bin/env bash
# deploy/ on a real machine: the systemd unit and the container image.
#
#   tests/deploy/run.sh path/to/hydrant
#
# 1. systemd: `systemd-analyze verify` on deploy/hydrant.service (ExecStart pointed at
#    the binary under test) must print nothing, and the offline security review
#    (`systemd-analyze security --offline=true`) must rate it 2.0 or better ("OK").
# 2. container (when podman is installed; scripts/test.sh installs it): a Debian 12
#    base image made with mmdebstrap from the Debian mirror (cached on the machine as
#    localhost/hydrant-test-base:bookworm), the image built from
#    deploy/container/Containerfile with the binary under test (BINARY_STAGE=prebuilt,
#    since a Rust image cannot be pulled here), then started with the config and the
#    data as volumes: it must run as its own non-root user, answer XMPP with the
#    mounted certificate, create an account through `podman exec`, stop with exit
#    status 0 on SIGTERM, and find the account again after a restart on the same
#    volume. Without podman this part is reported as skipped, not passed.
#
# Containers run with --network=host on 127.0.0.1 ports, with runc and explicit
# ulimits: this machine's hard limits are below podman's defaults.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
# shellcheck source=../interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
say() { echo "deploy: $*"; }
die() { echo "deploy: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 path/to/hydrant"
BIN=$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")
[ -x "$BIN" ] || die "not an executable: $BIN"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hydrant-deploy.XXXXXX")
CONTAINER="hydrant-deploy-test-$$"
IMAGE="localhost/hydrant-deploy-test:$$"
cleanup() {
	if command -v podman >/dev/null; then
		podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
		podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. systemd -----------------------------------------------------------------------
say "systemd-analyze verify deploy/hydrant.service"
sed "s#/usr/local/bin/hydrant#$BIN#" "$ROOT/deploy/hydrant.service" >"$WORK/hydrant.service"
out=$(systemd-analyze verify "$WORK/hydrant.service" 2>&1) || die "verify failed: $out"
[ -z "$out" ] || die "systemd-analyze verify complained: $out"
score=$(systemd-analyze security --offline=true "$WORK/hydrant.service" 2>&1 |
	sed -n 's/.*Overall exposure level for hydrant.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || die "no exposure level from systemd-analyze security"
say "exposure level $score (0 = locked down, 10 = exposed)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || die "exposure level $score is above 2.0"

# --- 2. container ---------------------------------------------------------------------
if ! command -v podman >/dev/null; then
	say "SKIP container: podman is not installed"
	exit 0
fi
PODMAN=(podman --runtime runc)
ULIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
BASE=localhost/hydrant-test-base:bookworm
if ! podman image exists "$BASE"; then
	command -v mmdebstrap >/dev/null || die "mmdebstrap is needed to make $BASE"
	say "making $BASE with mmdebstrap (once per machine)"
	mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$WORK/base.tar" ||
		die "mmdebstrap failed"
	podman import "$WORK/base.tar" "$BASE" >/dev/null
	rm -f "$WORK/base.tar"
fi

say "building the image from deploy/container/Containerfile"
mkdir -p "$WORK/context"
cp "$BIN" "$WORK/context/hydrant"
"${PODMAN[@]}" build --quiet "${ULIMITS[@]}" -f "$ROOT/deploy/container/Containerfile" \
	--build-arg BINARY_STAGE=prebuilt --build-arg RUNTIME_IMAGE="$BASE" \
	-t "$IMAGE" "$WORK/context" >/dev/null || die "podman build failed"

read -r PORT < <(free_ports 1)
make_ca "$WORK/etc/tls" localhost
chmod 0644 "$WORK/etc/tls/localhost.key" # readable by the image's hydrant user
cat >"$WORK/etc/hydrant.toml" <<CONF
domain = "localhost"
data_dir = "/var/lib/hydrant"
[tls]
cert = "/etc/hydrant/tls/localhost.chain.pem"
key = "/etc/hydrant/tls/localhost.key"
[c2s]
listen = ["127.0.0.1:$PORT"]
direct_tls_listen = []
[s2s]
enabled = false
CONF
mkdir -p "$WORK/data"
chown 10001:10001 "$WORK/data"
chmod 0700 "$WORK/data"
run_container() {
	"${PODMAN[@]}" run -d --name "$CONTAINER" --network=host "${ULIMITS[@]}" \
		-v "$WORK/etc:/etc/hydrant:ro" -v "$WORK/data:/var/lib/hydrant" "$IMAGE" >/dev/null ||
		die "podman run failed"
	wait_port 127.0.0.1 "$PORT" 30 || { podman logs "$CONTAINER" >&2; die "the container does not listen"; }
}
run_container
uid=$(podman exec "$CONTAINER" id -u)
[ "$uid" != 0 ] || die "the container runs as root"
say "running as uid $uid"
"$PY" "$HERE/xmpp_probe.py" 127.0.0.1 "$PORT" localhost "$WORK/etc/tls/ca.crt" ||
	{ podman logs "$CONTAINER" >&2; die "XMPP probe failed"; }
podman exec "$CONTAINER" hydrant user add alice --password 'correct horse' \
	--config /etc/hydrant/hydrant.toml >/dev/null || die "hydrant user add in the container failed"

say "stopping with SIGTERM"
podman stop --time 30 "$CONTAINER" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")
[ "$code" = 0 ] || { podman logs "$CONTAINER" >&2; die "exit status $code after SIGTERM"; }
podman logs "$CONTAINER" 2>&1 | grep -q 'stopped' || die "no 'stopped' line in the log"
podman rm "$CONTAINER" >/dev/null

say "restarting on the same volume"
run_container
podman exec "$CONTAINER" hydrant user list --config /etc/hydrant/hydrant.toml | grep -qx 'alice@localhost' ||
	die "the account did not survive a restart"
podman stop --time 30 "$CONTAINER" >/dev/null
say "PASS: systemd unit (exposure $score), container image (uid $uid, SIGTERM exit 0, data kept)"

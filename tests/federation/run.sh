#!/usr/bin/env bash
# Federation interop: hydrant against stock Prosody and ejabberd over real s2s, with real
# DNS SRV.
#
#   tests/federation/run.sh path/to/hydrant [--keep] [--debug]
#
# Everything runs inside a private network + mount namespace made here (unshare), whose
# only interface is lo: hydrant serves hydrant.test on 127.0.0.4, Prosody (Debian's, its
# stock modules) prosody.test on 127.0.0.2, ejabberd (Debian's) ejabberd.test on
# 127.0.0.3, and dnsmasq on 127.0.0.53 answers _xmpp-server._tcp SRV records for every
# domain and its pubsub service, on non-default ports (15269), so a server that ignores
# SRV fails. /etc/resolv.conf is bind-mounted inside the namespace only. Certificates come
# from a throw-away CA that every server trusts; hydrant presents no client certificate,
# so the peers authenticate it with Server Dialback (XEP-0220), and hydrant them.
#
# Needs root (namespaces), prosody, ejabberd, dnsmasq (dnsmasq-base), openssl, iproute2 and
# /usr/bin/python3 with python3-slixmpp; scripts/test.sh installs them.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
die() { echo "federation: $*" >&2; exit 2; }

HYDRANT='' KEEP=0 DEBUG=0
while [ $# -gt 0 ]; do
	case $1 in
	--keep) KEEP=1; shift ;;
	--debug) DEBUG=1; shift ;;
	-*) die "unknown option $1" ;;
	*) HYDRANT=$1; shift ;;
	esac
done
[ -n "$HYDRANT" ] && [ -x "$HYDRANT" ] || die "usage: $0 path/to/hydrant [--keep] [--debug]"
HYDRANT=$(cd "$(dirname "$HYDRANT")" && pwd -P)/$(basename "$HYDRANT")
[ "$(id -u)" = 0 ] || die "needs root (network namespace)"
for c in prosody prosodyctl ejabberdctl dnsmasq openssl unshare ip setpriv /usr/bin/python3; do
	command -v "$c" >/dev/null || die "missing command: $c"
done

W=$(mktemp -d /tmp/hydrant-fed.XXXXXX)
chmod 755 "$W"
cleanup() { if [ "$KEEP" = 1 ]; then echo "kept: $W"; else rm -rf "$W"; fi; }
trap cleanup EXIT

# ------------------------------------------------------------------ certificates ----
mkdir -p "$W/ca" "$W/certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=hydrant federation test CA" \
	-keyout "$W/ca/ca.key" -out "$W/ca/ca.crt" 2>/dev/null
leaf() { # leaf DOMAIN: a certificate for DOMAIN and pubsub.DOMAIN (server and client auth)
	local d=$1
	cat >"$W/certs/$d.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $d
[ext]
subjectAltName = DNS:$d, DNS:pubsub.$d
extendedKeyUsage = serverAuth, clientAuth
basicConstraints = CA:FALSE
CNF
	openssl req -newkey rsa:2048 -nodes -keyout "$W/certs/$d.key" -out "$W/certs/$d.csr" \
		-config "$W/certs/$d.cnf" 2>/dev/null
	openssl x509 -req -in "$W/certs/$d.csr" -CA "$W/ca/ca.crt" -CAkey "$W/ca/ca.key" \
		-CAcreateserial -days 2 -extfile "$W/certs/$d.cnf" -extensions ext \
		-out "$W/certs/$d.crt" 2>/dev/null
}
leaf hydrant.test
leaf prosody.test
leaf ejabberd.test
chmod 644 "$W"/certs/* "$W/ca/ca.crt"

# ------------------------------------------------------------------ DNS ----
cat >"$W/dnsmasq.conf" <<CFG
port=53
listen-address=127.0.0.53
bind-interfaces
no-resolv
no-hosts
no-poll
local=/test/
log-queries
log-facility=$W/dnsmasq.log
address=/xmpp.prosody.test/127.0.0.2
address=/xmpp.hydrant.test/127.0.0.4
address=/xmpp.ejabberd.test/127.0.0.3
address=/ejabberd.test/127.0.0.3
address=/prosody.test/127.0.0.2
address=/hydrant.test/127.0.0.4
srv-host=_xmpp-client._tcp.prosody.test,xmpp.prosody.test,15222,0,5
srv-host=_xmpp-server._tcp.prosody.test,xmpp.prosody.test,15269,0,5
srv-host=_xmpp-server._tcp.pubsub.prosody.test,xmpp.prosody.test,15269,0,5
srv-host=_xmpp-server._tcp.ejabberd.test,xmpp.ejabberd.test,15269,0,5
srv-host=_xmpp-server._tcp.pubsub.ejabberd.test,xmpp.ejabberd.test,15269,0,5
srv-host=_xmpp-client._tcp.hydrant.test,xmpp.hydrant.test,15222,0,5
srv-host=_xmpp-server._tcp.hydrant.test,xmpp.hydrant.test,15269,0,5
srv-host=_xmpp-server._tcp.pubsub.hydrant.test,xmpp.hydrant.test,15269,0,5
CFG
echo "nameserver 127.0.0.53" >"$W/resolv.conf"

# ------------------------------------------------------------------ Prosody ----
mkdir -p "$W/prosody/data"
cat >"$W/prosody/prosody.cfg.lua" <<CFG
-- Stock Prosody apart from where it listens and writes, and trusting the test CA.
pidfile = "$W/prosody/prosody.pid"
data_path = "$W/prosody/data"
log = { $([ "$DEBUG" = 1 ] && echo debug || echo info) = "$W/prosody/prosody.log" }
admins = { "admin@prosody.test" }
interfaces = { "127.0.0.2" }
c2s_ports = { 15222 }
s2s_ports = { 15269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
-- libunbound (lua-unbound, which Debian's prosody recommends) answers NXDOMAIN for the
-- RFC 6761 .test zone itself; let the queries through to the test DNS.
unbound = { options = { ["local-zone:"] = "test. transparent" } }
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix"; "pep" }
ssl = { certificate = "$W/certs/prosody.test.crt"; key = "$W/certs/prosody.test.key"; cafile = "$W/ca/ca.crt" }
c2s_require_encryption = true
s2s_require_encryption = true
authentication = "internal_hashed"
VirtualHost "prosody.test"
Component "pubsub.prosody.test" "pubsub"
CFG
chown -R prosody:prosody "$W/prosody"

# ------------------------------------------------------------------ ejabberd ----
E=$W/ejabberd
mkdir -p "$E/db" "$E/log"
cat "$W/certs/ejabberd.test.key" "$W/certs/ejabberd.test.crt" >"$E/ejabberd.test.pem"
cat >"$E/ejabberd.yml" <<CFG
# Debian's ejabberd with its usual modules; where it listens and writes, the test CA
# trusted, STARTTLS offered on s2s, and dialback on (mod_s2s_dialback, as in the stock
# configuration).
hosts:
  - "ejabberd.test"
loglevel: $([ "$DEBUG" = 1 ] && echo debug || echo info)
log_rotate_count: 0
certfiles:
  - "$E/ejabberd.test.pem"
ca_file: "$W/ca/ca.crt"
s2s_cafile: "$W/ca/ca.crt"
listen:
  -
    port: 15222
    ip: "127.0.0.3"
    module: ejabberd_c2s
    starttls_required: true
  -
    port: 15269
    ip: "127.0.0.3"
    module: ejabberd_s2s_in
s2s_use_starttls: optional
# XEP-0138 offered to peers (after SASL EXTERNAL: phase 1 checks hydrant uses it).
s2s_zlib: true
outgoing_s2s_families:
  - ipv4
outgoing_s2s_ipv4_address: "127.0.0.3"
auth_method: internal
auth_password_format: scram
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
  pubsub_createnode:
    allow: local
modules:
  mod_caps: {}
  mod_disco: {}
  mod_ping: {}
  mod_roster: {}
  mod_s2s_dialback: {}
  mod_pubsub:
    hosts:
      - "pubsub.ejabberd.test"
    access_createnode: pubsub_createnode
    plugins:
      - flat
      - pep
CFG
cat >"$E/ejabberdctl.cfg" <<CFG
ERLANG_NODE=ejabberd@localhost
ERL_DIST_PORT=15210
ERL_OPTIONS="-setcookie hydrantfed -kernel inet_dist_use_interface {127,0,0,1} -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$E/ejabberd.pid
CONTRIB_MODULES_PATH=$E/contrib
CONTRIB_MODULES_CONF_DIR=$E/contrib/conf
CFG
cat >"$E/ejctl" <<CTL
#!/bin/sh
exec env HOME="$E" setpriv --reuid=ejabberd --regid=ejabberd --init-groups -- \
  /usr/sbin/ejabberdctl --config-dir "$E" --ctl-config "$E/ejabberdctl.cfg" --spool "$E/db" --logs "$E/log" "\$@"
CTL
chmod 755 "$E/ejctl"
# Erlang's resolver: the hosts file, then the system's (the namespace's resolv.conf).
printf '{lookup, ["file", "native"]}.\n{resolv_conf, "/etc/resolv.conf"}.\n' >"$E/inetrc"
chown -R ejabberd:ejabberd "$E"

# ------------------------------------------------------------------ hydrant ----
mkdir -p "$W/hydrant"
cat >"$W/hydrant/hydrant.toml" <<CFG
domain = "hydrant.test"
data_dir = "$W/hydrant/data"
log = "$([ "$DEBUG" = 1 ] && echo "hydrant_s2s=debug,info" || echo info)"
[tls]
cert = "$W/certs/hydrant.test.crt"
key = "$W/certs/hydrant.test.key"
[c2s]
listen = ["127.0.0.4:15222"]
direct_tls_listen = []
[s2s]
listen = ["127.0.0.4:15269"]
resolver = "127.0.0.53:53"
give_up_after_secs = 20
# XEP-0138 with peers that offer it: ejabberd (s2s_zlib) does after SASL EXTERNAL.
compression = true
CFG
# Phase 1 trusts the test CA (SASL EXTERNAL both ways); phase 2 does not, so hydrant
# neither offers nor uses EXTERNAL with the peers and every stream falls back to dialback.
cp "$W/hydrant/hydrant.toml" "$W/hydrant/dialback.toml"
printf 'ca_file = "%s"\n' "$W/ca/ca.crt" >>"$W/hydrant/hydrant.toml"

export W HYDRANT DEBUG HERE
# The namespace lives as long as the inner script: everything started in it dies with it.
unshare --net --mount --propagation private -- "$HERE/inner.sh"

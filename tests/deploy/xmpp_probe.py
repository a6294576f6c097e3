"""Probe a c2s port: stream header, STARTTLS, certificate check, SASL offered.

    xmpp_probe.py HOST PORT DOMAIN CA_FILE

Exits 0 when the server offers STARTTLS, the TLS handshake verifies DOMAIN against
CA_FILE, and the features after TLS offer SASL SCRAM-SHA-256. Standard library only.
"""

import socket
import ssl
import sys

host, port, domain, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
HEADER = (
    "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams'>" % domain
).encode()


def read_until(sock, marker, limit=65536):
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("connection closed before %r; got %r" % (marker, data))
        data += chunk
        if len(data) > limit:
            sys.exit("no %r in %d bytes" % (marker, limit))
    return data


sock = socket.create_connection((host, port), timeout=20)
sock.sendall(HEADER)
features = read_until(sock, b"</stream:features>")
if b"urn:ietf:params:xml:ns:xmpp-tls" not in features:
    sys.exit("no STARTTLS offered: %r" % features)
sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
if b"<proceed" not in read_until(sock, b"/>"):
    sys.exit("STARTTLS refused")
ctx = ssl.create_default_context(cafile=ca)
tls = ctx.wrap_socket(sock, server_hostname=domain)
tls.sendall(HEADER)
features = read_until(tls, b"</stream:features>")
if b"SCRAM-SHA-256" not in features:
    sys.exit("no SCRAM-SHA-256 after TLS: %r" % features)
print("ok: STARTTLS, certificate for %s verified, SASL offered" % domain)

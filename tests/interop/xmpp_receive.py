#!/usr/bin/python3
"""Log in with slixmpp and wait for one message with an exact body.

Prints "READY <full JID>" once the session is up, the roster fetched and
initial presence sent (so messages to the bare JID are delivered live), then
exits 0 as soon as a message with --expect-body arrives (and, with
--expect-from, from that bare JID). Exit 1 on login failure or timeout,
with the reason.
"""

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slixmpp import JID  # noqa: E402

from xmpputil import Client, Failure, check, setup_logging, step  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--ca", required=True)
    p.add_argument("--jid", required=True, help="bare or full JID to log in as")
    p.add_argument("--password", required=True)
    p.add_argument("--expect-body", required=True)
    p.add_argument("--expect-from", help="bare JID the message must come from")
    p.add_argument("--login-timeout", type=float, default=15.0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the message after READY")
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


async def run(args):
    jid = JID(args.jid)
    if not jid.resource:
        jid = JID(f"{jid.bare}/receiver")
    c = Client("receiver", str(jid), args.password, args.ca)
    try:
        await c.login(args.host, args.port, args.login_timeout)
        iq = c.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        await iq.send(timeout=args.login_timeout)
        c.send_presence(pstatus="interop receiver")
        # Our own available presence coming back means the server has
        # processed it: from here on we are an available resource.
        await c.presences.wait(lambda p: p["from"] == c.boundjid.full and p["type"] == "available",
                               args.login_timeout, "own presence echo")
        print(f"READY {c.boundjid.full} (TLS {c.transport_tls_version()}, SASL {c.sasl_mechanism()})",
              flush=True)
        m = await c.messages.wait(lambda m: m["body"] == args.expect_body, args.timeout,
                                  f"a message with body {args.expect_body!r}")
        if args.expect_from:
            check(JID(m["from"]).bare == JID(args.expect_from).bare,
                  f"message came from {m['from']}, expected {args.expect_from}")
        step(f"received {m['type']} message from {m['from']}: {m['body']!r}")
    finally:
        await c.logout(2)


def main():
    args = parse_args()
    setup_logging(args.debug)
    try:
        asyncio.run(run(args))
    except Failure as exc:
        step(f"FAIL: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

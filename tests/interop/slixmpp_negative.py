#!/usr/bin/python3
"""Interop test: what the server must refuse, and that it stays healthy after.

1. In-band registration (XEP-0077) of an existing username must be refused
   with <conflict/>; the client then closes its stream as a client would.
2. A login with a wrong password must fail SASL.
3. Afterwards the account still logs in with its real password (the refused
   registration did not change it) over STARTTLS and pings the server: the
   server survived both refusals and still serves new connections.

Runs after the other client tests (run.sh orders it last) so that a server
that misbehaves here cannot hide their results.
"""

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slixmpp.exceptions import IqError, IqTimeout  # noqa: E402

from xmpputil import Client, Failure, check, setup_logging, step  # noqa: E402

MECH = "SCRAM-SHA-256"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--user", required=True, help="localpart of an existing account")
    p.add_argument("--password", required=True, help="its password")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    return p.parse_args()


async def run(args):
    t = args.timeout
    tok = uuid.uuid4().hex[:8]
    bare = f"{args.user}@{args.domain}"
    clients = []
    try:
        # --- 1. duplicate registration -----------------------------------------
        dup = Client("dup", f"{bare}/dup-{tok}", args.password + "-other", args.ca, mech=MECH, register=True)
        clients.append(dup)
        try:
            await dup.login(args.host, args.port, t)
        except Failure as exc:
            check(isinstance(dup.registered, str) and "conflict" in dup.registered,
                  f"dup: re-registering {bare} should be refused with <conflict/>, got: {exc}")
            step(f"dup: re-registration of {bare} refused: {dup.registered}")
        else:
            raise Failure(f"re-registering the existing account {bare} succeeded")

        # --- 2. wrong password ---------------------------------------------------
        bad = Client("bad", f"{bare}/bad-{tok}", args.password + "-wrong", args.ca, mech=MECH)
        clients.append(bad)
        step("bad: logging in with a wrong password (slixmpp logs an error for this)")
        try:
            await bad.login(args.host, args.port, t)
        except Failure as exc:
            check("SASL" in str(exc), f"wrong password: expected a SASL failure, got: {exc}")
            step(f"bad: wrong password refused: {exc}")
        else:
            raise Failure("a login with a wrong password succeeded")

        # --- 3. the real password still works, the server still serves -----------
        ok = Client("ok", f"{bare}/ok-{tok}", args.password, args.ca, mech=MECH)
        clients.append(ok)
        try:
            await ok.login(args.host, args.port, t)
        except Failure as exc:
            raise Failure(f"after the refusals, a normal login as {bare} failed "
                          f"(server hung, or the refused registration changed the password?): {exc}") from None
        try:
            resp = await ok["xep_0199"].send_ping(args.domain, timeout=t)
        except (IqError, IqTimeout) as exc:
            raise Failure(f"ok: server ping failed: {exc}") from None
        check(resp["type"] == "result", f"ok: server ping answered with {resp['type']}")
        step(f"ok: {bare} still logs in with its password (TLS {ok.transport_tls_version()}, "
             f"SASL {ok.sasl_mechanism()}) and the server answers pings")
    finally:
        await asyncio.gather(*(c.logout(2) for c in clients if not c.gone.done()), return_exceptions=True)


def main():
    args = parse_args()
    setup_logging(args.debug)
    try:
        asyncio.run(run(args))
    except Failure as exc:
        step(f"FAIL: {exc}")
        return 1
    step("PASS: all slixmpp_negative steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

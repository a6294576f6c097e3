#!/usr/bin/python3
"""Interop test: two slixmpp clients exercise the core IM path of a server.

A registers in-band (XEP-0077) and logs in over STARTTLS with SCRAM-SHA-256;
B likewise, or (--b-precreated) logs into an account the harness created
with `hydrant user add`. Then: roster add + push, mutual presence
subscription ending in subscription='both', presence with status texts,
chat both ways with full-JID routing, XEP-0199 pings (server and B's client),
offline storage with a XEP-0203 delay, and (--tls-port) a login over
XEP-0368 direct TLS. (Refusals -- duplicate registration, wrong password --
are in slixmpp_negative.py, which runs last.)

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slixmpp import JID  # noqa: E402
from slixmpp.exceptions import IqError, IqTimeout  # noqa: E402
from slixmpp.xmlstream import ET  # noqa: E402

from xmpputil import Client, Failure, check, setup_logging, step  # noqa: E402

MECH = "SCRAM-SHA-256"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--tls-port", type=int, help="direct TLS (XEP-0368) c2s port; step skipped if absent")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--a-user", required=True, help="localpart for A (registered in-band)")
    p.add_argument("--b-user", required=True, help="localpart for B")
    p.add_argument("--password", required=True, help="password of A and B")
    p.add_argument("--b-precreated", action="store_true",
                   help="B already exists (created by the server's admin CLI): log in, do not register")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    return p.parse_args()


def verify_login(c, want_register):
    tls = c.transport_tls_version()
    mech = c.sasl_mechanism()
    offered = c.offered_mechanisms()
    if want_register:
        check(c.registered is True, f"{c.label}: in-band registration did not succeed ({c.registered})")
    check(MECH in offered, f"{c.label}: server did not offer {MECH} (offered {offered})")
    check(mech == MECH, f"{c.label}: authenticated with {mech}, expected {MECH}")
    check(c.boundjid.bare == JID(c.requested_jid).bare,
          f"{c.label}: bound {c.boundjid}, expected a resource of {JID(c.requested_jid).bare}")
    return f"TLS {tls}, SASL {mech} (offered: {', '.join(offered)}), bound {c.boundjid.full}"


async def roster_get(c, timeout):
    iq = c.Iq()
    iq["type"] = "get"
    iq.enable("roster")
    resp = await iq.send(timeout=timeout)
    return {str(j): item["subscription"] for j, item in resp["roster"]["items"].items()}


async def run(args):
    t = args.timeout
    tok = uuid.uuid4().hex[:8]
    dom = args.domain
    a_bare = f"{args.a_user}@{dom}"
    b_bare = f"{args.b_user}@{dom}"

    clients = []

    def new_client(label, bare, register):
        c = Client(label, f"{bare}/{label.lower()}-{tok}", args.password, args.ca, mech=MECH, register=register)
        clients.append(c)
        return c

    try:
        # --- 1. accounts and logins ------------------------------------------
        a = new_client("A", a_bare, register=True)
        await a.login(args.host, args.port, t)
        step(f"A: registered {a_bare} in-band (iq-register stream feature advertised: "
             f"{a.server_advertised_register}; form fields {a.registration_fields}); {verify_login(a, True)}")

        b = new_client("B", b_bare, register=not args.b_precreated)
        await b.login(args.host, args.port, t)
        how = "logged into the admin-created account" if args.b_precreated else "registered in-band"
        step(f"B: {how} {b_bare}; {verify_login(b, not args.b_precreated)}")

        # A roster get makes each session an "interested resource" (RFC 6121
        # 2.1.6); only those receive roster pushes.
        ra, rb = await roster_get(a, t), await roster_get(b, t)
        check(ra == {} and rb == {}, f"fresh accounts have non-empty rosters: A {ra}, B {rb}")
        step("A, B: initial rosters fetched (empty)")

        a_status1, b_status1 = f"A here {tok}", f"B here {tok}"
        a.send_presence(pstatus=a_status1)
        b.send_presence(pstatus=b_status1)

        # --- 2. roster add ---------------------------------------------------
        iq = a.Iq()
        iq["type"] = "set"
        query = ET.Element("{jabber:iq:roster}query")
        item = ET.SubElement(query, "{jabber:iq:roster}item", {"jid": b_bare, "name": "Bee"})
        ET.SubElement(item, "{jabber:iq:roster}group").text = "interop"
        iq.append(query)
        try:
            await iq.send(timeout=t)
        except (IqError, IqTimeout) as exc:
            raise Failure(f"A: roster set for {b_bare} failed: {exc}") from None
        push = await a.roster_pushes.wait(
            lambda p: p["jid"] == b_bare and p["name"] == "Bee", t, f"roster push for {b_bare} at A")
        check(push["subscription"] in ("none", ""), f"A: new roster item has subscription {push['subscription']!r}")
        check("interop" in push["groups"], f"A: roster push lost the group: {push}")
        step(f"A: roster set acknowledged, push received: {push}")

        # --- 3. A subscribes to B, B approves --------------------------------
        a.send_presence(pto=b_bare, ptype="subscribe")
        sub = await b.presences.wait(
            lambda p: p["type"] == "subscribe" and JID(p["from"]).bare == a_bare, t, f"subscribe from {a_bare} at B")
        check(JID(sub["from"]).resource == "", f"B: subscribe request from a full JID {sub['from']} (RFC 6121 3.1.2: bare)")
        push = await a.roster_pushes.wait(
            lambda p: p["jid"] == b_bare and p["ask"] == "subscribe", t, "roster push with ask='subscribe' at A")
        step(f"B: got subscribe from {sub['from']}; A got push {push}")

        b.send_presence(pto=a_bare, ptype="subscribed")
        await a.presences.wait(
            lambda p: p["type"] == "subscribed" and JID(p["from"]).bare == b_bare, t, f"subscribed from {b_bare} at A")
        push = await a.roster_pushes.wait(
            lambda p: p["jid"] == b_bare and p["subscription"] == "to", t, "roster push subscription='to' at A")
        pres = await a.presences.wait(
            lambda p: p["from"] == b.boundjid.full and p["type"] == "available" and p["status"] == b_status1,
            t, f"B's current presence (status {b_status1!r}) at A after approval")
        step(f"A: B approved; push {push}; A sees B available: {pres}")

        # --- 4. B subscribes back, A approves --------------------------------
        b.send_presence(pto=a_bare, ptype="subscribe")
        await a.presences.wait(
            lambda p: p["type"] == "subscribe" and JID(p["from"]).bare == b_bare, t, f"subscribe from {b_bare} at A")
        a.send_presence(pto=b_bare, ptype="subscribed")
        await b.presences.wait(
            lambda p: p["type"] == "subscribed" and JID(p["from"]).bare == a_bare, t, f"subscribed from {a_bare} at B")
        pres = await b.presences.wait(
            lambda p: p["from"] == a.boundjid.full and p["type"] == "available" and p["status"] == a_status1,
            t, f"A's current presence (status {a_status1!r}) at B after approval")
        step(f"B: A approved; B sees A available: {pres}")

        pa = await a.roster_pushes.wait(
            lambda p: p["jid"] == b_bare and p["subscription"] == "both", t, "roster push subscription='both' at A")
        pb = await b.roster_pushes.wait(
            lambda p: p["jid"] == a_bare and p["subscription"] == "both", t, "roster push subscription='both' at B")
        ra, rb = await roster_get(a, t), await roster_get(b, t)
        check(ra.get(b_bare) == "both", f"A's roster (get) has {b_bare} as {ra.get(b_bare)!r}: {ra}")
        check(rb.get(a_bare) == "both", f"B's roster (get) has {a_bare} as {rb.get(a_bare)!r}: {rb}")
        step(f"roster: A {pa}, B {pb}; roster gets agree (both)")

        # --- 5. presence broadcast with status text --------------------------
        a_status2, b_status2 = f"A busy {tok}", f"B away {tok}"
        a.send_presence(pshow="dnd", pstatus=a_status2)
        b.send_presence(pshow="away", pstatus=b_status2)
        pa = await b.presences.wait(
            lambda p: p["from"] == a.boundjid.full and p["status"] == a_status2, t, f"A's broadcast {a_status2!r} at B")
        pb = await a.presences.wait(
            lambda p: p["from"] == b.boundjid.full and p["status"] == b_status2, t, f"B's broadcast {b_status2!r} at A")
        step(f"presence broadcast: B sees {pa}; A sees {pb}")

        # --- 6. chat both ways -----------------------------------------------
        body1 = f"hello B from A {tok}"
        a.send_message(mto=b_bare, mbody=body1, mtype="chat")
        m = await b.messages.wait(lambda m: m["body"] == body1, t, f"message {body1!r} at B")
        check(m["from"] == a.boundjid.full, f"B: message from {m['from']}, expected A's full JID {a.boundjid.full}")
        check(m["type"] == "chat", f"B: message type {m['type']!r}, expected 'chat'")
        step(f"B: received chat from {m['from']}: {body1!r}")

        body2 = f"hi A, B here {tok}"
        b.send_message(mto=m["from"], mbody=body2, mtype="chat")
        m = await a.messages.wait(lambda m: m["body"] == body2, t, f"reply {body2!r} at A")
        check(m["from"] == b.boundjid.full, f"A: reply from {m['from']}, expected B's full JID {b.boundjid.full}")
        step(f"A: received reply from {m['from']}: {body2!r}")

        # --- 7. XEP-0199 pings -----------------------------------------------
        # send_ping, not ping(): slixmpp's ping() treats an error reply from
        # the own server as success.
        try:
            resp = await a["xep_0199"].send_ping(dom, timeout=t)
        except (IqError, IqTimeout) as exc:
            raise Failure(f"A: ping to the server {dom} failed: {exc}") from None
        check(resp["type"] == "result", f"A: server ping answered with {resp['type']}")
        step(f"A: server ping -> result from {resp['from'] or '(no from)'}")

        try:
            resp = await a["xep_0199"].send_ping(b.boundjid.full, timeout=t)
        except (IqError, IqTimeout) as exc:
            raise Failure(f"A: ping to B's client {b.boundjid.full} failed: {exc}") from None
        check(resp["type"] == "result" and resp["from"] == b.boundjid,
              f"A: ping to {b.boundjid.full} answered by {resp['from']} with {resp['type']}")
        step(f"A: client ping -> result from {resp['from']}")

        # --- 8. offline storage ----------------------------------------------
        b_full_old = b.boundjid.full
        await b.logout(t)
        await a.presences.wait(
            lambda p: p["from"] == b_full_old and p["type"] == "unavailable", t, f"unavailable from {b_full_old} at A")
        step("B: logged out; A saw B's unavailable presence")

        body3 = f"while you were away {tok}"
        a.send_message(mto=b_bare, mbody=body3, mtype="chat")
        # an error bounce would show up here rather than as a silent timeout
        b2 = new_client("B2", b_bare, register=False)
        await b2.login(args.host, args.port, t)
        step(f"B: logged back in as {b2.boundjid.full}; {verify_login(b2, False)}")
        await roster_get(b2, t)
        b2.send_presence(pstatus=f"B back {tok}")  # offline messages flow after initial presence
        m = await b2.messages.wait(lambda m: m["body"] == body3, t, f"offline message {body3!r} at B")
        check(JID(m["from"]).bare == a_bare, f"B: offline message from {m['from']}, expected {a_bare}")
        check(m["delay"] is not None and m["delay"].get("stamp"),
              f"B: offline message has no XEP-0203 <delay stamp=...> element: {m}")
        bounced = [x for x in a.messages.items if x["type"] == "error"]
        check(not bounced, f"A: got error bounces: {bounced}")
        step(f"B: received offline message from {m['from']} with delay {m['delay']}")

        # --- 9. direct TLS ---------------------------------------------------
        if args.tls_port:
            a2 = new_client("A2", a_bare, register=False)
            await a2.login(args.host, args.tls_port, t, direct_tls=True)
            info = verify_login(a2, False)
            resp = await a2["xep_0199"].send_ping(dom, timeout=t)
            check(resp["type"] == "result", "A2: ping over direct TLS failed")
            step(f"A2: direct TLS (XEP-0368) login on port {args.tls_port}: {info}; ping ok")
        else:
            step("direct TLS: skipped (no --tls-port)")

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
    step("PASS: all slixmpp_basic steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

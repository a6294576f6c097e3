#!/usr/bin/python3
"""Interop test: PEP (XEP-0163) with XEP-0080 user location, slixmpp clients.

A publishes its location with slixmpp's xep_0080 plugin (publish_location);
B, a contact with a mutual presence subscription, receives it because its
client advertises http://jabber.org/protocol/geoloc+notify through entity
capabilities (XEP-0115; slixmpp's xep_0163/xep_0080 add the feature, xep_0115
puts the hash in presence, and slixmpp answers the server's disco#info query
for node#ver by itself). C advertises the same interest but has no
subscription: it must not receive the location (checked after a later chat
message from A that C does receive, plus a bounded wait). A's own session
(+notify too) gets its own event; a second session of B that comes online
later gets the last published location on its caps-bearing presence.

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import sys
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slixmpp import JID  # noqa: E402
from slixmpp.stanza import Iq  # noqa: E402

from xmpputil import Failure, Recorder, check, setup_logging, step  # noqa: E402
from pubsubutil import PubsubClient, expect_ok, mutual_subscription  # noqa: E402

NS_GEOLOC = "http://jabber.org/protocol/geoloc"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--users", required=True, help="three existing localparts: A,B,C")
    p.add_argument("--password", required=True)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    p.add_argument("--quiet-wait", type=float, default=1.0,
                   help="after the sentinel, how long C must stay without a location event")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    return p.parse_args()


class PepClient(PubsubClient):
    """xep_0115 + xep_0163 + xep_0080: slixmpp's own PEP stack. Records the
    disco#info queries it is asked (the server's caps lookups)."""

    def __init__(self, label, jid, password, ca_file):
        super().__init__(label, jid, password, ca_file, plugins=("xep_0115", "xep_0163", "xep_0080"))
        self.disco_queries = Recorder(f"{label} disco#info queries")
        self.add_filter("in", self._peek_disco)

    def _peek_disco(self, stanza):
        if isinstance(stanza, Iq) and stanza["type"] == "get":
            q = stanza.xml.find(f"{{{NS_DISCO_INFO}}}query")
            if q is not None:
                self.disco_queries.add({"from": str(stanza["from"]), "node": q.get("node")})
        return stanza

    async def announce(self, domain, t):
        """Available presence with caps; wait for the server's disco#info query
        for node#ver (slixmpp answers it), then ping the server: the session's
        stanzas are handled in order, so after the pong the server has the
        answer, i.e. knows this session's +notify set."""
        # A feature of its own so each client has its own ver (a cached ver
        # would not be queried, leaving nothing to wait for).
        self["xep_0030"].add_feature(f"urn:hydrant:interop:{self.label}")
        await self["xep_0115"].update_caps(broadcast=False)
        ver = await self["xep_0115"].get_verstring(self.boundjid)
        check(ver, f"{self.label}: slixmpp computed no caps ver")
        info = await self["xep_0030"].get_info(jid=self.boundjid, node=None, local=True)
        if isinstance(info, Iq):
            info = info["disco_info"]
        check(f"{NS_GEOLOC}+notify" in info["features"],
              f"{self.label}: slixmpp does not advertise {NS_GEOLOC}+notify: {info['features']}")
        self.send_presence()
        q = await self.disco_queries.wait(
            lambda q: q["node"] and q["node"].endswith("#" + ver), t,
            f"the server's disco#info query for ...#{ver} at {self.label}")
        check(JID(q["from"]).bare in (domain, self.boundjid.bare),
              f"{self.label}: caps query from {q['from']}")
        await expect_ok(f"{self.label}: ping after the caps answer",
                        self["xep_0199"].send_ping(domain, timeout=t))
        return ver, q


def geolocs(client):
    return [e for e in client.events.items if e["kind"] == "item" and e["node"] == NS_GEOLOC]


async def run(args):
    t = args.timeout
    dom = args.domain
    tok = uuid.uuid4().hex[:8]
    users = args.users.split(",")
    check(len(users) == 3, "--users needs three localparts")
    a, b, c = (PepClient(label, f"{u}@{dom}/pep-{tok}", args.password, args.ca)
               for label, u in zip("ABC", users))
    clients = [a, b, c]
    try:
        await asyncio.gather(*(x.login(args.host, args.port, t) for x in (a, b, c)))
        for x in (a, b, c):
            await x.get_roster(timeout=t)  # roster pushes come to interested resources only
        step(f"A, B, C logged in: {', '.join(x.boundjid.full for x in (a, b, c))}")

        for x in (a, b, c):
            ver, q = await x.announce(dom, t)
            step(f"{x.label}: presence with caps ver {ver}; server asked disco#info node {q['node']} "
                 f"(from {q['from']}); slixmpp answered")

        await mutual_subscription(a, b, t)
        step("A <-> B: mutual presence subscription (both); C has none")

        # --- A publishes its location -----------------------------------------
        where = {"lat": 52.5163, "lon": 13.3777, "locality": "Berlin", "country": "Germany",
                 "text": f"interop {tok}"}
        resp = await expect_ok("A: publish_location", a["xep_0080"].publish_location(timeout=t, **where))
        item_id = resp["pubsub"]["publish"]["item"]["id"]
        step(f"A: published geoloc (item id {item_id or '-'}): {where}")

        def is_ours(e):
            if e["kind"] != "item" or e["node"] != NS_GEOLOC or e["payload"] is None:
                return False
            return e["payload"].findtext(f"{{{NS_GEOLOC}}}text") == where["text"]

        ev = await b.events.wait(is_ours, t, f"A's geoloc event at B ({NS_GEOLOC})")
        geo = ev["payload"]
        check(geo.tag == f"{{{NS_GEOLOC}}}geoloc", f"B: payload is {geo.tag}, expected geoloc")
        for k in ("lat", "lon"):
            check(abs(float(geo.findtext(f"{{{NS_GEOLOC}}}{k}")) - where[k]) < 1e-6,
                  f"B: geoloc {k} = {geo.findtext(f'{{{NS_GEOLOC}}}{k}')}, published {where[k]}")
        check(geo.findtext(f"{{{NS_GEOLOC}}}locality") == "Berlin", "B: geoloc locality lost")
        check(JID(ev["from"]).bare == a.boundjid.bare and not JID(ev["from"]).resource,
              f"B: event from {ev['from']}, expected A's bare JID {a.boundjid.bare}")
        step(f"B: received A's location from {ev['from']} (to {ev['to']}, type {ev['type'] or 'normal'}): "
             f"lat {geo.findtext(f'{{{NS_GEOLOC}}}lat')}, lon {geo.findtext(f'{{{NS_GEOLOC}}}lon')}")

        ev = await a.events.wait(is_ours, t, "A's own geoloc event at A (own resource with +notify)")
        step(f"A: its own session got the event too (to {ev['to']})")

        # --- C: interest, but no subscription -> nothing --------------------------
        sentinel = f"sentinel {tok}"
        a.send_message(mto=c.boundjid.full, mbody=sentinel, mtype="chat")
        await c.messages.wait(lambda m: m["body"] == sentinel, t, f"A's sentinel chat at C")
        try:
            leaked = await c.events.wait(lambda e: e["node"] == NS_GEOLOC, args.quiet_wait, "")
        except Failure:
            leaked = None
        check(leaked is None, f"C (no presence subscription to A) received A's location: {leaked}")
        step(f"C: got A's later chat message, and no location event (also none {args.quiet_wait}s later)")
        n = len([e for e in geolocs(b) if is_ours(e)])
        check(n == 1, f"B: {n} copies of the location event")

        # --- a later session of B gets the last item on presence -------------------
        b2 = PepClient("B2", f"{users[1]}@{dom}/pep2-{tok}", args.password, args.ca)
        clients.append(b2)
        await b2.login(args.host, args.port, t)
        b2.send_presence()  # first without caps interest known: nothing yet
        b2["xep_0030"].add_feature(f"urn:hydrant:interop:{b2.label}")
        await b2["xep_0115"].update_caps(broadcast=False)
        b2.send_presence()
        ev = await b2.events.wait(is_ours, t, "the last published location at B's new session")
        step(f"B2: new session of B received the last location on its caps presence (from {ev['from']})")
        check(not geolocs(c), f"C: received a location event: {geolocs(c)}")
    finally:
        await asyncio.gather(*(x.logout(2) for x in clients if not x.gone.done()), return_exceptions=True)


def main():
    args = parse_args()
    setup_logging(args.debug)
    try:
        asyncio.run(run(args))
    except Failure as exc:
        step(f"FAIL: {exc}")
        return 1
    except Exception:  # a crash is a failure too, with its traceback
        traceback.print_exc()
        step("FAIL: unexpected exception (traceback above)")
        return 1
    step("PASS: all slixmpp_pep steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

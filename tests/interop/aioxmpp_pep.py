"""Interop test: aioxmpp's high-level PEP service (XEP-0163) and typed pubsub
node configuration forms (XEP-0060 8.2, XEP-0004) against the server.

Runs in the venv that aioxmpp-venv.sh creates (aioxmpp 0.13.3, see
aioxmpp-requirements.txt).

aioxmpp's PEPClient refuses to publish unless the account's disco#info has the
identity pubsub/pep (PEPClient.available(), checked by every publish): that
is what stock aioxmpp applications (and the original complaint) run into
first. Three aioxmpp PresenceManagedClients, available, with aioxmpp's
EntityCapsService (XEP-0115 and XEP-0390 caps in every presence, answering
the server's disco#info queries):

  A  publisher: PEPClient.publish of a XEP-0080 location (a payload class
     registered with aioxmpp.pubsub.xso.as_payload_class);
  B  A's contact: a Service that claims the geoloc node with
     aioxmpp.pep.register_pep_node(..., notify=True), i.e. advertises
     http://jabber.org/protocol/geoloc+notify in its caps; no explicit
     subscription anywhere;
  D  a second resource of B's account without that claim (no +notify).

  1. A and B: PEPClient.available() is true (disco#info of the account's bare
     JID lists pubsub/pep);
  2. A <-> B: mutual presence subscription through aioxmpp's RosterClient
     (subscribe, on_subscribe -> approve) until both roster items say 'both';
  3. A publishes a location with PEPClient.publish; B's claimed node raises
     on_item_publish from A's bare JID with the Geoloc payload (the server
     sends it live, or as the last item once it has B's caps: either way once);
     A publishes a second one, B gets it live;
  4. D (same account, no +notify) got neither: checked after B had the second
     one (the same fan-out) and after A's later chat message reached D, plus
     a bounded wait; B got each location exactly once;
  5. B reads A's node with PubSubClient.get_items (presence access): the
     second location is the newest item;
  6. on pubsub.<domain>, A creates a node and reads its configuration
     (get_node_config) into aioxmpp.pubsub.xso.NodeConfigForm; sets max_items
     and title on the typed form and submits form.render_reply()
     (set_node_config); reads it back: both changed; max_items is applied:
     after three publishes the node keeps the newest two; A deletes the node.

aioxmpp 0.13.3 quirks: Service.derive_logger (called by every Service's
constructor) splits the module name and fails with IndexError for a Service
defined in a top-level module such as this script's __main__, so
LocationWatcher overrides it; EntityCapsService leaves re-sending presence
after a caps change to the application (on_ver_changed, connected here).

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import logging
import sys
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aioxmpp  # noqa: E402
import aioxmpp.connector  # noqa: E402
import aioxmpp.dispatcher  # noqa: E402
import aioxmpp.pep  # noqa: E402
import aioxmpp.pubsub  # noqa: E402
import aioxmpp.pubsub.xso as pubsub_xso  # noqa: E402
import aioxmpp.service  # noqa: E402
import aioxmpp.xso as xso  # noqa: E402

from aioxmpp_pubsub import Failure, Recorder, check, security_layer, step  # noqa: E402

NS_GEOLOC = "http://jabber.org/protocol/geoloc"


@pubsub_xso.as_payload_class
class Geoloc(xso.XSO):
    """XEP-0080 user location, the fields this test uses."""
    TAG = (NS_GEOLOC, "geoloc")
    lat = xso.ChildText((NS_GEOLOC, "lat"), default=None)
    lon = xso.ChildText((NS_GEOLOC, "lon"), default=None)
    locality = xso.ChildText((NS_GEOLOC, "locality"), default=None)
    text = xso.ChildText((NS_GEOLOC, "text"), default=None)

    def __init__(self, lat=None, lon=None, locality=None, text=None):
        super().__init__()
        self.lat, self.lon, self.locality, self.text = lat, lon, locality, text

    def fields(self):
        return (self.lat, self.lon, self.locality, self.text)


class LocationWatcher(aioxmpp.service.Service):
    """What an aioxmpp application writes to follow its contacts' locations:
    a claim on the geoloc PEP node with +notify."""
    ORDER_AFTER = [aioxmpp.pep.PEPClient]

    geoloc = aioxmpp.pep.register_pep_node(NS_GEOLOC, notify=True)

    def derive_logger(self, logger):
        # aioxmpp 0.13.3's default takes the module name apart and fails on a
        # top-level module such as __main__ (IndexError)
        return logger.getChild(type(self).__qualname__)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--service", help="pubsub service (default pubsub.<domain>)")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--users", required=True, help="two existing localparts: A (publisher),B (contact)")
    p.add_argument("--password", required=True)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--quiet-wait", type=float, default=1.0,
                   help="after the proof events, how long D must stay without a location")
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


class Peer:
    """An aioxmpp PresenceManagedClient (available) with caps, PEP, roster and
    what it receives."""

    def __init__(self, args, label, user, resource, watch):
        jid = aioxmpp.JID.fromstr(f"{user}@{args.domain}/{resource}")
        self.label = label
        self.client = c = aioxmpp.PresenceManagedClient(
            jid, security_layer(args.password, args.ca),
            override_peer=[(args.host, args.port, aioxmpp.connector.STARTTLSConnector())],
            logger=logging.getLogger(f"aioxmpp.{label}"),
        )
        c.presence = aioxmpp.PresenceState(True)
        self.caps = c.summon(aioxmpp.EntityCapsService)
        self.pep = c.summon(aioxmpp.pep.PEPClient)
        self.pubsub = c.summon(aioxmpp.PubSubClient)
        self.disco = c.summon(aioxmpp.DiscoClient)
        self.disco_server = c.summon(aioxmpp.DiscoServer)
        self.roster = c.summon(aioxmpp.RosterClient)
        presence_server = c.summon(aioxmpp.PresenceServer)
        # EntityCapsService's documented duty of the application: re-send
        # presence when the caps hash changes (once the stream is up).
        self.caps.on_ver_changed.connect(
            lambda: presence_server.resend_presence() if c.established else None)

        # every pubsub item event, whatever the node (D must see none)
        self.events = Recorder(f"{label} pubsub item events")
        self.pubsub.on_item_published.connect(
            lambda jid, node, item, *, message=None: self.events.add(
                (str(jid), node, item.id_, getattr(item.registered_payload, "fields", lambda: None)())))
        # what the PEP claim hands to the application
        self.claimed = Recorder(f"{label} on_item_publish of its geoloc claim")
        self.watcher = None
        if watch:
            self.watcher = c.summon(LocationWatcher)
            self.watcher.geoloc.on_item_publish.connect(
                lambda jid, node, item, *, message=None: self.claimed.add(
                    (str(jid), node, item.id_, item.registered_payload)))

        self.chats = Recorder(f"{label} chat messages")
        c.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(
            aioxmpp.MessageType.CHAT, None, lambda msg: self.chats.add(msg.body.any() if msg.body else ""))
        self.subscribe_requests = Recorder(f"{label} subscription requests")
        self.roster.on_subscribe.connect(lambda st: self.subscribe_requests.add(str(st.from_.bare())))
        self.roster_states = Recorder(f"{label} roster subscription states")
        self.roster.on_entry_subscription_state_changed.connect(
            lambda item: self.roster_states.add((str(item.jid), item.subscription)))
        self.roster.on_entry_added.connect(
            lambda item: self.roster_states.add((str(item.jid), item.subscription)))

    def features(self):
        return {f for f in self.disco_server.iter_features()}


async def run(args):
    t = args.timeout
    dom = args.domain
    svc = aioxmpp.JID.fromstr(args.service or f"pubsub.{dom}")
    tok = uuid.uuid4().hex[:8]
    users = args.users.split(",")
    check(len(users) == 2, "--users needs two localparts")

    a = Peer(args, "A", users[0], f"aiox-pep-{tok}", watch=False)
    b = Peer(args, "B", users[1], f"aiox-pep-{tok}", watch=True)
    d = Peer(args, "D", users[1], f"aiox-pep-plain-{tok}", watch=False)
    check(f"{NS_GEOLOC}+notify" in b.features(), f"B: aioxmpp does not advertise {NS_GEOLOC}+notify")
    check(f"{NS_GEOLOC}+notify" not in d.features(), f"D: advertises {NS_GEOLOC}+notify")
    a_bare, b_bare = a.client.local_jid.bare(), b.client.local_jid.bare()

    async with a.client.connected(), b.client.connected(), d.client.connected():
        step(f"A {a.client.local_jid}, B {b.client.local_jid}, D {d.client.local_jid}: logged in "
             f"(STARTTLS, certificate verified); B advertises {NS_GEOLOC}+notify in its caps "
             f"(register_pep_node notify=True), D does not")

        # --- 1. the accounts are PEP services ---------------------------------------
        for x in (a, b):
            ok = await asyncio.wait_for(x.pep.available(), t)
            if not ok:
                info = await asyncio.wait_for(x.disco.query_info(x.client.local_jid.bare()), t)
                raise Failure(f"{x.label}: aioxmpp's PEPClient.available() is false: disco#info of "
                              f"{x.client.local_jid.bare()} has identities "
                              f"{[(i.category, i.type_) for i in info.identities]}")
        step("A, B: PEPClient.available() (disco#info of the own bare JID lists pubsub/pep)")

        # --- 2. mutual presence subscription ----------------------------------------
        for x, y in ((a, b), (b, a)):
            y_bare = y.client.local_jid.bare()
            x.roster.subscribe(y_bare)
            await y.subscribe_requests.wait(lambda j, x=x: j == str(x.client.local_jid.bare()), t,
                                            f"on_subscribe from {x.label} at {y.label}")
            y.roster.approve(x.client.local_jid.bare())
        for x, y in ((a, b_bare), (b, a_bare)):
            await x.roster_states.wait(lambda s, y=y: s == (str(y), "both"), t,
                                       f"roster item {y} with subscription 'both' at {x.label}")
        step("A <-> B: mutual presence subscription (RosterClient subscribe / on_subscribe -> approve; "
             "both roster items 'both')")

        # --- 3. A publishes; B's claim gets it ---------------------------------------
        locs = [Geoloc("59.3293", "18.0686", "Stockholm", f"aioxmpp {tok} one"),
                Geoloc("60.1699", "24.9384", "Helsinki", f"aioxmpp {tok} two")]
        ids = [f"loc1-{tok}", f"loc2-{tok}"]
        got_id = await asyncio.wait_for(a.pep.publish(NS_GEOLOC, locs[0], id_=ids[0]), t)
        check(got_id in (None, ids[0]), f"A: publish acknowledged with id {got_id!r}, sent {ids[0]!r}")
        jid, node, iid, payload = await b.claimed.wait(lambda e: e[2] == ids[0], t,
                                                       f"{ids[0]} at B's geoloc claim (on_item_publish)")
        check(jid == str(a_bare) and node == NS_GEOLOC, f"B: on_item_publish({jid}, {node}), expected ({a_bare}, {NS_GEOLOC})")
        check(isinstance(payload, Geoloc) and payload.fields() == locs[0].fields(), f"B: payload {payload!r}")
        step(f"A: PEPClient.publish({ids[0]}) -> acknowledged; B: its claim raised on_item_publish from "
             f"{jid} with {payload.locality} {payload.lat} {payload.lon}")
        await asyncio.wait_for(a.pep.publish(NS_GEOLOC, locs[1], id_=ids[1]), t)
        jid, node, iid, payload = await b.claimed.wait(lambda e: e[2] == ids[1], t,
                                                       f"{ids[1]} at B's geoloc claim")
        check(payload.fields() == locs[1].fields(), f"B: payload of {ids[1]}: {payload!r}")
        step(f"A: published {ids[1]}; B: on_item_publish live ({payload.locality})")

        # --- 4. D: no +notify, nothing -------------------------------------------------
        sentinel = f"sentinel {tok}"
        msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=d.client.local_jid)
        msg.body[None] = sentinel
        await a.client.send(msg)
        await d.chats.wait(lambda body: body == sentinel, t, "A's sentinel chat at D")
        try:
            leaked = await d.events.wait(lambda e: e[1] == NS_GEOLOC, args.quiet_wait, "")
        except Failure:
            leaked = None
        check(leaked is None and not d.events.items,
              f"D (B's account, no +notify) received pubsub events: {d.events.items}")
        for i in ids:
            n = len([e for e in b.claimed.items if e[2] == i])
            check(n == 1, f"B: {n} on_item_publish for {i}")
        step(f"D (no +notify): no location, neither after B had {ids[1]} nor after A's later chat "
             f"message nor {args.quiet_wait}s on; B: each location exactly once")

        # --- 5. B reads A's node ------------------------------------------------------
        resp = await asyncio.wait_for(b.pubsub.get_items(a_bare, NS_GEOLOC), t)
        items = resp.payload.items
        check(items and items[0].id_ == ids[1] and items[0].registered_payload.fields() == locs[1].fields(),
              f"B: items of A's geoloc node: {[(i.id_, i.registered_payload) for i in items]}")
        step(f"B: PubSubClient.get_items({a_bare}, geoloc) -> newest {items[0].id_} ({len(items)} item(s))")

        # --- 6. typed node configuration on pubsub.<domain> -----------------------------
        cnode = await asyncio.wait_for(a.pubsub.create(svc, f"aiox-cfg-{tok}"), t)
        data = await asyncio.wait_for(a.pubsub.get_node_config(svc, cnode), t)
        form = pubsub_xso.NodeConfigForm.from_xso(data)
        before = (form.max_items.value, form.title.value)
        title = f"aioxmpp typed form {tok}"
        form.max_items.value = "2"
        form.title.value = title
        await asyncio.wait_for(a.pubsub.set_node_config(svc, form.render_reply(), cnode), t)
        back = pubsub_xso.NodeConfigForm.from_xso(await asyncio.wait_for(a.pubsub.get_node_config(svc, cnode), t))
        check(back.max_items.value == "2" and back.title.value == title,
              f"A: configuration read back: max_items {back.max_items.value!r}, title {back.title.value!r}; "
              f"submitted '2', {title!r}")
        step(f"A: {svc}/{cnode}: NodeConfigForm from get_node_config (max_items {before[0]!r}, title "
             f"{before[1]!r}); max_items '2', title {title!r} set and submitted with render_reply(); read back: "
             f"max_items {back.max_items.value!r}, title {back.title.value!r}")
        cids = [f"cfg{n}-{tok}" for n in range(3)]
        for n, i in enumerate(cids):
            await asyncio.wait_for(a.pubsub.publish(svc, cnode, Geoloc(text=f"{tok} {n}"), id_=i), t)
        resp = await asyncio.wait_for(a.pubsub.get_items(svc, cnode), t)
        kept = [i.id_ for i in resp.payload.items]
        check(sorted(kept) == sorted(cids[1:]), f"A: after 3 publishes with max_items 2 the node has {kept}, "
                                                f"expected the newest two {cids[1:]}")
        await asyncio.wait_for(a.pubsub.delete(svc, cnode), t)
        step(f"A: 3 publishes -> the node keeps {kept} (max_items 2 applied); node deleted")


def main():
    args = parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)
    try:
        asyncio.run(run(args))
    except Failure as exc:
        step(f"FAIL: {exc}")
        return 1
    except Exception:
        traceback.print_exc()
        step("FAIL: unexpected exception (traceback above)")
        return 1
    step("PASS: all aioxmpp_pep steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

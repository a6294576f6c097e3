"""Interop test: aioxmpp's PubSubClient (XEP-0060) against the server.

Runs in the venv that aioxmpp-venv.sh creates (aioxmpp 0.13.3 from PyPI on
Debian 12's Python 3.11; see aioxmpp-requirements.txt for the pins).

Two accounts X (owner) and Y (subscriber), both aioxmpp clients over STARTTLS
that verify the server certificate against the test CA (aioxmpp's default
PKIX verifier with the CA loaded into its pyOpenSSL context; nothing is
disabled), SASL, bind:
  1. Y: disco#info of pubsub.<domain> lists the publish and subscribe features;
  2. X creates a node (PubSubClient.create);
  3. Y subscribes (PubSubClient.subscribe) -> subscribed;
  4. X publishes an item (a registered payload class) -> acknowledged with its
     id; Y's PubSubClient raises on_item_published with that id and payload;
  5. Y fetches the items (get_items, also max_items=1) and by id;
  6. Y unsubscribes; X publishes again and then sends Y a chat message: Y gets
     the message but no second notification;
  7. X deletes the node.

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import logging
import sys
import time
import traceback
import uuid

import aioxmpp
import aioxmpp.connector
import aioxmpp.disco
import aioxmpp.dispatcher
import aioxmpp.errors
import aioxmpp.pubsub
import aioxmpp.pubsub.xso as pubsub_xso
import aioxmpp.security_layer
import aioxmpp.xso as xso

T0 = time.monotonic()
NS_NOTE = "urn:hydrant:interop:note"


def step(msg):
    print(f"[{time.monotonic() - T0:6.2f}s] {msg}", flush=True)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Recorder:
    """Events as a list; wait() returns the first past or future one matching
    a predicate, or raises Failure at the timeout (as xmpputil.Recorder, which
    this venv cannot import: it has no slixmpp)."""

    def __init__(self, name):
        self.name, self.items, self._waiters = name, [], []

    def add(self, item):
        self.items.append(item)
        for pred, fut in list(self._waiters):
            if not fut.done() and pred(item):
                fut.set_result(item)

    async def wait(self, pred, timeout, what):
        for item in self.items:
            if pred(item):
                return item
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Failure(f"timed out after {timeout}s waiting for {what}; "
                          f"{self.name} so far: {self.items[-5:]}") from None
        finally:
            self._waiters.remove((pred, fut))


@pubsub_xso.as_payload_class
class Note(xso.XSO):
    """A small registered payload: <note xmlns='urn:hydrant:interop:note' seq='n'>text</note>."""
    TAG = (NS_NOTE, "note")
    seq = xso.Attr("seq", type_=xso.Integer())
    text = xso.Text()

    def __init__(self, seq=0, text=""):
        super().__init__()
        self.seq = seq
        self.text = text


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--service", help="pubsub service (default pubsub.<domain>)")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--users", required=True, help="two existing localparts: X,Y")
    p.add_argument("--password", required=True)
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--quiet-wait", type=float, default=1.0,
                   help="after the sentinel, how long Y must stay without a notification")
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


def security_layer(password, ca_file):
    """aioxmpp's standard security layer (PKIX verification of the certificate
    chain by OpenSSL + aioxmpp's own check of the name against the JID's
    domain), with the test CA added to the trust store."""
    def ssl_context():
        ctx = aioxmpp.security_layer.default_ssl_context()
        ctx.load_verify_locations(ca_file)
        return ctx
    return aioxmpp.make_security_layer(password, ssl_context_factory=ssl_context)


async def run(args):
    t = args.timeout
    dom = args.domain
    svc = aioxmpp.JID.fromstr(args.service or f"pubsub.{dom}")
    tok = uuid.uuid4().hex[:8]
    users = args.users.split(",")
    check(len(users) == 2, "--users needs two localparts")

    def client(user):
        jid = aioxmpp.JID.fromstr(f"{user}@{dom}/aiox-{tok}")
        return aioxmpp.PresenceManagedClient(
            jid, security_layer(args.password, args.ca),
            override_peer=[(args.host, args.port, aioxmpp.connector.STARTTLSConnector())],
            logger=logging.getLogger(f"aioxmpp.{user}"),
        )

    x, y = client(users[0]), client(users[1])
    x.presence = aioxmpp.PresenceState(True)
    y.presence = aioxmpp.PresenceState(True)
    xps, yps = x.summon(aioxmpp.PubSubClient), y.summon(aioxmpp.PubSubClient)
    ydisco = y.summon(aioxmpp.DiscoClient)

    events = Recorder("Y's on_item_published")
    chats = Recorder("Y's chat messages")

    def on_item(jid, node, item, *, message=None):
        events.add((str(jid), node, item.id_, item.registered_payload))

    yps.on_item_published.connect(on_item)

    def on_message(msg):
        chats.add(msg.body.any() if msg.body else "")

    y.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(
        aioxmpp.MessageType.CHAT, None, on_message)

    # Log in: aioxmpp's connected() context establishes the stream and sends
    # the initial presence; any TLS, SASL or bind problem raises here.
    async with x.connected() as xs, y.connected() as ys:
        check(x.established and y.established, "clients not established")
        step(f"X {x.local_jid}, Y {y.local_jid}: logged in (STARTTLS, certificate verified against the test CA)")

        # --- 1. features --------------------------------------------------------
        feats = await asyncio.wait_for(yps.get_features(svc), t)
        for f in (pubsub_xso.Feature.PUBLISH, pubsub_xso.Feature.SUBSCRIBE,
                  pubsub_xso.Feature.CREATE_NODES, pubsub_xso.Feature.RETRIEVE_ITEMS):
            check(f in feats, f"Y: {svc} does not list {f.value} (has {sorted(x.value for x in feats)})")
        info = await asyncio.wait_for(ydisco.query_info(svc), t)
        idents = [(i.category, i.type_) for i in info.identities]
        check(("pubsub", "service") in idents, f"Y: {svc} identities {idents}, expected pubsub/service")
        step(f"Y: {svc} is pubsub/service with {len(feats)} known pubsub features "
             f"(publish, subscribe, create-nodes, retrieve-items among them)")

        # --- 2. create -----------------------------------------------------------
        node = await asyncio.wait_for(xps.create(svc, f"aiox-{tok}"), t)
        check(node == f"aiox-{tok}", f"X: created node {node!r}")
        step(f"X: created {svc}/{node}")

        # --- 3. subscribe ----------------------------------------------------------
        resp = await asyncio.wait_for(yps.subscribe(svc, node), t)
        sub = resp.payload
        check(sub.subscription == "subscribed", f"Y: subscription {sub.subscription!r}")
        check(sub.jid.bare() == y.local_jid.bare(), f"Y: subscribed JID {sub.jid}")
        step(f"Y: subscribed ({sub.jid}, subid {sub.subid})")

        # --- 4. publish -> on_item_published --------------------------------------
        iid = f"first-{tok}"
        got_id = await asyncio.wait_for(xps.publish(svc, node, Note(1, f"hello {tok}"), id_=iid), t)
        check(got_id in (None, iid), f"X: publish acknowledged with id {got_id!r}, sent {iid!r}")
        jid, enode, eid, payload = await events.wait(lambda e: True, t, "on_item_published at Y")
        check(jid == str(svc) and enode == node and eid == iid,
              f"Y: on_item_published({jid}, {enode}, {eid}), expected ({svc}, {node}, {iid})")
        check(isinstance(payload, Note) and payload.seq == 1 and payload.text == f"hello {tok}",
              f"Y: payload {payload!r}")
        step(f"X: published {iid}; Y: on_item_published({jid}, {enode}, {eid}) with the Note payload")

        # --- 5. fetch items -------------------------------------------------------------
        iid2 = f"second-{tok}"
        await asyncio.wait_for(xps.publish(svc, node, Note(2, f"again {tok}"), id_=iid2), t)
        await events.wait(lambda e: e[2] == iid2, t, f"on_item_published for {iid2} at Y")
        resp = await asyncio.wait_for(yps.get_items(svc, node), t)
        ids = [i.id_ for i in resp.payload.items]
        check(sorted(ids) == sorted([iid, iid2]), f"Y: get_items ids {ids}, expected {iid} and {iid2}")
        texts = {i.id_: i.registered_payload.text for i in resp.payload.items}
        check(texts[iid] == f"hello {tok}" and texts[iid2] == f"again {tok}", f"Y: payloads {texts}")
        resp = await asyncio.wait_for(yps.get_items(svc, node, max_items=1), t)
        ids1 = [i.id_ for i in resp.payload.items]
        check(ids1 == [iid2], f"Y: get_items max_items=1 -> {ids1}, expected the newest [{iid2}]")
        resp = await asyncio.wait_for(yps.get_items_by_id(svc, node, [iid]), t)
        byid = [i.id_ for i in resp.payload.items]
        check(byid == [iid], f"Y: get_items_by_id([{iid}]) -> {byid}")
        step(f"Y: get_items -> {ids}; max_items=1 -> {ids1}; by id -> {byid}")

        # --- 6. unsubscribe: no more notifications ---------------------------------------
        await asyncio.wait_for(yps.unsubscribe(svc, node), t)
        subs = await asyncio.wait_for(yps.get_subscriptions(svc, node), t)
        mine = [s for s in subs.subscriptions if s.jid.bare() == y.local_jid.bare()]
        check(not mine, f"Y: still subscribed after unsubscribe: {[(str(s.jid), s.subscription) for s in mine]}")
        n_before = len(events.items)
        await asyncio.wait_for(xps.publish(svc, node, Note(3, f"after {tok}"), id_=f"third-{tok}"), t)
        sentinel = f"sentinel {tok}"
        msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=y.local_jid)
        msg.body[None] = sentinel
        await x.send(msg)
        await chats.wait(lambda b: b == sentinel, t, "X's sentinel chat at Y")
        try:
            late = await events.wait(lambda e: e[2] == f"third-{tok}", args.quiet_wait, "")
        except Failure:
            late = None
        check(late is None and len(events.items) == n_before,
              f"Y: notification after unsubscribing: {events.items[n_before:]}")
        step(f"Y: unsubscribed; X's next publish reached Y neither before X's later chat message "
             f"nor within {args.quiet_wait}s after it")

        # --- 7. delete -----------------------------------------------------------------
        await asyncio.wait_for(xps.delete(svc, node), t)
        try:
            await asyncio.wait_for(yps.get_items(svc, node), t)
            raise Failure("Y: items of the deleted node were returned")
        except aioxmpp.errors.XMPPCancelError as exc:
            check(exc.condition == aioxmpp.ErrorCondition.ITEM_NOT_FOUND,
                  f"Y: items of the deleted node: {exc.condition}, expected item-not-found")
        step("X: deleted the node; Y: items -> item-not-found")


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
    step("PASS: all aioxmpp_pubsub steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Interop test: XEP-0352 client state indication with slixmpp's stock xep_0352
plugin (send_inactive / send_active).

Three accounts: S (subscriber, slixmpp with xep_0352), W (a second subscriber
that stays active: the witness that a publish's fan-out ran) and P (publisher).
S learns about CSI from the server's <csi xmlns='urn:xmpp:csi:0'/> stream
feature (the plugin sends nothing without it). CSI nonzas have no answer, so
after each one S pings the server: the server handles a stream's input in
order, so after the pong it has taken S's state change into account.

  1. S: the server offers <csi/> (csi_enabled); P creates a node on
     pubsub.<domain>, S and W subscribe; a first item reaches both at once
     (S is active);
  2. S sends <inactive/>; P publishes N items, waiting for each publish
     result; W receives each; after W has the last one, S must have received
     nothing for a short bounded window;
  3. S sends <active/> and pings: every held item arrives before the pong, all
     N in publish order, each once;
  4. S sends <inactive/> again; P publishes an item, sends S a chat state
     (<composing/>, no body: it can wait too), publishes two more items; W
     has them all and S nothing (bounded window); P sends S a chat message
     with a body: S receives the held items and the chat state, in order,
     then the message, without sending anything itself;
  5. still inactive: P publishes large items (about 200 KB each) until more
     than the server's csi_max_held_bytes (default 1 MiB) would be held: while
     below it S gets nothing (bounded window after W has the item that leaves
     it just below), the item that crosses it releases the whole batch, in
     order, again without S sending anything;
  6. S sends <active/>; in total S received every item exactly once, in
     publish order, payloads intact.

(The age limit, csi_max_delay_secs, default 60 s, is not exercised here.)

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import sys
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slixmpp.stanza import Iq, Message  # noqa: E402
from slixmpp.xmlstream import ET  # noqa: E402

from xmpputil import Failure, Recorder, check, setup_logging, step  # noqa: E402
from pubsubutil import PubsubClient, atom_entry, config_form, entry_digest, expect_ok  # noqa: E402

NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--service", help="pubsub service (default pubsub.<domain>)")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--users", required=True,
                   help="three existing localparts: S (inactive subscriber),W (active subscriber),P (publisher)")
    p.add_argument("--password", required=True)
    p.add_argument("--held", type=int, default=5, help="items held in step 2")
    p.add_argument("--csi-max-held-bytes", type=int, default=1048576,
                   help="the server's [c2s] csi_max_held_bytes (step 5)")
    p.add_argument("--big-bytes", type=int, default=200_000, help="size of a step 5 item")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per step")
    p.add_argument("--quiet-wait", type=float, default=1.0,
                   help="after W has an item, how long S must stay without anything")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    return p.parse_args()


class CsiClient(PubsubClient):
    """S: slixmpp's xep_0352 plugin; records, in arrival order, every message
    and iq result it reads (an 'in' filter: runs as each stanza is parsed)."""

    def __init__(self, label, jid, password, ca_file):
        super().__init__(label, jid, password, ca_file, plugins=("xep_0352",))
        self.csi = self["xep_0352"]
        self.csi_enabled = self.loop.create_future()
        self.add_event_handler("csi_enabled", self._on_csi)
        self.arrivals = Recorder(f"{label} arrivals")
        self.add_filter("in", self._record)

    def _on_csi(self, _features):
        if not self.csi_enabled.done():
            self.csi_enabled.set_result(True)

    def _record(self, st):
        if isinstance(st, Message):
            ev = st.xml.find(f"{{{NS_PUBSUB_EVENT}}}event")
            if ev is not None:
                for items in ev.findall(f"{{{NS_PUBSUB_EVENT}}}items"):
                    for it in items.findall(f"{{{NS_PUBSUB_EVENT}}}item"):
                        self.arrivals.add(("item", it.get("id")))
            elif st["body"]:
                self.arrivals.add(("chat", st["body"]))
            elif any(c.tag.startswith(f"{{{NS_CHATSTATES}}}") for c in st.xml):
                self.arrivals.add(("chatstate", st["from"].bare))
            else:
                self.arrivals.add(("message", str(st)))
        elif isinstance(st, Iq) and st["type"] in ("result", "error"):
            self.arrivals.add(("iq", st["id"]))
        return st

    def since(self, mark):
        return self.arrivals.items[mark:]

    async def sync(self, domain, t, what):
        """Ping the server and wait for the pong: the server has handled
        everything S sent before. Returns the index of the pong in arrivals."""
        resp = await expect_ok(f"{self.label}: ping after {what}", self["xep_0199"].send_ping(domain, timeout=t))
        for i in range(len(self.arrivals.items) - 1, -1, -1):
            if self.arrivals.items[i] == ("iq", resp["id"]):
                return i
        raise Failure(f"{self.label}: the pong {resp['id']} was not recorded")


async def quiet(client, mark, secs, what):
    """Nothing may arrive at `client` (after arrivals[mark]) within `secs`."""
    try:
        got = await client.arrivals.wait(lambda _a: len(client.arrivals.items) > mark, secs, "")
    except Failure:
        got = None
    check(got is None and len(client.arrivals.items) == mark,
          f"{client.label}: received {client.since(mark)} {what}")


async def run(args):
    t = args.timeout
    dom = args.domain
    svc = args.service or f"pubsub.{dom}"
    tok = uuid.uuid4().hex[:8]
    node = f"csi-{tok}"
    users = args.users.split(",")
    check(len(users) == 3, "--users needs three localparts")
    s = CsiClient("S", f"{users[0]}@{dom}/csi-{tok}", args.password, args.ca)
    w = PubsubClient("W", f"{users[1]}@{dom}/csi-{tok}", args.password, args.ca)
    p = PubsubClient("P", f"{users[2]}@{dom}/csi-{tok}", args.password, args.ca)
    clients = (s, w, p)
    node_created = False
    published, digests = [], {}

    async def publish(iid, size=1024):
        entry = atom_entry(len(published), tok, size)
        digests[iid] = entry_digest(entry)
        published.append(iid)
        await expect_ok(f"P: publish {iid}", p["xep_0060"].publish(svc, node, id=iid, payload=entry, timeout=t))

    async def publish_seen(iid, size=1024):
        """Publish, then wait until W (active) has the item: the fan-out ran."""
        await publish(iid, size)
        await w.events.wait(lambda e: e["kind"] == "item" and e["id"] == iid, t, f"{iid} at W")

    def s_items():
        return [a[1] for a in s.arrivals.items if a[0] == "item"]

    try:
        # --- 1. CSI offered; node, subscriptions, one live item ---------------------
        await asyncio.gather(*(x.login(args.host, args.port, t) for x in clients))
        try:
            await asyncio.wait_for(asyncio.shield(s.csi_enabled), t)
        except asyncio.TimeoutError:
            raise Failure("S: no csi_enabled: the server did not offer <csi xmlns='urn:xmpp:csi:0'/> "
                          f"among its stream features (slixmpp's xep_0352 then sends nothing); "
                          f"features seen: {sorted(s.features)}") from None
        check(s.csi.enabled, "S: xep_0352 plugin not enabled after csi_enabled")
        for x in clients:
            x.send_presence()
        await expect_ok(f"P: create {node}", p["xep_0060"].create_node(
            svc, node, config=config_form(p, {"pubsub#max_items": "100", "pubsub#access_model": "open"}),
            timeout=t))
        node_created = True
        for x in (s, w):
            resp = await expect_ok(f"{x.label}: subscribe", x["xep_0060"].subscribe(svc, node, timeout=t))
            check(resp["pubsub"]["subscription"]["subscription"] == "subscribed",
                  f"{x.label}: subscription {resp['pubsub']['subscription']['subscription']!r}")
        first = f"live-{tok}"
        await publish_seen(first)
        await s.arrivals.wait(lambda a: a == ("item", first), t, f"{first} at S (active)")
        step(f"S {s.boundjid.full}, W, P logged in; the server offers <csi/> (slixmpp: csi_enabled); "
             f"P created {svc}/{node}, S and W subscribed; {first} reached both while S was active")

        # --- 2. inactive: held --------------------------------------------------------
        s.csi.send_inactive()
        mark = await s.sync(dom, t, "<inactive/>") + 1
        held = [f"held{n:02d}-{tok}" for n in range(args.held)]
        for iid in held:
            await publish_seen(iid)
        await quiet(s, mark, args.quiet_wait,
                    f"while inactive (W had all {len(held)} items; S nothing also {args.quiet_wait}s later)")
        step(f"S: <inactive/>; P published {len(held)} items one at a time, W received each; "
             f"S received nothing (checked {args.quiet_wait}s after W had the last)")

        # --- 3. active: the batch before the pong -------------------------------------------
        s.csi.send_active()
        pong = await s.sync(dom, t, "<active/>")
        got = [a for a in s.arrivals.items[mark:pong]]
        check(got == [("item", i) for i in held],
              f"S: after <active/>, before the pong: {got}\n    expected exactly, in order: {held}")
        step(f"S: <active/> + ping: all {len(held)} held items arrived before the pong, in publish order, once each")

        # --- 4. inactive; a message with a body takes the batch along --------------------------
        s.csi.send_inactive()
        mark = await s.sync(dom, t, "<inactive/>") + 1
        held2 = [f"second{n:02d}-{tok}" for n in range(3)]
        await publish_seen(held2[0])
        state = p.Message()
        state["to"] = s.boundjid.full
        state["type"] = "chat"
        state.xml.append(ET.Element(f"{{{NS_CHATSTATES}}}composing"))
        state.send()  # P's stanzas are handled in order: routed before the next publish
        for iid in held2[1:]:
            await publish_seen(iid)
        await quiet(s, mark, args.quiet_wait, "while inactive (chat state and items should be held)")
        body = f"wake up {tok}"
        p.send_message(mto=s.boundjid.full, mbody=body, mtype="chat")
        await s.arrivals.wait(lambda a: a == ("chat", body), t, "P's chat message at S")
        got = s.since(mark)
        want = [("item", held2[0]), ("chatstate", p.boundjid.bare)] + [("item", i) for i in held2[1:]] + [
            ("chat", body)]
        check(got == want, f"S: while inactive, up to P's message: {got}\n    expected exactly: {want}")
        step(f"S: <inactive/> again; {held2[0]}, a <composing/> chat state from P, {held2[1]}, {held2[2]} held "
             f"(nothing at S {args.quiet_wait}s after W had them all); P's chat message with a body brought "
             f"them along, in order, before it")

        # --- 5. still inactive: the size limit releases the batch -------------------------------------
        size, limit = args.big_bytes, args.csi_max_held_bytes
        below = (limit - 1) // (size + 2048)  # items that certainly stay below the limit
        check(below >= 1, "--big-bytes too large for --csi-max-held-bytes")
        check((below + 1) * (size - 1024) >= limit,
              f"{below + 1} items of {size} bytes do not reach {limit}: choose --big-bytes")
        mark = len(s.arrivals.items)
        big = [f"big{n:02d}-{tok}" for n in range(below + 1)]
        for iid in big[:-1]:
            await publish_seen(iid, size)
        await quiet(s, mark, args.quiet_wait,
                    f"with {below} items of ~{size} bytes held (below {limit} bytes)")
        await publish_seen(big[-1], size)
        await s.arrivals.wait(lambda a: a == ("item", big[-1]), t, f"{big[-1]} at S (released by size)")
        got = s.since(mark)
        check(got == [("item", i) for i in big], f"S: released by size: {got}\n    expected exactly: {big}")
        step(f"S (still inactive, sending nothing): {below} items of ~{size // 1000} KB held (nothing "
             f"{args.quiet_wait}s after W had them); item {below + 1} passed {limit} bytes and released all "
             f"{below + 1}, in order")

        # --- 6. exactly once, in order, intact -------------------------------------------------------
        s.csi.send_active()
        await s.sync(dom, t, "<active/>")
        ids = s_items()
        check(ids == published, f"S: items {ids}\n    expected exactly, in publish order: {published}")
        for e in s.items_of(node):
            check(entry_digest(e["payload"]) == digests[e["id"]], f"S: payload of {e['id']} differs")
        check(len(s.items_of(node)) == len(published),
              f"S: slixmpp raised {len(s.items_of(node))} pubsub_publish events for {len(published)} items")
        step(f"S: all {len(published)} items exactly once, in publish order, payloads intact")

        await expect_ok(f"P: delete {node}", p["xep_0060"].delete_node(svc, node, timeout=t))
        node_created = False
    finally:
        if node_created:
            try:
                await p["xep_0060"].delete_node(svc, node, timeout=5)
            except Exception:  # best effort: the test already failed
                pass
        await asyncio.gather(*(x.logout(3) for x in clients if not x.gone.done()), return_exceptions=True)


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
    step("PASS: all slixmpp_csi steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Interop test: aioxmpp's stream management (XEP-0198) resumes a stream after
its TCP connection is cut; everything sent meanwhile arrives exactly once.

Runs in the venv that aioxmpp-venv.sh creates (aioxmpp 0.13.3, see
aioxmpp-requirements.txt).

Two aioxmpp clients: S (subscriber) and P (publisher), both with aioxmpp's
defaults: a Client enables stream management with resumption whenever the
server offers it, and after a broken connection reconnects and resumes by
itself (Client._main: on an OSError it backs off, 1 s at first, and connects
again; _negotiate_stream tries <resume/> first). S reaches the server through
a relay (tcpcut.py) that can cut the connection: a TCP RST to both ends at
once, no </stream:stream>, no TLS close_notify, no FIN. P connects directly.

  1. S logs in: StanzaStream.sm_enabled and sm_resumable, an sm_id;
  2. P creates a node on pubsub.<domain>, S subscribes; P publishes a few
     items one at a time, S's PubSubClient raises on_item_published for each;
  3. P publishes a burst without waiting for replies; when S has received the
     3rd item of the burst, the link dies silently (the relay throws away
     what either side sends) and S enqueues a chat message to P, lost on it
     (aioxmpp: SENT, not ACKED), as is whatever the server sends S meanwhile
     (the rest of the burst, unless it was already on its way to S); once P
     has every publish acknowledged and S's message has gone into the dead
     link, the relay cuts the connection;
  4. while S is away: P gets every publish acknowledged, publishes N more
     items one at a time and sends a chat message to S's full JID; aioxmpp
     reconnects by itself (on_stream_suspended) and the relay holds that
     connection;
  5. the relay lets it through: on_stream_resumed; no on_stream_destroyed, no
     second on_stream_established (no new bind), same JID and sm_id;
  6. S receives every item of the burst and of step 4 and P's message; P
     receives S's message of step 3 (aioxmpp re-sent it: the server's
     <resumed h/> did not cover it) and its token ends ACKED;
  7. after the resumption: P publishes one more item, S receives it; S sends
     P a message (token ACKED: the server's <a h/> counts it); an iq round
     trip; nothing left in S's sm_unacked_list;
  8. in total S got every item exactly once, in publish order, payloads
     intact, and P's message exactly once; P got each of S's messages once.

aioxmpp 0.13.3 / aioopenssl 0.6.0 quirk: when the reset is read while aioxmpp
still has something to write (a first version of this test enqueued S's
message and reset the connection in the same breath), aioopenssl's write()
raises RuntimeError ("invalid in state _State.CLOSED") instead of a
ConnectionError; aioxmpp's Client retries only on OSError and OpenSSL errors,
so it takes that for a fatal error (on_failure): no reconnection, no
resumption. Hence the stalled link: S's message goes into it, and the
connection is reset only once S is idle, which aioxmpp then sees as an
OpenSSL SysCallError(ECONNRESET) and survives.

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
import aioxmpp.pubsub  # noqa: E402
import aioxmpp.stream  # noqa: E402

from aioxmpp_pubsub import Failure, Note, Recorder, check, security_layer, step  # noqa: E402
from tcpcut import Relay  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--service", help="pubsub service (default pubsub.<domain>)")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--users", required=True, help="two existing localparts: S (subscriber),P (publisher)")
    p.add_argument("--password", required=True)
    p.add_argument("--before", type=int, default=5, help="items published before the cut")
    p.add_argument("--burst", type=int, default=12, help="items published in the burst cut short (>= 4)")
    p.add_argument("--away", type=int, default=10, help="items published while S is away")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per step")
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


def text_of(n, tok):
    """About 1 KB, different for every item."""
    return f"item {n} of {tok} " + "".join(f"{(n * 7919 + i) % 65536:04x}" for i in range(240))


def chat(to, body):
    msg = aioxmpp.Message(type_=aioxmpp.MessageType.CHAT, to=to)
    msg.body[None] = body
    return msg


class Clients:
    """S and P (aioxmpp PresenceManagedClients, available), S through the
    relay, and what they receive."""

    def __init__(self, args, relay, tok):
        self.relay = relay

        def client(user, port):
            jid = aioxmpp.JID.fromstr(f"{user}@{args.domain}/aiox-sm-{tok}")
            c = aioxmpp.PresenceManagedClient(
                jid, security_layer(args.password, args.ca),
                override_peer=[(args.host, port, aioxmpp.connector.STARTTLSConnector())],
                logger=logging.getLogger(f"aioxmpp.{user}"),
            )
            c.presence = aioxmpp.PresenceState(True)
            return c

        users = args.users.split(",")
        self.s, self.p = client(users[0], relay.port), client(users[1], args.port)
        self.sps = self.s.summon(aioxmpp.PubSubClient)
        self.pps = self.p.summon(aioxmpp.PubSubClient)

        # S's connection signals, counted
        self.counts = {}
        self.h_at_cut = None
        self.signals = Recorder("S's client signals")
        for sig in ("on_stream_established", "on_stream_suspended", "on_stream_resumed",
                    "on_stream_destroyed", "on_failure"):
            getattr(self.s, sig).connect(lambda *a, sig=sig, **kw: self._signal(sig, a))

        self.items = []  # (id, seq, text) in the order S's on_item_published fired
        self.events = Recorder("S's on_item_published")
        self.hooks = []  # called with each item before the Recorder sees it
        self.sps.on_item_published.connect(self._on_item)
        self.s_chats = self._chat_recorder(self.s, "S's chat messages")
        self.p_chats = self._chat_recorder(self.p, "P's chat messages")

    def _signal(self, sig, a):
        self.counts[sig] = self.counts.get(sig, 0) + 1
        if sig == "on_stream_suspended" and self.s.stream.sm_enabled:
            # what S will send as h in <resume/>: the stanzas it has handled
            self.h_at_cut = self.s.stream.sm_inbound_ctr
        self.signals.add((sig, a))

    def _on_item(self, jid, node, item, *, message=None):
        pl = item.registered_payload
        e = (item.id_, pl.seq if pl is not None else None, pl.text if pl is not None else None)
        self.items.append(e)
        for h in list(self.hooks):
            h(e)
        self.events.add(e)

    @staticmethod
    def _chat_recorder(c, name):
        rec = Recorder(name)
        c.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(
            aioxmpp.MessageType.CHAT, None,
            lambda msg: rec.add((str(msg.from_.bare()), msg.body.any() if msg.body else "")))
        return rec


async def run(args):
    check(len(args.users.split(",")) == 2, "--users needs two localparts")
    check(args.burst >= 4, "--burst must be at least 4")
    tok = uuid.uuid4().hex[:8]
    relay = await Relay(args.host, args.port).start()
    try:
        w = Clients(args, relay, tok)
        async with w.s.connected(), w.p.connected():
            await scenario(args, w, tok)
    finally:
        await relay.close()


async def scenario(args, w, tok):
    t = args.timeout
    svc = aioxmpp.JID.fromstr(args.service or f"pubsub.{args.domain}")
    s, p, sps, pps, relay = w.s, w.p, w.sps, w.pps, w.relay
    counts, signals, items, events = w.counts, w.signals, w.items, w.events
    node = None
    try:
        # --- 1. log in, stream management enabled ------------------------
        st = s.stream
        check(st.sm_enabled, "S: stream management not enabled after login (server offers <sm/>?)")
        check(st.sm_resumable, "S: the server did not grant resumption (<enabled resume/>)")
        sm_id, full = st.sm_id, s.local_jid
        step(f"S {full} (through the relay on port {relay.port}), P {p.local_jid}: logged in; "
             f"S: SM enabled, resumable, id {sm_id[:8]}..., max {st.sm_max}")

        # --- 2. node, subscription, a few items ------------------------------
        node = await asyncio.wait_for(pps.create(svc, f"aiox-sm-{tok}"), t)
        resp = await asyncio.wait_for(sps.subscribe(svc, node), t)
        check(resp.payload.subscription == "subscribed", f"S: subscription {resp.payload.subscription!r}")
        ids, texts = [], {}

        def publish(iid, n):
            texts[iid] = text_of(n, tok)
            return asyncio.wait_for(pps.publish(svc, node, Note(n, texts[iid]), id_=iid), t)

        for n in range(args.before):
            iid = f"before{n:02d}-{tok}"
            ids.append(iid)
            await publish(iid, n)
        await events.wait(lambda e: e[0] == ids[-1], t, f"{ids[-1]} at S")
        step(f"P: created {svc}/{node}; S subscribed; P published {args.before} items, S received them")

        # --- 3. burst; the link dies after its 3rd item, then breaks ----------------
        burst = [f"burst{n:02d}-{tok}" for n in range(args.burst)]
        ids += burst
        at_cut = f"S at the cut {tok}"
        state = {"stalled_at": None, "token": None}

        def stall_now(e):
            # called by on_item_published, i.e. while aioxmpp's broker
            # handles the notification, before it handles anything further
            if e[0] == burst[2] and state["stalled_at"] is None:
                relay.stall()
                state["stalled_at"] = len(items)
                state["token"] = s.enqueue(chat(p.local_jid, at_cut))

        w.hooks.append(stall_now)
        # started in order: each enqueues its iq before the next one runs
        pubs = [asyncio.ensure_future(publish(iid, 100 + n)) for n, iid in enumerate(burst)]
        await asyncio.gather(*pubs)
        w.hooks.clear()
        check(state["stalled_at"] is not None, f"S: {burst[2]} did not arrive")
        try:
            await relay.until(lambda: relay.lost_to_server > 0, t)
        except asyncio.TimeoutError:
            raise Failure("S's message did not reach the (dead) link") from None
        check(state["token"].state == aioxmpp.stream.StanzaState.SENT,
              f"S: the message sent into the dead link is {state['token'].state}, expected SENT (unacked)")
        relay.cut()
        await signals.wait(lambda x: x[0] == "on_stream_suspended", t, "on_stream_suspended at S")
        got_before_cut = len(items)
        reason = [x[1] for x in signals.items if x[0] == "on_stream_suspended"][0]
        step(f"P: published a burst of {args.burst}, all acknowledged; the link to S died silently "
             f"when S had {state['stalled_at']} items, S's chat message to P and {relay.lost_to_client} "
             f"bytes the server sent S were lost on it; then the relay cut the connection (RST both ways); "
             f"S: on_stream_suspended{reason!r} with {got_before_cut} items, its inbound counter (h) "
             f"at {w.h_at_cut}")

        # --- 4. while S is away ----------------------------------------------------
        away = [f"away{n:02d}-{tok}" for n in range(args.away)]
        ids += away
        for n, iid in enumerate(away):
            await publish(iid, 200 + n)
        while_away = f"P to S while away {tok}"
        await asyncio.wait_for(p.send(chat(full, while_away)), t)
        try:
            await relay.until(lambda: relay.accepted >= 2, t)
        except asyncio.TimeoutError:
            raise Failure("S did not reconnect by itself") from None
        check(counts.get("on_stream_resumed", 0) == 0 and len(items) == got_before_cut,
              "S received something while its connection was down")
        if CutNoise.seen:
            step(f"(aioopenssl's expected complaints about the reset, not printed: {CutNoise.seen})")
        step(f"P: published {args.away} items one at a time and sent S a chat message while S was away; "
             f"S reconnected by itself, the relay holds that connection ({relay.held} held)")

        # --- 5. the network is back: resumption ----------------------------------------
        relay.restore()
        await signals.wait(lambda x: x[0] in ("on_stream_resumed", "on_stream_destroyed", "on_failure"),
                           t, "on_stream_resumed at S")
        check(counts.get("on_stream_resumed", 0) == 1 and "on_stream_destroyed" not in counts
              and "on_failure" not in counts and counts.get("on_stream_established") == 1,
              f"S: not resumed: signals {counts} (on_stream_destroyed / a second "
              f"on_stream_established mean a new session)")
        st = s.stream
        check(st.sm_enabled and st.sm_id == sm_id, f"S: SM id {st.sm_id if st.sm_enabled else None} "
              f"after the resumption, was {sm_id}")
        check(s.local_jid == full, f"S: JID {s.local_jid} after the resumption, was {full}")
        step(f"S: on_stream_resumed, same SM id and JID {full}, no new session (signals {counts})")

        # --- 6. what was sent meanwhile -------------------------------------------------
        await events.wait(lambda e: e[0] == away[-1], t, f"the last item {away[-1]} at S")
        await w.s_chats.wait(lambda m: m[1] == while_away, t, "P's chat message at S")
        await w.p_chats.wait(lambda m: m[1] == at_cut, t, "S's message sent at the cut, at P")
        tok_cut = state["token"]
        await asyncio.wait_for(asyncio.shield(tok_cut.future), t)
        check(tok_cut.state == aioxmpp.stream.StanzaState.ACKED,
              f"S: the message sent at the cut ended {tok_cut.state}")
        step("S: got the rest of the burst, the items published while away and P's message; "
             "P: got S's message sent at the cut (re-sent by aioxmpp after <resumed/>, then ACKED)")

        # --- 7. the resumed stream works both ways -----------------------------------------
        last = f"after-{tok}"
        ids.append(last)
        await publish(last, 300)
        await events.wait(lambda e: e[0] == last, t, f"{last} at S")
        after_resume = f"S after the resumption {tok}"
        tok_after = s.enqueue(chat(p.local_jid, after_resume))
        await asyncio.wait_for(asyncio.shield(tok_after.future), t)
        check(tok_after.state == aioxmpp.stream.StanzaState.ACKED, f"S: message ended {tok_after.state}")
        await w.p_chats.wait(lambda m: m[1] == after_resume, t, "S's message after the resumption, at P")
        resp = await asyncio.wait_for(sps.get_items(svc, node, max_items=1), t)
        check([i.id_ for i in resp.payload.items] == [last], "S: newest item is not the last one")
        check(not s.stream.sm_unacked_list, f"S: {len(s.stream.sm_unacked_list)} stanzas unacknowledged")
        step("P: one more item, S got it; S->P message ACKED by the server and received; iq round trip; "
             "nothing unacknowledged at S")

        # --- 8. exactly once, in order --------------------------------------------------
        got_ids = [e[0] for e in items]
        dups = sorted({i for i in got_ids if got_ids.count(i) > 1})
        check(not dups, f"S: items received more than once: {dups}")
        check(got_ids == ids, f"S: items {got_ids}\n    expected exactly, in publish order: {ids}")
        for iid, _seq, text in items:
            check(text == texts[iid], f"S: payload of {iid} differs")
        n = sum(1 for m in w.s_chats.items if m[1] == while_away)
        check(n == 1, f"S: P's message sent while away received {n} times")
        for body in (at_cut, after_resume):
            n = sum(1 for m in w.p_chats.items if m[1] == body)
            check(n == 1, f"P: S's message {body!r} received {n} times")
        step(f"S: all {len(ids)} items exactly once, in publish order, payloads intact "
             f"({got_before_cut} before the cut, {len(ids) - got_before_cut} after the resumption); "
             f"every chat message exactly once")

        await asyncio.wait_for(pps.delete(svc, node), t)
        node = None
    finally:
        if node is not None:
            try:
                await asyncio.wait_for(pps.delete(svc, node), 5)
            except Exception:  # best effort: the test already failed
                pass


class CutNoise(logging.Filter):
    """aioopenssl's complaints about the cut itself, counted instead of
    printed (all of them with --debug): asyncio's "Fatal read/write error on
    STARTTLS transport" with ECONNRESET (pyOpenSSL's SysCallError, which
    aioopenssl does not recognise as a reset), and the UnboundLocalError that
    aioopenssl 0.6.0's _write_ready raises right after it ('nsent' unset on
    that error path). Anything else goes through."""

    seen = []

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        msg = record.getMessage()
        expected = (
            (msg.startswith("Fatal ") and "STARTTLS transport" in msg
             and "ECONNRESET" in repr(exc))
            or (isinstance(exc, UnboundLocalError) and "nsent" in str(exc)))
        if expected:
            self.seen.append(msg.splitlines()[0] + (f" ({exc!r})" if exc else ""))
            return False
        return True


def main():
    args = parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.ERROR,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)
    if not args.debug:
        logging.getLogger("asyncio").addFilter(CutNoise())
    try:
        asyncio.run(run(args))
    except Failure as exc:
        step(f"FAIL: {exc}")
        return 1
    except Exception:
        traceback.print_exc()
        step("FAIL: unexpected exception (traceback above)")
        return 1
    step("PASS: all aioxmpp_sm steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

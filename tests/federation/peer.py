#!/usr/bin/python3
"""hydrant.test <-> a peer server (prosody.test or ejabberd.test) over s2s, with stock
slixmpp clients on both sides.

Run by run.sh inside its namespace (lab DNS, loopback only). Every step waits on an
event with a timeout; a failure names the step and what was seen.
"""

import argparse
import asyncio
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))

from pubsubutil import PubsubClient, atom_entry, expect_ok  # noqa: E402
from xmpputil import Failure, check, setup_logging, step  # noqa: E402

T = 20  # seconds per step: a first s2s connection costs DNS, TCP, TLS and dialback both ways

HYDRANT = ("127.0.0.4", 15222)
PEERS = {"prosody": ("prosody.test", "127.0.0.2"), "ejabberd": ("ejabberd.test", "127.0.0.3")}


async def main(args):
    peer, ip = PEERS[args.peer]
    svc = f"pubsub.{peer}"
    # One hydrant account per peer, so the two runs do not see each other's traffic.
    alice_jid = f"alice-{args.peer}{args.tag}@hydrant.test"
    alice = PubsubClient("alice@hydrant", f"{alice_jid}/fed", args.password, args.ca)
    # Bob's client has slixmpp's caps and PEP plugins, as stock clients have their own.
    bob = PubsubClient(f"bob@{peer}", f"bob@{peer}/fed", args.password, args.ca,
                       plugins=("xep_0115", "xep_0163"))
    admin = PubsubClient(f"admin@{peer}", f"admin@{peer}/fed", args.password, args.ca)
    clients = (alice, bob, admin)
    try:
        await alice.login(*HYDRANT, T)
        await bob.login(ip, 15222, T)
        await admin.login(ip, 15222, T)
        for c in clients:
            await c.get_roster()  # RFC 6121 2.1.6: an "interested" resource gets pushes
            c.send_presence()
        step("logged in on both servers")

        # 1. A message from the peer to hydrant.test, and the answer back.
        tok = uuid.uuid4().hex[:8]
        bob.send_message(mto=alice_jid, mbody=f"hello {tok}", mtype="chat")
        m = await alice.messages.wait(lambda m: m["body"] == f"hello {tok}", T, "bob's message")
        check(m["from"].startswith(f"bob@{peer}"), f"message from {m['from']}")
        alice.send_message(mto=m["from"], mbody=f"hi {tok}", mtype="chat")
        m = await bob.messages.wait(lambda m: m["body"] == f"hi {tok}", T, "alice's answer")
        check(m["from"] == f"{alice_jid}/fed", f"answer from {m['from']}")
        step(f"{peer}: messages cross both ways")

        # 2. A user of the peer subscribes to a node of pubsub.hydrant.test and receives
        #    what is published there.
        node = f"news-{tok}"
        await expect_ok("create on pubsub.hydrant.test",
                        alice["xep_0060"].create_node("pubsub.hydrant.test", node))
        await expect_ok("bob subscribes to pubsub.hydrant.test",
                        bob["xep_0060"].subscribe("pubsub.hydrant.test", node, timeout=T))
        for i in range(3):
            await expect_ok(f"publish {i}", alice["xep_0060"].publish(
                "pubsub.hydrant.test", node, id=f"i{i}", payload=atom_entry(i, tok, 2048)))
        for i in range(3):
            e = await bob.events.wait(
                lambda e, i=i: e["node"] == node and e["id"] == f"i{i}", T, f"item i{i} at bob")
            check(e["from"] == "pubsub.hydrant.test", f"event from {e['from']}")
        step(f"{peer}: its user receives every item of a pubsub.hydrant.test node")

        # 3. A hydrant.test user subscribes to a node of the peer's pubsub service.
        pnode = f"feed-{tok}"
        await expect_ok(f"create on {svc}", admin["xep_0060"].create_node(svc, pnode))
        await expect_ok(f"alice subscribes to {svc}",
                        alice["xep_0060"].subscribe(svc, pnode, timeout=T))
        await expect_ok(f"publish on {svc}", admin["xep_0060"].publish(
            svc, pnode, id="p1", payload=atom_entry(1, tok, 512)))
        e = await alice.events.wait(
            lambda e: e["node"] == pnode and e["id"] == "p1", T, f"{svc}'s item at alice")
        check(e["from"] == svc, f"event from {e['from']}")
        step(f"{peer}: a hydrant.test user receives an item of a {svc} node")

        # 4. Presence subscription across: alice asks bob, bob approves.
        alice.send_presence(pto=f"bob@{peer}", ptype="subscribe")
        await bob.presences.wait(
            lambda p: p["from"] == alice_jid and p["type"] == "subscribe",
            T, "alice's subscription request at bob")
        bob.send_presence(pto=alice_jid, ptype="subscribed")
        await alice.roster_pushes.wait(
            lambda r: r["jid"] == f"bob@{peer}" and r["subscription"] in ("to", "both"),
            T, "the roster push for the approved subscription")
        step(f"{peer}: presence subscription hydrant.test -> {peer} approved")

        # 5. PEP across servers (XEP-0163): bob gets alice's presence (her PEP nodes'
        #    default access model is "presence"), subscribes to her node from his server
        #    and receives every item she publishes next.
        bob.send_presence(pto=alice_jid, ptype="subscribe")
        await alice.presences.wait(
            lambda p: p["from"] == f"bob@{peer}" and p["type"] == "subscribe",
            T, "bob's subscription request at alice")
        alice.send_presence(pto=f"bob@{peer}", ptype="subscribed")
        await bob.roster_pushes.wait(
            lambda r: r["jid"] == alice_jid and r["subscription"] in ("to", "both"),
            T, "bob's roster push for alice")
        pep = "urn:example:federation:status"
        await expect_ok("alice creates her PEP node by publishing", alice["xep_0060"].publish(
            alice_jid, pep, id="s0", payload=atom_entry(0, tok, 256)))
        await expect_ok(f"bob subscribes to alice's PEP node from {peer}",
                        bob["xep_0060"].subscribe(alice_jid, pep, timeout=T))
        for i in (1, 2):
            await expect_ok(f"alice publishes s{i}", alice["xep_0060"].publish(
                alice_jid, pep, id=f"s{i}", payload=atom_entry(i, tok, 256)))
        for i in (1, 2):
            e = await bob.events.wait(
                lambda e, i=i: e["node"] == pep and e["id"] == f"s{i}", T, f"PEP item s{i} at bob")
            check(e["from"] == alice_jid, f"PEP event from {e['from']}")
        step(f"{peer}: its user receives every item of a hydrant.test user's PEP node")

        # 6. PEP by +notify (XEP-0163 4.3), as stock clients get avatars and OMEMO device
        #    lists: bob's client adds NODE+notify to its caps and sends presence; hydrant
        #    learns it from the presence bob's server sends alice (asking bob's client,
        #    which slixmpp answers), sends alice's last item, then each new one, with no
        #    subscription.
        mood = "urn:example:federation:mood"
        await expect_ok("alice publishes n0", alice["xep_0060"].publish(
            alice_jid, mood, id="n0", payload=atom_entry(0, tok, 256)))
        bob["xep_0030"].add_feature(f"{mood}+notify")
        await bob["xep_0115"].update_caps()  # new ver, broadcast in presence
        # Matched on the sender too: the account of an earlier run (same peer account for
        # bob, still alice's contact there) legitimately sends its own last mood.
        await bob.events.wait(
            lambda e: e["node"] == mood and e["id"] == "n0" and e["from"] == alice_jid,
            T, "alice's last item by +notify")
        await expect_ok("alice publishes n1", alice["xep_0060"].publish(
            alice_jid, mood, id="n1", payload=atom_entry(1, tok, 256)))
        await bob.events.wait(
            lambda e: e["node"] == mood and e["id"] == "n1" and e["from"] == alice_jid,
            T, "alice's next item by +notify")
        step(f"{peer}: its user gets a hydrant.test user's PEP events by +notify, unsubscribed")
    finally:
        for c in clients:
            c.disconnect()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--peer", required=True, choices=sorted(PEERS))
    p.add_argument("--ca", required=True)
    p.add_argument("--tag", default="", help="suffix of the hydrant account's name")
    p.add_argument("--password", required=True)
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    setup_logging(a.debug)
    try:
        asyncio.run(main(a))
    except Failure as f:
        print(f"FEDERATION {a.peer} FAIL: {f}", flush=True)
        sys.exit(1)
    print(f"FEDERATION {a.peer} PASS", flush=True)

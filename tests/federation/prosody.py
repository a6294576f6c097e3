#!/usr/bin/python3
"""hydrant.test <-> prosody.test over s2s, with stock slixmpp clients on both sides.

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
PROSODY = ("127.0.0.2", 15222)


async def main(args):
    alice = PubsubClient("alice@hydrant", "alice@hydrant.test/fed", args.password, args.ca)
    bob = PubsubClient("bob@prosody", "bob@prosody.test/fed", args.password, args.ca)
    admin = PubsubClient("admin@prosody", "admin@prosody.test/fed", args.password, args.ca)
    clients = (alice, bob, admin)
    try:
        await alice.login(*HYDRANT, T)
        await bob.login(*PROSODY, T)
        await admin.login(*PROSODY, T)
        for c in clients:
            await c.get_roster()  # RFC 6121 2.1.6: an "interested" resource gets pushes
            c.send_presence()
        step("logged in on both servers")

        # 1. A message from prosody.test to hydrant.test, and the answer back.
        tok = uuid.uuid4().hex[:8]
        bob.send_message(mto="alice@hydrant.test", mbody=f"hello {tok}", mtype="chat")
        m = await alice.messages.wait(lambda m: m["body"] == f"hello {tok}", T, "bob's message")
        check(m["from"].startswith("bob@prosody.test"), f"message from {m['from']}")
        alice.send_message(mto=m["from"], mbody=f"hi {tok}", mtype="chat")
        m = await bob.messages.wait(lambda m: m["body"] == f"hi {tok}", T, "alice's answer")
        check(m["from"] == "alice@hydrant.test/fed", f"answer from {m['from']}")
        step("messages cross both ways")

        # 2. A user of prosody.test subscribes to a node of pubsub.hydrant.test and
        #    receives what is published there.
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
        step("a prosody.test user receives every item of a pubsub.hydrant.test node")

        # 3. A hydrant.test user subscribes to a node of pubsub.prosody.test.
        pnode = f"feed-{tok}"
        await expect_ok("create on pubsub.prosody.test",
                        admin["xep_0060"].create_node("pubsub.prosody.test", pnode))
        await expect_ok("alice subscribes to pubsub.prosody.test",
                        alice["xep_0060"].subscribe("pubsub.prosody.test", pnode, timeout=T))
        await expect_ok("publish on prosody", admin["xep_0060"].publish(
            "pubsub.prosody.test", pnode, id="p1", payload=atom_entry(1, tok, 512)))
        e = await alice.events.wait(
            lambda e: e["node"] == pnode and e["id"] == "p1", T, "prosody's item at alice")
        check(e["from"] == "pubsub.prosody.test", f"event from {e['from']}")
        step("a hydrant.test user receives an item of a pubsub.prosody.test node")

        # 4. Presence subscription across: alice asks bob, bob approves.
        alice.send_presence(pto="bob@prosody.test", ptype="subscribe")
        await bob.presences.wait(
            lambda p: p["from"] == "alice@hydrant.test" and p["type"] == "subscribe",
            T, "alice's subscription request at bob")
        bob.send_presence(pto="alice@hydrant.test", ptype="subscribed")
        await alice.roster_pushes.wait(
            lambda r: r["jid"] == "bob@prosody.test" and r["subscription"] in ("to", "both"),
            T, "the roster push for the approved subscription")
        step("presence subscription hydrant.test -> prosody.test approved")
    finally:
        for c in clients:
            c.disconnect()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--ca", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--debug", action="store_true")
    a = p.parse_args()
    setup_logging(a.debug)
    try:
        asyncio.run(main(a))
    except Failure as f:
        print(f"FEDERATION FAIL: {f}", flush=True)
        sys.exit(1)
    print("FEDERATION PASS", flush=True)

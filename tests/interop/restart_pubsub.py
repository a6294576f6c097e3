#!/usr/bin/python3
"""Interop test: PubSub state survives `kill -9` of the server (driven by run.sh).

--phase before (server running):
  A creates a node (max_items 10000), B subscribes; A publishes K items one at
  a time, each acknowledged, and B receives them all; B logs out. Then A keeps
  publishing pipelined (up to --window unacknowledged iqs) and records every
  acknowledged id; once --storm-ready acks are in, it writes --ready-file, and
  run.sh SIGKILLs the server in mid-storm. When the connection drops, the
  acknowledged and the merely sent ids go to --state (JSON).
--phase after (server restarted on the same config and data dir):
  A lists the node with RSM (max 100 per page): every acknowledged id is
  there with its exact payload (sent but unacknowledged ones may or may not
  be); the node configuration survived. B logs in again: its subscription is
  still listed, and A's next publish reaches it.

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import json
import sys
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slixmpp.exceptions import IqError, IqTimeout  # noqa: E402

from xmpputil import Failure, check, setup_logging, step  # noqa: E402
from pubsubutil import (  # noqa: E402
    PubsubClient, atom_entry, config_form, entry_digest, expect_ok, form_values, item_ids, iq_error)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phase", choices=("before", "after"), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--service", help="pubsub service (default pubsub.<domain>)")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--users", required=True, help="two existing localparts: A,B")
    p.add_argument("--password", required=True)
    p.add_argument("--state", required=True, help="JSON file passed from phase before to phase after")
    p.add_argument("--ready-file", help="(before) created once the storm has --storm-ready acks")
    p.add_argument("--items", type=int, default=30, help="(before) items published one by one")
    p.add_argument("--window", type=int, default=16, help="(before) storm: most unacknowledged publishes")
    p.add_argument("--storm-ready", type=int, default=100, help="(before) storm acks before --ready-file")
    p.add_argument("--storm-max", type=int, default=5000, help="(before) storm: give up after this many")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    return p.parse_args()


def item_n(iid):
    """Items are named <prefix><n>-<tok>; n picks the deterministic payload."""
    return int(iid.split("-")[0].lstrip("ps"))


async def phase_before(args, svc):
    t = args.timeout
    tok = uuid.uuid4().hex[:8]
    node = f"restart-{tok}"
    a = PubsubClient("A", f"{args.users[0]}@{args.domain}/rs-{tok}", args.password, args.ca)
    b = PubsubClient("B", f"{args.users[1]}@{args.domain}/rs-{tok}", args.password, args.ca)
    try:
        await asyncio.gather(a.login(args.host, args.port, t), b.login(args.host, args.port, t))
        a.send_presence()
        b.send_presence()
        title = f"Survives kill -9 ({tok})"
        await expect_ok(f"A: create {node}", a["xep_0060"].create_node(svc, node, config=config_form(a, {
            "pubsub#max_items": "10000", "pubsub#title": title, "pubsub#access_model": "open"}), timeout=t))
        await expect_ok(f"B: subscribe to {node}", b["xep_0060"].subscribe(svc, node, timeout=t))
        step(f"A: created {svc}/{node}; B subscribed")

        acked = []
        for n in range(args.items):
            iid = f"s{n}-{tok}"
            await expect_ok(f"A: publish {iid}",
                            a["xep_0060"].publish(svc, node, id=iid, payload=atom_entry(n, tok, 1024), timeout=t))
            acked.append(iid)
        await b.events.wait(lambda e: e["kind"] == "item" and e["id"] == acked[-1], t,
                            f"notification of {acked[-1]} at B")
        got = [e["id"] for e in b.items_of(node)]
        check(got == acked, f"B: received {got}, expected {acked}")
        step(f"A: {len(acked)} items published one by one, each acknowledged; B received all of them")
        await b.logout(t)
        step("B: logged out (its subscription stays)")

        # --- storm: pipelined publishes until the server is killed -------------
        sent, storm_acked = [], []
        window = asyncio.Semaphore(args.window)
        ready_written = False
        errors = []

        async def one(n):
            nonlocal ready_written
            iid = f"p{n}-{tok}"
            try:
                await a["xep_0060"].publish(svc, node, id=iid, payload=atom_entry(n, tok, 1024), timeout=30)
            except (IqError, IqTimeout) as exc:
                if not a.gone.done():
                    errors.append(f"{iid}: {iq_error(exc)}")
                return
            finally:
                window.release()
            storm_acked.append(iid)
            if not ready_written and len(storm_acked) >= args.storm_ready and args.ready_file:
                Path(args.ready_file).write_text(f"{len(storm_acked)} storm publishes acknowledged\n")
                ready_written = True
                step(f"A: storm under way ({len(storm_acked)} acknowledged) -> {args.ready_file}")

        tasks = []
        n = 1000
        while not a.gone.done() and len(sent) < args.storm_max:
            acquire = asyncio.ensure_future(window.acquire())
            done, _ = await asyncio.wait({acquire, a.gone}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if acquire not in done:
                acquire.cancel()
                break
            if a.gone.done():
                window.release()
                break
            sent.append(f"p{n}-{tok}")
            tasks.append(asyncio.ensure_future(one(n)))
            n += 1
            if errors:
                raise Failure(f"A: storm publish refused: {errors[0]}")
        check(a.gone.done(), f"A: the connection is still up after {len(sent)} storm publishes "
                             f"(the server was not killed?)")
        # The unacknowledged iqs end with a timeout or are dropped: never count them.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        check(not errors, f"A: storm publishes refused: {errors[:3]}")
        check(ready_written, f"A: the connection dropped after only {len(storm_acked)} storm acks")
        step(f"A: connection lost (server killed): storm sent {len(sent)}, "
             f"{len(storm_acked)} acknowledged, {len(sent) - len(storm_acked)} in flight")
        Path(args.state).write_text(json.dumps({
            "tok": tok, "node": node, "title": title,
            "acked": acked + storm_acked, "sent": acked + sent,
        }))
    finally:
        await asyncio.gather(*(x.logout(2) for x in (a, b) if not x.gone.done()), return_exceptions=True)


async def phase_after(args, svc):
    t = args.timeout
    st = json.loads(Path(args.state).read_text())
    tok, node, acked, sent = st["tok"], st["node"], st["acked"], st["sent"]
    a = PubsubClient("A", f"{args.users[0]}@{args.domain}/rs2-{tok}", args.password, args.ca)
    b = PubsubClient("B", f"{args.users[1]}@{args.domain}/rs2-{tok}", args.password, args.ca)
    try:
        await a.login(args.host, args.port, t)
        step(f"A: logged in again after the restart ({len(acked)} acknowledged items to find)")

        resp = await expect_ok("A: node config after restart", a["xep_0060"].get_node_config(svc, node, timeout=t))
        cfg = form_values(resp["pubsub_owner"]["configure"]["form"])
        check(cfg.get("pubsub#title") == st["title"], f"A: title after restart {cfg.get('pubsub#title')!r}")
        check(str(cfg.get("pubsub#max_items")) in ("10000", "max"),
              f"A: max_items after restart {cfg.get('pubsub#max_items')!r}")

        found, payloads, after, pages = [], {}, None, 0
        while True:
            iq = a.Iq(sto=svc, stype="get")
            iq["pubsub"]["items"]["node"] = node
            iq["pubsub"]["rsm"]["max"] = "100"
            if after:
                iq["pubsub"]["rsm"]["after"] = after
            resp = await expect_ok(f"A: items page {pages + 1}", iq.send(timeout=t))
            page = item_ids(resp)
            if not page:
                break
            pages += 1
            found += page
            for it in resp["pubsub"]["items"]:
                children = list(it.xml)
                payloads[it["id"]] = entry_digest(children[0]) if children else None
            after = resp["pubsub"]["rsm"]["last"]
            check(after and pages < 1000, "A: RSM paging without <last/>")
        check(len(set(found)) == len(found), "A: duplicate items after restart")
        missing = [i for i in acked if i not in payloads]
        check(not missing, f"A: {len(missing)} acknowledged items lost by kill -9: {missing[:10]}")
        bad = [i for i in acked if payloads[i] != entry_digest(atom_entry(item_n(i), tok, 1024))]
        check(not bad, f"A: acknowledged items with a different payload after restart: {bad[:10]}")
        unknown = [i for i in found if i not in sent]
        check(not unknown, f"A: items that were never published: {unknown[:10]}")
        extra = len(found) - len(acked)
        step(f"A: all {len(acked)} acknowledged items are there with their payloads "
             f"({pages} RSM pages; {extra} of {len(sent) - len(acked)} unacknowledged in-flight publishes "
             f"also made it, which is allowed)")

        await b.login(args.host, args.port, t)
        b.send_presence()
        resp = await expect_ok("B: subscriptions after restart", b["xep_0060"].get_subscriptions(svc, timeout=t))
        subs = [(s["node"], s["subscription"]) for s in resp["pubsub"]["subscriptions"]]
        check((node, "subscribed") in subs, f"B: subscriptions after restart {subs}, expected {node} subscribed")
        step(f"B: logged in again; its subscription survived: {subs}")

        iid = f"post-restart-{tok}"
        await expect_ok(f"A: publish {iid}", a["xep_0060"].publish(
            svc, node, id=iid, payload=atom_entry(99999, tok, 1024), timeout=t))
        ev = await b.events.wait(lambda e: e["kind"] == "item" and e["id"] == iid, t,
                                 f"notification of {iid} at B after the restart")
        check(entry_digest(ev["payload"]) == entry_digest(atom_entry(99999, tok, 1024)),
              "B: post-restart notification payload differs")
        step(f"A: published {iid} after the restart; B received it (subscription delivers)")

        await expect_ok(f"A: delete {node}", a["xep_0060"].delete_node(svc, node, timeout=t))
    finally:
        await asyncio.gather(*(x.logout(2) for x in (a, b) if not x.gone.done()), return_exceptions=True)


def main():
    args = parse_args()
    args.users = args.users.split(",")
    setup_logging(args.debug)
    svc = args.service or f"pubsub.{args.domain}"
    try:
        asyncio.run(phase_before(args, svc) if args.phase == "before" else phase_after(args, svc))
    except Failure as exc:
        step(f"FAIL: {exc}")
        return 1
    except Exception:
        traceback.print_exc()
        step("FAIL: unexpected exception (traceback above)")
        return 1
    step(f"PASS: restart phase '{args.phase}' passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

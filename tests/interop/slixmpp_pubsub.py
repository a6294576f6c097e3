#!/usr/bin/python3
"""Interop test: slixmpp's XEP-0060 plugin against the server's pubsub service.

Three accounts A, B, C on pubsub.<domain>:
  1. A creates a node with a configure form (max_items 100, title,
     notify_retract 1, access_model open) and reads the configuration back;
  2. B, C and A subscribe;
  3. A publishes N (default 30) Atom entries of ~2 KB with ids, one at a time,
     each acknowledged; every subscriber receives exactly those items, in
     publish order, with the payload intact;
  4. A retracts two items with notify='true': every subscriber gets both
     retract events;
  5. items with max_items=5: the 5 newest, newest first (hydrant's documented
     order, pubsub/src/service/items.rs);
  6. RSM paging with max=10 from the newest towards older items (<after/>):
     all items, no gaps, no duplicates, count and <first index/> consistent;
     slixmpp's own RSM iterator (get_items(iterator=True)) walks the same;
  7. refusals: B publishing to A's node -> forbidden; subscribing to a node
     that does not exist -> item-not-found;
  8. purge: purge event at every subscriber, items empty afterwards;
  9. delete: delete event at every subscriber, items -> item-not-found.

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import sys
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slixmpp.xmlstream import ET  # noqa: E402

from xmpputil import Failure, check, setup_logging, step  # noqa: E402
from pubsubutil import (  # noqa: E402
    PubsubClient, atom_entry, config_form, entry_digest, expect_error, expect_ok,
    form_values, item_ids)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--service", help="pubsub service (default pubsub.<domain>)")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--users", required=True, help="three existing localparts: A,B,C")
    p.add_argument("--password", required=True)
    p.add_argument("--items", type=int, default=30, help="items A publishes (>= 25)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    p.add_argument("--any-order", action="store_true",
                   help="item lists may come in any order (run.sh --reference-prosody: Prosody "
                        "lists oldest first); default: hydrant's documented newest first")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    return p.parse_args()


async def run(args):
    t = args.timeout
    svc = args.service or f"pubsub.{args.domain}"
    tok = uuid.uuid4().hex[:8]
    node = f"photos-{tok}"
    users = args.users.split(",")
    check(len(users) == 3, "--users needs three localparts")
    check(args.items >= 25, "--items must be at least 25")

    clients = [PubsubClient(label, f"{u}@{args.domain}/ps-{tok}", args.password, args.ca)
               for label, u in zip("ABC", users)]
    a, b, c = clients
    subs = (a, b, c)
    try:
        await asyncio.gather(*(x.login(args.host, args.port, t) for x in clients))
        for x in clients:
            x.send_presence()
        step(f"A, B, C logged in: {', '.join(x.boundjid.full for x in clients)}")

        # --- 1. create with a configure form ---------------------------------
        title = f"Photo stream {tok}"
        form = config_form(a, {
            "pubsub#max_items": "100",
            "pubsub#title": title,
            "pubsub#notify_retract": "1",
            "pubsub#access_model": "open",
        })
        resp = await expect_ok(f"A: create {node} on {svc}",
                               a["xep_0060"].create_node(svc, node, config=form, timeout=t))
        created = resp["pubsub"]["create"]["node"] or node
        check(created == node, f"A: server created {created!r}, asked for {node!r}")
        resp = await expect_ok("A: get node config", a["xep_0060"].get_node_config(svc, node, timeout=t))
        cfg = form_values(resp["pubsub_owner"]["configure"]["form"])
        for var, want in (("pubsub#max_items", "100"), ("pubsub#title", title),
                          ("pubsub#notify_retract", True), ("pubsub#access_model", "open")):
            got = cfg.get(var)
            check(got == want or str(got) == str(want) or (want is True and got in ("1", "true")),
                  f"A: node config {var} = {got!r}, expected {want!r} (config: {cfg})")
        step(f"A: created {svc}/{node}; config read back: max_items={cfg['pubsub#max_items']}, "
             f"title={cfg['pubsub#title']!r}, notify_retract={cfg['pubsub#notify_retract']}, "
             f"access_model={cfg['pubsub#access_model']}")

        # --- 2. B, C, A subscribe --------------------------------------------
        for x in (b, c, a):
            resp = await expect_ok(f"{x.label}: subscribe to {node}",
                                   x["xep_0060"].subscribe(svc, node, timeout=t))
            sub = resp["pubsub"]["subscription"]
            check(sub["subscription"] == "subscribed",
                  f"{x.label}: subscription state {sub['subscription']!r}, expected 'subscribed'")
            check(sub["jid"].bare == x.boundjid.bare, f"{x.label}: subscribed JID {sub['jid']}")
            step(f"{x.label}: subscribed ({sub['jid']}, subid {sub['subid'] or '-'})")

        # --- 3. publish N ~2 KB Atom entries ---------------------------------
        ids, digests = [], {}
        size = 0
        for n in range(args.items):
            iid = f"p{n:03d}-{tok}"
            entry = atom_entry(n, tok)
            size = len(ET.tostring(entry))
            resp = await expect_ok(f"A: publish item {iid}",
                                   a["xep_0060"].publish(svc, node, id=iid, payload=entry, timeout=t))
            got = resp["pubsub"]["publish"]["item"]["id"]
            check(got in ("", iid), f"A: publish {iid} acknowledged with id {got!r}")
            ids.append(iid)
            digests[iid] = entry_digest(entry)
        step(f"A: published {len(ids)} Atom entries (~{size} bytes each), every one acknowledged")

        last = ids[-1]
        for x in subs:
            await x.events.wait(lambda e: e["kind"] == "item" and e["id"] == last, t,
                                f"notification of {last} at {x.label}")
            got = x.items_of(node)
            got_ids = [e["id"] for e in got]
            check(got_ids == ids, f"{x.label}: received items {got_ids}, expected exactly {ids} in order")
            for e in got:
                check(entry_digest(e["payload"]) == digests[e["id"]],
                      f"{x.label}: payload of {e['id']} differs from what was published")
                check(e["from"] == svc, f"{x.label}: notification from {e['from']}, expected {svc}")
            step(f"{x.label}: received exactly the {len(got)} items in publish order, payloads intact "
                 f"(type {got[0]['type']}, to {got[0]['to']})")

        # --- 4. retract with notify ------------------------------------------
        retracted = [ids[3], ids[10]]
        for rid in retracted:
            await expect_ok(f"A: retract {rid}",
                            a["xep_0060"].retract(svc, node, rid, notify=True, timeout=t))
        for x in subs:
            for rid in retracted:
                await x.events.wait(lambda e, rid=rid: e["kind"] == "retract" and e["id"] == rid, t,
                                    f"retract event for {rid} at {x.label}")
            rs = [e["id"] for e in x.items_of(node, "retract")]
            check(rs == retracted, f"{x.label}: retract events {rs}, expected {retracted}")
        remaining = [i for i in ids if i not in retracted]
        step(f"A: retracted {retracted}; A, B, C got both retract events")

        # --- 5. max_items=5 ------------------------------------------------------
        resp = await expect_ok("B: items max_items=5",
                               b["xep_0060"].get_items(svc, node, max_items=5, timeout=t))
        got = item_ids(resp)
        newest5 = list(reversed(remaining[-5:]))
        if args.any_order:
            check(sorted(got) == sorted(newest5), f"B: max_items=5 returned {got}, expected the 5 newest {newest5}")
        else:
            check(got == newest5, f"B: max_items=5 returned {got}, expected the 5 newest, newest first: {newest5}")
        for it in resp["pubsub"]["items"]:
            payload = list(it.xml)
            check(payload and entry_digest(payload[0]) == digests[it["id"]],
                  f"B: item {it['id']} retrieved with a different payload")
        step(f"B: max_items=5 -> the 5 newest{'' if args.any_order else ', newest first'}: {got}")

        # --- 6. RSM paging, max=10 --------------------------------------------------
        newest_first = list(reversed(remaining))
        walked, after, pages = [], None, 0
        while True:
            iq = c.Iq(sto=svc, stype="get")
            iq["pubsub"]["items"]["node"] = node
            iq["pubsub"]["rsm"]["max"] = "10"
            if after is not None:
                iq["pubsub"]["rsm"]["after"] = after
            resp = await expect_ok(f"C: RSM page {pages + 1} (after {after})", iq.send(timeout=t))
            page = item_ids(resp)
            rsm = resp["pubsub"]["rsm"]
            check(rsm.xml is not None and rsm["count"] != "",
                  f"C: RSM page {pages + 1} has no <set><count/>: {resp}")
            check(int(rsm["count"]) == len(remaining),
                  f"C: RSM count {rsm['count']}, expected {len(remaining)}")
            if not page:
                check(not rsm["first"] and not rsm["last"],
                      f"C: empty page with first/last {rsm['first']}/{rsm['last']}")
                break
            pages += 1
            check(len(page) <= 10, f"C: page {pages} has {len(page)} items, asked for max 10")
            check(rsm["first"] == page[0] and rsm["last"] == page[-1],
                  f"C: page {pages}: <first>{rsm['first']}</first> <last>{rsm['last']}</last> "
                  f"do not match the items {page[0]}..{page[-1]}")
            check(args.any_order or rsm["first_index"] == str(len(walked)),
                  f"C: page {pages}: <first index='{rsm['first_index']}'>, expected {len(walked)}")
            walked += page
            after = rsm["last"]
            check(pages <= len(remaining), "C: RSM paging does not end")
        check(len(set(walked)) == len(walked), f"C: RSM walk has duplicates: {walked}")
        if args.any_order and walked == remaining:
            newest_first = remaining  # oldest first, consistently
        check(walked == newest_first,
              f"C: RSM walk {walked} != all items newest first {newest_first} "
              f"(missing {sorted(set(newest_first) - set(walked))})")
        step(f"C: RSM max=10 walked {len(walked)} items in {pages} pages, "
             f"{'newest to oldest' if walked[0] == remaining[-1] else 'oldest to newest'}, "
             f"no gaps, no duplicates")

        # the plugin's own iterator (xep_0059 ResultIterator, amount 10)
        walked2, pages2 = [], 0
        async for resp in c["xep_0060"].get_items(svc, node, iterator=True):
            walked2 += item_ids(resp)
            pages2 += 1
            check(pages2 <= len(remaining), "C: slixmpp's RSM iterator does not end")
        check(walked2 == walked, f"C: slixmpp RSM iterator walked {walked2}, expected {newest_first}")
        step(f"C: slixmpp's RSM iterator (get_items(iterator=True)) walked the same {len(walked2)} "
             f"items in {pages2} pages")

        # --- 7. refusals -------------------------------------------------------------
        cond = await expect_error("B: publish to A's node", b["xep_0060"].publish(
            svc, node, id=f"intruder-{tok}", payload=atom_entry(999, tok, 512), timeout=t), "forbidden")
        step(f"B: publish to A's node refused: {cond}")
        missing = f"no-such-node-{tok}"
        cond = await expect_error(f"B: subscribe to {missing}",
                                  b["xep_0060"].subscribe(svc, missing, timeout=t), "item-not-found")
        step(f"B: subscribe to a missing node refused: {cond}")
        resp = await expect_ok("A: items after refusals", a["xep_0060"].get_items(svc, node, timeout=t))
        check(f"intruder-{tok}" not in item_ids(resp), "B's refused publish is in the node")

        # --- 8. purge -------------------------------------------------------------------
        await expect_ok(f"A: purge {node}", a["xep_0060"].purge(svc, node, timeout=t))
        for x in subs:
            await x.events.wait(lambda e: e["kind"] == "purge" and e["node"] == node, t,
                                f"purge event at {x.label}")
        resp = await expect_ok("B: items after purge", b["xep_0060"].get_items(svc, node, timeout=t))
        check(item_ids(resp) == [], f"B: items after purge: {item_ids(resp)}")
        step("A: purged; A, B, C got the purge event; items now empty")

        # --- 9. delete ---------------------------------------------------------------------
        await expect_ok(f"A: delete {node}", a["xep_0060"].delete_node(svc, node, timeout=t))
        for x in subs:
            await x.events.wait(lambda e: e["kind"] == "delete" and e["node"] == node, t,
                                f"delete event at {x.label}")
        cond = await expect_error("B: items of the deleted node",
                                  b["xep_0060"].get_items(svc, node, timeout=t), "item-not-found")
        step(f"A: deleted; A, B, C got the delete event; items now {cond}")

        stray = [e for x in subs for e in x.events.items if e["node"] != node]
        check(not stray, f"events for other nodes: {stray}")
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
    step("PASS: all slixmpp_pubsub steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Interop test: XEP-0138 zlib stream compression with slixmpp clients.

slixmpp 1.8.3 ships an xep_0138 plugin that cannot work under asyncio. It does not even
import (it imports `RestartStream` from `slixmpp.xmlstream`, which no longer has it), it
swaps a socket object (`set_socket`, gone since slixmpp moved to asyncio transports) and
it sends with `send(now=True)`. Patched here, in the test only, the smallest way that
keeps the plugin's stanza classes: a stand-in `RestartStream` lets the module import
(nothing raises it), its feature handler sends `<compress/>` with `send_raw`, and its
`<compressed/>` handler wraps the asyncio transport's `write` in a zlib compressor (sync
flush per write, as the plugin's ZlibSocket did) and the protocol's `data_received` in a
zlib decompressor (Python's zlib: a stock inflater that also checks what hydrant
writes), then restarts the stream as slixmpp's SASL feature does.

A (plain) creates a node on pubsub.DOMAIN; B and C negotiate compression after SASL,
bind, subscribe, and must receive all ITEMS items (~2 KB Atom entries) intact and in
order; the bytes they read must be less than the inflated bytes (compression in use),
and a message B sends compressed must reach A.

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import sys
import traceback
import uuid
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import slixmpp.xmlstream  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import StanzaPath  # noqa: E402

# The first patch: the plugin module's import of a class slixmpp 1.8 no longer has.
if not hasattr(slixmpp.xmlstream, "RestartStream"):
    slixmpp.xmlstream.RestartStream = type("RestartStream", (Exception,), {})
import slixmpp.plugins.xep_0138  # noqa: E402,F401  (registers the plugin)

from pubsubutil import PubsubClient, atom_entry, expect_ok  # noqa: E402
from xmpputil import Failure, check, setup_logging, step  # noqa: E402

NS_COMPRESS = "http://jabber.org/protocol/compress"


class ZlibClient(PubsubClient):
    """slixmpp with its xep_0138 plugin, patched to work on asyncio transports."""

    def __init__(self, label, jid, password, ca_file):
        super().__init__(label, jid, password, ca_file, plugins=("xep_0138",))
        plugin = self["xep_0138"]
        order = plugin.config.get("order", 5)
        self.unregister_feature("compression", order)
        self.register_feature("compression", self._compression_feature, restart=True, order=order)
        self.remove_handler("Compressed")
        self.register_handler(Callback("Compressed", StanzaPath("compressed"), self._compressed,
                                       instream=True))
        self.offered = None
        self.compressed = False
        self.wire_in = 0
        self.plain_in = 0

    def _compression_feature(self, features):
        methods = features["compression"]["methods"]
        self.offered = methods
        if "zlib" not in methods:
            return False
        self.send_raw(f"<compress xmlns='{NS_COMPRESS}'><method>zlib</method></compress>")
        return True

    def _compressed(self, _stanza):
        self.features.add("compression")
        self.compressed = True
        transport = self.transport
        comp = zlib.compressobj()
        decomp = zlib.decompressobj()

        class Deflating:
            def write(self, data):
                transport.write(comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))

            def __getattr__(self, name):
                return getattr(transport, name)

        self.transport = Deflating()
        plain_received = type(self).data_received.__get__(self)

        def data_received(data):
            self.wire_in += len(data)
            out = decomp.decompress(data)
            self.plain_in += len(out)
            plain_received(out)

        self.data_received = data_received
        self.init_parser()
        self.send_raw(self.stream_header)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--ca", required=True)
    p.add_argument("--users", required=True, help="three existing localparts: A,B,C")
    p.add_argument("--password", required=True)
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--timeout", type=float, default=15.0)
    p.add_argument("--debug", action="store_true")
    return p.parse_args()


async def run(args):
    t = args.timeout
    dom = args.domain
    svc = f"pubsub.{dom}"
    tok = uuid.uuid4().hex[:8]
    ua, ub, uc = args.users.split(",")
    a = PubsubClient("A", f"{ua}@{dom}/zlib-{tok}", args.password, args.ca)
    subs = [ZlibClient(label, f"{u}@{dom}/zlib-{tok}", args.password, args.ca)
            for label, u in (("B", ub), ("C", uc))]
    clients = [a, *subs]
    try:
        await asyncio.gather(*(c.login(args.host, args.port, t) for c in clients))
        for s in subs:
            check(s.offered is not None and "zlib" in s.offered,
                  f"{s.label}: zlib not offered after authentication ({s.offered})")
            check(s.compressed, f"{s.label}: the stream was not compressed")
        step("A logged in; B and C negotiated zlib (XEP-0138) after SASL and bound compressed")

        # Available (a bare-JID subscription delivers to available resources), then
        # subscribed; the presence is handled before the subscribe, in stream order.
        for s in subs:
            s.send_presence()
        node = f"zlib-{tok}"
        await expect_ok("A creates the node", a["xep_0060"].create_node(svc, node))
        for s in subs:
            await expect_ok(f"{s.label} subscribes",
                            s["xep_0060"].subscribe(svc, node, timeout=t))
        step(f"B and C subscribed to {svc}/{node} over their compressed streams")

        entries = {}
        for i in range(args.items):
            entry = atom_entry(i, tok, 2048)
            entries[f"i{i}"] = entry
            await expect_ok(f"publish i{i}", a["xep_0060"].publish(svc, node, id=f"i{i}", payload=entry))
        for s in subs:
            last = f"i{args.items - 1}"
            await s.events.wait(lambda e, last=last: e["node"] == node and e["id"] == last, t,
                                f"the last item at {s.label}")
            got = [e["id"] for e in s.events.items if e["node"] == node and e["kind"] == "item"]
            check(got == list(entries), f"{s.label}: items {got}")
            check(s.wire_in < s.plain_in,
                  f"{s.label}: read {s.wire_in} bytes for {s.plain_in} inflated")
            step(f"{s.label}: all {args.items} items in order; read {s.wire_in} bytes on the wire "
                 f"for {s.plain_in} inflated ({s.wire_in / s.plain_in:.2f}x)")

        b = subs[0]
        b.send_message(mto=a.boundjid.full, mbody=f"compressed {tok}", mtype="chat")
        m = await a.messages.wait(lambda m: m["body"] == f"compressed {tok}", t, "B's message")
        check(m["from"] == b.boundjid.full, f"message from {m['from']}")
        step("a message B sent compressed reached A")
    finally:
        for c in clients:
            c.disconnect()


def main():
    args = parse_args()
    setup_logging(args.debug)
    try:
        asyncio.run(run(args))
    except Failure as f:
        print(f"FAIL: {f}", flush=True)
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        print("FAIL: unexpected exception", flush=True)
        sys.exit(1)
    print("PASS: slixmpp with zlib (XEP-0138) receives every notification", flush=True)


if __name__ == "__main__":
    main()

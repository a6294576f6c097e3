"""Shared helpers for the slixmpp PubSub/PEP interop tests (XEP-0060, XEP-0163).

Builds on xmpputil.Client: the stock slixmpp plugins xep_0004 (forms), xep_0059
(RSM) and xep_0060 (pubsub) are registered, and every pubsub event the plugin
raises (publish, retract, purge, delete) is recorded as a plain dict in
`client.events`, one entry per item, so tests can wait for them with timeouts.
"""

import hashlib
import time

from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.plugins.xep_0059 import Set as RsmSet
from slixmpp.plugins.xep_0060.stanza import Pubsub
from slixmpp.xmlstream import ET, register_stanza_plugin

from xmpputil import Client, Failure, Recorder, check

NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_ATOM = "http://www.w3.org/2005/Atom"

# slixmpp 1.8.3 registers RSM (<set/>) only on disco#items; XEP-0060 6.5.4 puts
# it in <pubsub/>. Registering it there is what the plugin's own
# get_items(iterator=True) (xep_0059.iterate(iq, 'pubsub')) relies on.
register_stanza_plugin(Pubsub, RsmSet)


class PubsubClient(Client):
    def __init__(self, label, jid, password, ca_file, plugins=(), **kw):
        super().__init__(label, jid, password, ca_file, **kw)
        for plugin in ("xep_0004", "xep_0059", "xep_0060", *plugins):
            self.register_plugin(plugin)
        self.events = Recorder(f"{label} pubsub events")
        self._seen = []  # message objects already recorded (keeps them alive)
        self.add_event_handler("pubsub_publish", self._on_items)
        self.add_event_handler("pubsub_retract", self._on_items)
        self.add_event_handler("pubsub_purge", lambda m: self._on_node(m, "purge"))
        self.add_event_handler("pubsub_delete", lambda m: self._on_node(m, "delete"))

    def _on_items(self, msg):
        # The plugin raises pubsub_publish/pubsub_retract once per item but hands
        # over the whole message each time: record every message once.
        if any(m is msg for m in self._seen):
            return
        self._seen.append(msg)
        items = msg["pubsub_event"]["items"]
        for it in items:
            kind = "retract" if it.name == "retract" else "item"
            payload = None
            if kind == "item":
                children = list(it.xml)
                payload = children[0] if children else None
            self.events.add({
                "kind": kind,
                "node": items["node"],
                "id": it["id"],
                "payload": payload,
                "from": str(msg["from"]),
                "to": str(msg["to"]),
                "type": msg["type"],
            })

    def _on_node(self, msg, kind):
        self.events.add({
            "kind": kind,
            "node": msg["pubsub_event"][kind]["node"],
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "type": msg["type"],
        })

    def items_of(self, node, kind="item"):
        return [e for e in self.events.items if e["kind"] == kind and e["node"] == node]


def iq_error(exc):
    """'type/condition[/pubsub-condition]' of an IqError, or a description."""
    if isinstance(exc, IqTimeout):
        return "timeout"
    iq = getattr(exc, "iq", None)
    if iq is None:
        return repr(exc)
    err = iq["error"]
    text = f"{err['type']}/{err['condition']}"
    for child in err.xml:
        if child.tag.startswith("{" + NS_PUBSUB_ERRORS + "}"):
            text += "/" + child.tag.split("}", 1)[1]
    return text


async def expect_ok(what, coro):
    try:
        return await coro
    except (IqError, IqTimeout) as exc:
        raise Failure(f"{what}: refused with {iq_error(exc)}") from None


async def expect_error(what, coro, condition, pubsub_condition=None):
    """The request must fail with `condition` (and the pubsub#errors child, if given)."""
    try:
        resp = await coro
    except IqTimeout:
        raise Failure(f"{what}: no reply (timeout), expected an error {condition}") from None
    except IqError as exc:
        err = exc.iq["error"]
        check(err["condition"] == condition,
              f"{what}: error {iq_error(exc)}, expected {condition}")
        if pubsub_condition:
            found = exc.iq.xml.find(f".//{{{NS_PUBSUB_ERRORS}}}{pubsub_condition}")
            check(found is not None, f"{what}: error {iq_error(exc)} lacks <{pubsub_condition}/>")
        return iq_error(exc)
    raise Failure(f"{what}: succeeded ({resp['type']}), expected an error {condition}")


def atom_entry(n, tok, size=2048):
    """An Atom entry of about `size` bytes, like a photo post with a caption."""
    entry = ET.Element(f"{{{NS_ATOM}}}entry")
    ET.SubElement(entry, f"{{{NS_ATOM}}}title").text = f"photo {n} ({tok})"
    ET.SubElement(entry, f"{{{NS_ATOM}}}id").text = f"urn:hydrant:interop:{tok}:{n}"
    ET.SubElement(entry, f"{{{NS_ATOM}}}updated").text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ET.SubElement(entry, f"{{{NS_ATOM}}}link", {
        "rel": "enclosure", "type": "image/jpeg",
        "href": f"https://photos.example/{tok}/{n}.jpg", "length": str(400_000 + n)})
    author = ET.SubElement(entry, f"{{{NS_ATOM}}}author")
    ET.SubElement(author, f"{{{NS_ATOM}}}name").text = "interop"
    # deterministic filler: hex of a hash chain, so every entry differs
    filler, h = [], hashlib.sha256(f"{tok}:{n}".encode()).hexdigest()
    while sum(map(len, filler)) < size - 600:
        filler.append(h)
        h = hashlib.sha256(h.encode()).hexdigest()
    ET.SubElement(entry, f"{{{NS_ATOM}}}content", {"type": "text"}).text = " ".join(filler)
    return entry


def entry_digest(el):
    """What identifies an Atom entry's content: (id, sha256 of the content text)."""
    if el is None or el.tag != f"{{{NS_ATOM}}}entry":
        return None
    ident = el.findtext(f"{{{NS_ATOM}}}id")
    content = el.findtext(f"{{{NS_ATOM}}}content") or ""
    return ident, hashlib.sha256(content.encode()).hexdigest()


def config_form(client, fields):
    """A pubsub#node_config submit form with the given var -> value fields."""
    form = client["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#node_config")
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    return form


def form_values(form):
    return {var: f["value"] for var, f in form.get_fields().items()}


def item_ids(resp):
    return [it["id"] for it in resp["pubsub"]["items"]]


async def mutual_subscription(a, b, t):
    """Presence subscription both ways between a and b (both online, available)."""
    a_bare, b_bare = a.boundjid.bare, b.boundjid.bare
    for x, y in ((a, b), (b, a)):
        x.send_presence(pto=y.boundjid.bare, ptype="subscribe")
        await y.presences.wait(
            lambda p, x=x: p["type"] == "subscribe" and JID(p["from"]).bare == x.boundjid.bare,
            t, f"subscribe from {x.boundjid.bare} at {y.label}")
        y.send_presence(pto=x.boundjid.bare, ptype="subscribed")
        await x.presences.wait(
            lambda p, y=y: p["type"] == "subscribed" and JID(p["from"]).bare == y.boundjid.bare,
            t, f"subscribed from {y.boundjid.bare} at {x.label}")
    await a.roster_pushes.wait(lambda p: p["jid"] == b_bare and p["subscription"] == "both",
                               t, f"roster push subscription='both' for {b_bare} at {a.label}")
    await b.roster_pushes.wait(lambda p: p["jid"] == a_bare and p["subscription"] == "both",
                               t, f"roster push subscription='both' for {a_bare} at {b.label}")

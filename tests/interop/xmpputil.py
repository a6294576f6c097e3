"""Shared helpers for the slixmpp-based interop tests.

Runs with Debian's /usr/bin/python3 and python3-slixmpp (1.8.3 tested).
Every wait is an event with a timeout; nothing sleeps to synchronise.
"""

import asyncio
import logging
import sys
import time

from slixmpp import ClientXMPP
from slixmpp.stanza import StreamFeatures

T0 = time.monotonic()

NS_DELAY = "urn:xmpp:delay"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"


def step(msg):
    print(f"[{time.monotonic() - T0:6.2f}s] {msg}", flush=True)


class Failure(Exception):
    """A test assertion failed; the message says why."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def setup_logging(debug):
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class Recorder:
    """Collects events (plain dicts); wait() returns the first past or future
    event matching a predicate, or raises Failure at the timeout."""

    def __init__(self, name):
        self.name = name
        self.items = []
        self._waiters = []

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
        waiter = (pred, fut)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            recent = "\n      ".join(repr(i) for i in self.items[-10:]) or "(nothing)"
            raise Failure(
                f"timed out after {timeout}s waiting for {what}; "
                f"last {self.name} seen:\n      {recent}"
            ) from None
        finally:
            self._waiters.remove(waiter)


class Client(ClientXMPP):
    """A slixmpp client that trusts only the test CA, records what it receives
    and fails loudly (connection refused, TLS, SASL, stream errors)."""

    def __init__(self, label, jid, password, ca_file, mech=None, register=False):
        super().__init__(jid, password, sasl_mech=mech)
        self.label = label
        # slixmpp builds its SSL context with check_hostname=True and
        # CERT_REQUIRED, verifying against default_domain (the JID's domain);
        # ca_certs makes it trust exactly the test CA.
        self.ca_certs = ca_file
        for plugin in ("xep_0030", "xep_0199", "xep_0203"):
            self.register_plugin(plugin)
        self.want_register = register
        self.registered = None  # None: not tried; True; or the error text
        self.server_advertised_register = None
        if register:
            self.register_plugin("xep_0077")
            # Registration is also attempted when the server does not advertise
            # the iq-register stream feature (it SHOULD; we report whether it
            # did): _peek_features adds it. (The plugin's own
            # force_registration does nothing in 1.8.3 under asyncio: it
            # checks for ssl.SSLSocket, but the TLS socket is an SSLObject.)
            # Replace the plugin's feature handler with ours: the plugin's
            # swallows an error reply to the form request and goes on to SASL,
            # which then fails with a misleading "authentication failed".
            self.unregister_feature("register", self["xep_0077"].order)
            self.register_feature("register", self._register_feature, restart=False,
                                  order=self["xep_0077"].order)
            self.registration_fields = None
            # slixmpp 1.8.3 queues every iq that is not bind/session until the
            # session has started ("NOT SENT" in its debug log), which would
            # hold back the jabber:iq:register get/set on the unauthenticated
            # stream forever. Let stanzas through until SASL has succeeded.
            self._always_send_everything = True
            self.add_event_handler("auth_success", self._registration_over)
        # Subscriptions are decided by the test, not by slixmpp's defaults
        # (which would auto-approve and auto-subscribe back).
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False

        self.started = self.loop.create_future()
        self.gone = self.loop.create_future()
        self.messages = Recorder(f"{label} messages")
        self.presences = Recorder(f"{label} presences")
        self.roster_pushes = Recorder(f"{label} roster pushes")
        self.errors = []

        # Runs before xep_0077's own filter (that one is added on 'connected').
        self.add_filter("in", self._peek_features)
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("failed_all_auth", lambda _e: self._fail("SASL authentication failed"))
        self.add_event_handler("no_auth", lambda _e: self._fail(
            f"no acceptable SASL mechanism (wanted {mech}; server offered "
            f"{sorted(self['feature_mechanisms'].mech_list)})"))
        self.add_event_handler("connection_failed", lambda e: self._fail(f"connection failed: {e}"))
        self.add_event_handler("ssl_invalid_chain", lambda e: self._fail(f"TLS certificate not trusted: {e}"))
        self.add_event_handler("stream_error", lambda e: self._fail(
            f"stream error: {e['condition']} {e['text']}".strip()))
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("message_error", self._on_message)
        self.add_event_handler("presence", self._on_presence)
        self.add_event_handler("roster_update", self._on_roster)

    # --- event plumbing ------------------------------------------------------
    def _fail(self, why):
        self.errors.append(why)
        if not self.started.done():
            self.started.set_exception(Failure(f"{self.label}: {why}"))

    def _peek_features(self, stanza):
        # Sees the features before any handler; only on the TLS stream before
        # SASL (the only place where in-band registration is allowed here).
        if (isinstance(stanza, StreamFeatures) and "mechanisms" not in self.features
                and self.transport_tls_version()):
            advertised = stanza.xml.find(f"{{{NS_REGISTER_FEATURE}}}register") is not None
            self.server_advertised_register = advertised
            if self.want_register and not advertised:
                stanza.enable("register")
        return stanza

    async def _register_feature(self, _features):
        """XEP-0077 on the unauthenticated (TLS) stream: get the form, then set
        username + password; any error fails the login with its condition."""
        if "mechanisms" in self.features:
            return False  # already authenticated
        try:
            form = await self["xep_0077"].get_registration(timeout=15)
            reg = form["register"]
            self.registration_fields = sorted(
                f for f in ("username", "password", "email", "name") if reg.xml.find(f"{{jabber:iq:register}}{f}") is not None)
            resp = self.Iq()
            resp["type"] = "set"
            resp["register"]["username"] = self.boundjid.user
            resp["register"]["password"] = self.password
            await resp.send(timeout=15)
            self.registered = True
            return False  # go on with SASL on this stream
        except Exception as exc:  # IqError / IqTimeout
            iq = getattr(exc, "iq", None)
            cond = f"{iq['error']['type']}/{iq['error']['condition']}" if iq is not None else type(exc).__name__
            stage = "form request (get)" if self.registration_fields is None else "submission (set)"
            self.registered = f"registration {stage} refused: {cond}"
            self._fail(self.registered)
            self.disconnect()  # close the stream properly, as a client would
            return True

    def _registration_over(self, _event):
        self._always_send_everything = False

    def _on_session_start(self, _event):
        if not self.started.done():
            self.started.set_result(True)

    def _on_disconnected(self, reason):
        if not self.started.done():
            self._fail(f"disconnected before the session started ({reason})")
        if not self.gone.done():
            self.gone.set_result(reason)

    def _on_message(self, msg):
        delay = msg.xml.find(f"{{{NS_DELAY}}}delay")
        self.messages.add({
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "type": msg["type"],
            "body": msg["body"],
            "error": msg["error"]["condition"] if msg["type"] == "error" else None,
            "delay": None if delay is None else dict(delay.attrib),
        })

    def _on_presence(self, pres):
        self.presences.add({
            "from": str(pres["from"]),
            "type": pres["type"],
            "status": pres["status"],
        })

    def _on_roster(self, iq):
        if iq["type"] != "set":
            return  # results of our own roster gets, not pushes
        for jid, item in iq["roster"]["items"].items():
            self.roster_pushes.add({
                "jid": str(jid),
                "subscription": item["subscription"],
                "ask": item["ask"],
                "name": item["name"],
                "groups": list(item["groups"]),
            })

    # --- helpers -------------------------------------------------------------
    def transport_tls_version(self):
        transport = getattr(self, "transport", None)
        if transport is None:
            return None
        ssl_obj = transport.get_extra_info("ssl_object")
        return ssl_obj.version() if ssl_obj is not None else None

    def sasl_mechanism(self):
        mech = self["feature_mechanisms"].mech
        return mech.name if mech is not None else None

    def offered_mechanisms(self):
        return sorted(self["feature_mechanisms"].mech_list)

    async def login(self, host, port, timeout, direct_tls=False):
        """Connect, STARTTLS (or direct TLS), SASL, bind; raise Failure if any fails."""
        self.connect(address=(host, port), use_ssl=direct_tls, force_starttls=True)
        try:
            await asyncio.wait_for(asyncio.shield(self.started), timeout)
        except asyncio.TimeoutError:
            await self._drop()
            raise Failure(
                f"{self.label}: no session after {timeout}s "
                f"(errors: {self.errors or 'none'}; registered: {self.registered}; "
                f"TLS: {self.transport_tls_version()}; SASL: {self.sasl_mechanism()})"
            ) from None
        except Failure:
            await self._drop()
            raise
        check(self.transport_tls_version() is not None,
              f"{self.label}: session is not encrypted")

    async def _drop(self):
        """After a failed login: slixmpp usually closes the stream itself;
        give it a moment, then abort the connection."""
        try:
            await asyncio.wait_for(asyncio.shield(self.gone), 2)
        except asyncio.TimeoutError:
            self.disconnect(wait=0)

    async def logout(self, timeout):
        if self.gone.done():
            return
        self.disconnect()
        try:
            await asyncio.wait_for(asyncio.shield(self.gone), timeout)
        except asyncio.TimeoutError:
            self.disconnect(wait=0)
            raise Failure(f"{self.label}: did not disconnect within {timeout}s") from None

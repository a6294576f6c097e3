#!/usr/bin/python3
"""Interop test: XEP-0280 message carbons and XEP-0191 blocking with profanity
(Debian's, libstrophe), driven in a private tmux server, next to slixmpp.

Two accounts: U and C. U is logged in twice: profanity as U/tui (carbons on)
and slixmpp as U/slix (xep_0280 enable(), xep_0191 blocklist requested so that
it gets the pushes); C is a slixmpp client.

profanity runs with its own HOME/XDG dirs and trusts the test CA through
SSL_CERT_FILE (see profanity.sh), with `-l DEBUG`: libstrophe then logs every
stanza it sends and receives ("SENT: <...>", "RECV: <...>") to
$XDG_DATA_HOME/profanity/logs/profanity.log, which this test reads alongside
the screen (tmux capture-pane). Every wait polls the screen or the log, or
waits for a slixmpp event, with a deadline; nothing sleeps to synchronise.

  1. profanity: `/carbons on`, an account U with resource "tui", `/connect`;
     it must log in, send <enable xmlns='urn:xmpp:carbons:2'/> and get that
     iq's result ("Message carbons enabled." in its log); U/slix sees U/tui's
     presence.
  2. received carbon: C sends a chat to U/slix's full JID; U/slix gets it and
     profanity gets it wrapped in <received xmlns='urn:xmpp:carbons:2'/> (its
     log) and shows it in its chat window with C (the screen).
  3. sent carbon: U/slix sends a chat to C; C gets it, profanity gets a
     <sent/> carbon and shows the body as its own ("me: ...") in that window.
  4. `/msg C ...` in profanity: C gets it from U/tui, and U/slix gets a <sent/>
     carbon (slixmpp's carbon_sent) of it, forwarded from U/tui to C.
  5. `/blocked add C` (profanity refuses it until the server's disco#info has
     shown urn:xmpp:blocking, so step 1 waits for that in its log): profanity
     reports success, U/slix and profanity each get the push
     <block><item jid='C'/></block>, U/slix's blocklist (get) holds C,
     profanity's `/blocked` lists it; C's chats to U's bare JID and to U/slix
     bounce with <service-unavailable/> (--full-jid-block-drops: the second
     may be dropped instead, as Prosody does).
  6. `/blocked remove C` (profanity can only remove what the server pushed to
     it): success, the <unblock/> push at both, an empty blocklist; a chat from
     C to U's bare JID reaches U/slix and profanity again -- and since C sent it
     after the two refused ones, on the same stream to the same sessions,
     neither of the refused bodies reached U/slix nor profanity.

profanity 0.13.1 does not answer the server's blocklist pushes (iq set) with a
result; nothing here depends on that answer.

Exit status 0 only if every step passed; each step is printed.
"""

import argparse
import asyncio
import os
import re
import shutil
import signal
import sys
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slixmpp import JID  # noqa: E402

from pubsubutil import expect_ok  # noqa: E402
from xmpputil import Client, Failure, Recorder, check, setup_logging, step  # noqa: E402

NS_CARBONS = "urn:xmpp:carbons:2"
NS_BLOCKING = "urn:xmpp:blocking"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="STARTTLS c2s port")
    p.add_argument("--domain", default="localhost")
    p.add_argument("--ca", required=True, help="CA certificate (PEM) to trust")
    p.add_argument("--users", required=True, help="two existing localparts: U (profanity + slixmpp),C (contact)")
    p.add_argument("--password", required=True)
    p.add_argument("--work", required=True, help="directory for profanity's HOME, tmux socket and logs")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per wait")
    p.add_argument("--full-jid-block-drops", action="store_true",
                   help="accept that a blocked contact's chat to an online full JID is dropped, not "
                        "bounced (Prosody 0.12 does that, its issue #690; run.sh --reference-prosody)")
    p.add_argument("--debug", action="store_true", help="slixmpp debug log on stderr")
    return p.parse_args()


class Profanity:
    """profanity in a tmux server of its own (own socket), own HOME."""

    def __init__(self, work, ca):
        self.dir = Path(work)
        self.home = self.dir / "home"
        self.sock = str(self.dir / "tmux.sock")
        self.log = self.home / ".local/share/profanity/logs/profanity.log"
        self.ca = ca
        self.pid = None

    async def tmux(self, *args, check_rc=True):
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-S", self.sock, *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise Failure(f"tmux {' '.join(args)}: no answer within 10s") from None
        if check_rc and proc.returncode != 0:
            raise Failure(f"tmux {' '.join(args)}: exit {proc.returncode}: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    @staticmethod
    def require():
        for c in ("profanity", "tmux"):
            check(shutil.which(c) is not None, f"{c} is not installed (apt-get install {c})")

    async def start(self):
        for d in (".config", ".local/share"):
            (self.home / d).mkdir(parents=True, exist_ok=True)
        empty = self.dir / "empty-certdir"
        empty.mkdir(exist_ok=True)
        h = str(self.home)
        await self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "prof", "-x", "200", "-y", "50",
            "env", f"HOME={h}", f"XDG_CONFIG_HOME={h}/.config", f"XDG_DATA_HOME={h}/.local/share",
            f"SSL_CERT_FILE={self.ca}", f"SSL_CERT_DIR={empty}", "profanity", "-l", "DEBUG")
        self.pid = int((await self.tmux("display-message", "-p", "#{pid}")).strip())

    def alive(self):
        if self.pid is None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    async def stop(self):
        if self.pid is None:
            return
        await self.tmux("send-keys", "-t", "prof", "-l", "/quit", check_rc=False)
        await self.tmux("send-keys", "-t", "prof", "Enter", check_rc=False)
        await self.tmux("kill-server", check_rc=False)  # our private server only (own socket)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while self.alive() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.alive():
            os.kill(self.pid, 9)  # the tmux server this test started
        self.pid = None

    async def type(self, line):
        """Type a line into profanity's input and press Enter."""
        await self.tmux("send-keys", "-t", "prof", "-l", line)
        await self.tmux("send-keys", "-t", "prof", "Enter")

    async def screen(self):
        return await self.tmux("capture-pane", "-p", "-J", "-t", "prof", "-S", "-300", check_rc=False)

    def log_lines(self):
        try:
            return self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    async def wait_screen(self, pattern, timeout, what, bad=None):
        """Poll the pane until the regex `pattern` matches a line; fail at the
        deadline or as soon as `bad` matches."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            s = await self.screen()
            for line in s.splitlines():
                m = re.search(pattern, line)
                if m:
                    return line
            if bad and re.search(bad, s):
                raise Failure(f"profanity showed {re.findall(bad, s)[-1]!r} while waiting for {what}\n"
                              + self.screen_tail(s))
            if not self.alive():
                raise Failure(f"profanity/tmux exited while waiting for {what}")
            if loop.time() >= deadline:
                raise Failure(f"{what}: /{pattern}/ not on profanity's screen within {timeout}s\n"
                              + self.screen_tail(s))
            await asyncio.sleep(0.1)

    async def wait_log(self, pred, timeout, what):
        """Poll profanity's log until a line satisfies pred; return it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for line in self.log_lines():
                if pred(line):
                    return line
            if not self.alive():
                raise Failure(f"profanity/tmux exited while waiting for {what}")
            if loop.time() >= deadline:
                tail = "\n      ".join(ln[:300] for ln in self.log_lines()[-15:])
                raise Failure(f"{what}: not in profanity's log ({self.log}) within {timeout}s; "
                              f"last lines:\n      {tail}")
            await asyncio.sleep(0.1)

    @staticmethod
    def screen_tail(s, n=25):
        lines = [ln for ln in s.splitlines() if ln.strip()][-n:]
        return "---- profanity screen ----\n" + "\n".join(lines) + "\n---- end of screen ----"


def xml_line(direction, *parts):
    """A predicate for profanity's log: a libstrophe SENT/RECV line holding all parts."""
    tag = f"{direction}: <"
    return lambda line: tag in line and all(p in line for p in parts)


async def run(args):
    t = args.timeout
    u_local, c_local = args.users.split(",")
    dom = args.domain
    U, C = f"{u_local}@{dom}", f"{c_local}@{dom}"
    tok = uuid.uuid4().hex[:8]
    Profanity.require()  # a missing client fails the test, it does not skip it
    # timeout(1) sends SIGTERM: cancel, so that the finally below stops tmux
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    prof = Profanity(args.work, args.ca)

    slix = Client("U/slix", f"{U}/slix", args.password, args.ca)
    peer = Client("C", f"{C}/peer", args.password, args.ca)
    slix.register_plugin("xep_0280")
    slix.register_plugin("xep_0191")
    sent_carbons = Recorder("U/slix sent carbons")
    received_carbons = Recorder("U/slix received carbons")
    pushes = Recorder("U/slix blocklist pushes")
    peer_errors = Recorder("C message errors")

    def carbon(rec, kind):
        def handler(msg):
            fwd = msg[kind]  # is_extension: the forwarded message itself
            rec.add({"from": str(msg["from"]), "fwd_from": str(fwd["from"]), "fwd_to": str(fwd["to"]),
                     "type": fwd["type"], "body": fwd["body"]})
        return handler

    slix.add_event_handler("carbon_sent", carbon(sent_carbons, "carbon_sent"))
    slix.add_event_handler("carbon_received", carbon(received_carbons, "carbon_received"))

    def push(kind):
        def handler(iq):
            pushes.add({"kind": kind, "from": str(iq["from"]),
                        "items": sorted(str(j) for j in iq[kind]["items"])})
            iq.reply().send()  # XEP-0191: the client acknowledges a push
        return handler

    slix.add_event_handler("blocked", push("block"))
    slix.add_event_handler("unblocked", push("unblock"))
    peer.add_event_handler("message_error", lambda m: peer_errors.add(
        {"id": m["id"], "from": str(m["from"]), "condition": m["error"]["condition"],
         "type": m["error"]["type"]}))

    async def online(c):
        await c.login(args.host, args.port, t)
        iq = c.Iq()
        iq["type"] = "get"
        iq.enable("roster")
        await expect_ok(f"{c.label}: roster get", iq.send(timeout=t))
        c.send_presence()
        await c.presences.wait(lambda p: p["from"] == c.boundjid.full and p["type"] == "available",
                               t, "own presence echo")

    def chat(sender, to, body):
        m = sender.make_message(mto=to, mbody=body, mtype="chat")
        m["id"] = f"{body.split()[0]}-{uuid.uuid4().hex[:6]}"
        m.send()
        return m["id"]

    try:
        # --- 0. the slixmpp sessions -----------------------------------------------------------
        await asyncio.gather(online(slix), online(peer))
        await expect_ok("U/slix: carbons <enable/>", slix["xep_0280"].enable(timeout=t))
        bl = await expect_ok("U/slix: blocklist get", slix["xep_0191"].get_blocked(timeout=t))
        check(not bl["blocklist"]["items"], f"U/slix: blocklist not empty at the start: {bl['blocklist']['items']}")
        step(f"{slix.boundjid.full} online, carbons enabled, blocklist requested (empty); "
             f"{peer.boundjid.full} online")

        # --- 1. profanity logs in as U/tui with carbons on ----------------------------------------
        await prof.start()
        version = (await (await asyncio.create_subprocess_exec(
            "profanity", "--version", stdout=asyncio.subprocess.PIPE)).communicate())[0].decode().splitlines()
        step(f"{version[0] if version else 'profanity'} started in tmux (pid {prof.pid})")
        await prof.wait_screen(r"Type '/help'|\[offline\]", t, "profanity's start screen")
        await prof.type("/carbons on")
        await prof.wait_screen(r"Message carbons preference enabled", t, "/carbons on")
        for line in (f"/account add {U}",
                     f"/account set {U} server {args.host}",
                     f"/account set {U} port {args.port}",
                     f"/account set {U} tls force",
                     f"/account set {U} resource tui",
                     f"/account set {U} password {args.password}"):
            await prof.type(line)
        await prof.wait_screen(r"Updated password for account", t, "the account settings")
        await prof.type(f"/connect {U}")
        fails = r"Login failed|[Cc]onnection failed|/tls allow|Lost connection"
        await prof.wait_screen(rf"{re.escape(U)}/tui logged in successfully", 2 * t, "the login", bad=fails)
        step(f"profanity: {U}/tui logged in successfully")

        enable = await prof.wait_log(xml_line("SENT", f'<enable xmlns="{NS_CARBONS}"/>'), t,
                                     "profanity's carbons <enable/> iq")
        m = re.search(r'<iq [^>]*id="([^"]+)"', enable)
        check(m is not None and 'type="set"' in enable, f"profanity: unexpected carbons enable: {enable}")
        enable_id = m.group(1)
        await prof.wait_log(xml_line("RECV", f'id="{enable_id}"', 'type="result"'), t,
                            f"the server's result to the carbons enable iq {enable_id}")
        await prof.wait_log(lambda ln: "Message carbons enabled." in ln, t, "'Message carbons enabled.'")
        await slix.presences.wait(lambda p: p["from"] == f"{U}/tui" and p["type"] == "available", t,
                                  f"{U}/tui's available presence at U/slix")
        # profanity's /blocked needs the server's disco#info features first
        await prof.wait_log(lambda ln: f"connection_features_received {dom}" in ln, t,
                            "profanity's disco#info of the server")
        step(f"profanity sent <enable xmlns='{NS_CARBONS}'/> (iq {enable_id}), the server answered result; "
             f"U/slix sees {U}/tui available")

        # --- 2. a received carbon ------------------------------------------------------------------
        body_in = f"carbon-in {tok} from C to U/slix"
        chat(peer, slix.boundjid.full, body_in)
        await slix.messages.wait(lambda m: m["body"] == body_in, t, "C's chat at U/slix")
        recv = await prof.wait_log(xml_line("RECV", f'<received xmlns="{NS_CARBONS}"', body_in), t,
                                   "the <received/> carbon of C's chat at profanity")
        check(f'from="{U}"' in recv, f"profanity: received carbon not from {U}: {recv}")
        await prof.type(f"/win {C}")
        await prof.wait_screen(rf" - {re.escape(C)}(/peer)?: {re.escape(body_in)}\s*$", t,
                               "C's chat to U/slix in profanity's chat window with C")
        step("received carbon: C -> U/slix, profanity got <received/> and shows "
             f"'{C}: {body_in}' in its window with C")

        # --- 3. a sent carbon ----------------------------------------------------------------------
        body_out = f"carbon-out {tok} from U/slix to C"
        chat(slix, C, body_out)
        got = await peer.messages.wait(lambda m: m["body"] == body_out, t, "U/slix's chat at C")
        check(got["from"] == slix.boundjid.full, f"C: U/slix's chat came from {got['from']}")
        await prof.wait_log(xml_line("RECV", f'<sent xmlns="{NS_CARBONS}"', body_out), t,
                            "the <sent/> carbon of U/slix's chat at profanity")
        await prof.wait_screen(rf" - me: {re.escape(body_out)}\s*$", t,
                               "U/slix's chat as profanity's own in its window with C")
        step(f"sent carbon: U/slix -> C, profanity got <sent/> and shows 'me: {body_out}'")

        # --- 4. profanity sends: U/slix gets the <sent/> carbon ---------------------------------------
        body_prof = f"from-profanity {tok} to C"
        await prof.type(f"/msg {C} {body_prof}")
        got = await peer.messages.wait(lambda m: m["body"] == body_prof, t, "profanity's /msg at C")
        check(got["from"] == f"{U}/tui", f"C: profanity's chat came from {got['from']}, expected {U}/tui")
        sc = await sent_carbons.wait(lambda c: c["body"] == body_prof, t, "a <sent/> carbon of profanity's /msg")
        check(sc["from"] == U, f"U/slix: carbon from {sc['from']}, expected {U}")
        check(sc["fwd_from"] == f"{U}/tui" and JID(sc["fwd_to"]).bare == C and sc["type"] == "chat",
              f"U/slix: carbon forwards {sc}, expected a chat from {U}/tui to {C}")
        await prof.wait_screen(rf" - me: {re.escape(body_prof)}\s*$", t, "profanity's own message in its window")
        check(not received_carbons.items, f"U/slix: unexpected <received/> carbons: {received_carbons.items}")
        step(f"profanity /msg -> C: C got it from {U}/tui, U/slix got the <sent/> carbon "
             f"(forwarded {sc['fwd_from']} -> {sc['fwd_to']})")

        # --- 5. /blocked add C ------------------------------------------------------------------------
        await prof.type("/win 1")
        await prof.type(f"/blocked add {C}")
        await prof.wait_screen(rf"User {re.escape(C)} successfully blocked", t, "/blocked add")
        p = await pushes.wait(lambda p: p["kind"] == "block", t, "the block push at U/slix")
        check(p["items"] == [C] and p["from"] in ("", U),
              f"U/slix: block push {p}, expected <block><item jid='{C}'/></block> from the account")
        await prof.wait_log(xml_line("RECV", f'<block xmlns="{NS_BLOCKING}"', f'jid="{C}"'), t,
                            "the block push at profanity")
        bl = await expect_ok("U/slix: blocklist get", slix["xep_0191"].get_blocked(timeout=t))
        check(sorted(str(j) for j in bl["blocklist"]["items"]) == [C],
              f"U/slix: blocklist {bl['blocklist']['items']}, expected [{C}]")
        await prof.type("/blocked")
        await prof.wait_screen(r"Blocked users:", t, "profanity's /blocked list")
        await prof.wait_screen(rf"^\S* *- +{re.escape(C)}\s*$|^ +{re.escape(C)}\s*$", t,
                               f"{C} in profanity's /blocked list")
        step(f"/blocked add {C}: profanity reports success, U/slix and profanity got the push "
             f"<block><item jid='{C}'/></block>, U/slix's blocklist is [{C}], profanity lists it")

        blocked_bodies = []
        for to in (U, slix.boundjid.full):
            body = f"blocked {tok} from C to {to}"
            blocked_bodies.append(body)
            mid = chat(peer, to, body)
            if to != U and args.full_jid_block_drops:
                step(f"C -> {to} while blocked: no error expected (--full-jid-block-drops); "
                     "that it is not delivered is checked after the unblock")
                continue
            e = await peer_errors.wait(lambda e, mid=mid: e["id"] == mid, t, f"an error for C's chat to {to}")
            check(e["condition"] == "service-unavailable" and JID(e["from"]).bare == U,
                  f"C: error for its chat to {to}: {e}, expected <service-unavailable/> from {U}")
            step(f"C -> {to} while blocked: <service-unavailable/> ({e['type']}) from {e['from']}")

        # --- 6. /blocked remove C ---------------------------------------------------------------------
        await prof.type(f"/blocked remove {C}")
        await prof.wait_screen(rf"User {re.escape(C)} successfully unblocked", t, "/blocked remove")
        p = await pushes.wait(lambda p: p["kind"] == "unblock", t, "the unblock push at U/slix")
        check(p["items"] == [C], f"U/slix: unblock push {p}, expected <unblock><item jid='{C}'/></unblock>")
        await prof.wait_log(xml_line("RECV", f'<unblock xmlns="{NS_BLOCKING}"', f'jid="{C}"'), t,
                            "the unblock push at profanity")
        bl = await expect_ok("U/slix: blocklist get", slix["xep_0191"].get_blocked(timeout=t))
        check(not bl["blocklist"]["items"], f"U/slix: blocklist {bl['blocklist']['items']} after the unblock")
        await prof.type("/blocked")
        await prof.wait_screen(r"No blocked users\.", t, "profanity's empty /blocked list")
        step(f"/blocked remove {C}: success, the <unblock/> push at both, the blocklist is empty again")

        body_again = f"unblocked {tok} from C to U"
        mid = chat(peer, U, body_again)
        await slix.messages.wait(lambda m: m["body"] == body_again, t, "C's chat after the unblock at U/slix")
        await prof.wait_log(xml_line("RECV", body_again), t, "C's chat after the unblock at profanity")
        await prof.type(f"/win {C}")
        await prof.wait_screen(rf" - {re.escape(C)}(/peer)?: {re.escape(body_again)}\s*$", t,
                               "C's chat after the unblock in profanity's window with C")
        # C sent the refused chats earlier on the same stream: had they been
        # delivered, they would have arrived before this one.
        for body in blocked_bodies:
            check(not any(m["body"] == body for m in slix.messages.items),
                  f"U/slix received {body!r}, sent while C was blocked")
            check(not any(body in ln for ln in prof.log_lines() if "RECV: <" in ln),
                  f"profanity received {body!r}, sent while C was blocked")
            check(body not in await prof.screen(), f"profanity shows {body!r}, sent while C was blocked")
        check(not any(e["id"] == mid for e in peer_errors.items), "C: its chat after the unblock bounced")
        step(f"C -> {U} after the unblock: delivered to U/slix and shown by profanity; neither of the "
             f"{len(blocked_bodies)} refused chats reached them")
    finally:
        await prof.stop()
        await asyncio.gather(*(x.logout(3) for x in (slix, peer) if x.started.done() and not x.gone.done()),
                             return_exceptions=True)


def main():
    args = parse_args()
    setup_logging(args.debug)
    try:
        asyncio.run(run(args))
    except Failure as exc:
        step(f"FAIL: {exc}")
        return 1
    except asyncio.CancelledError:
        step("FAIL: terminated (SIGTERM) before the end")
        return 1
    except Exception:  # a crash is a failure too, with its traceback
        traceback.print_exc()
        step("FAIL: unexpected exception (traceback above)")
        return 1
    step("PASS: profanity and slixmpp share carbons, profanity blocks and unblocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A TCP relay that can cut its connections, for the stream-management tests.

Standard library only (asyncio), so that both slixmpp_sm.py (Debian's python3)
and aioxmpp_sm.py (the aioxmpp venv) can use it.

The client under test connects to the relay instead of the server; the relay
opens a connection to the server for each one and copies bytes both ways
(TLS passes through untouched: the client still verifies the server's
certificate). Then:

  stall()    the link dies silently first: from now on the relay reads what
             either side sends and throws it away (counted in
             `lost_to_client` / `lost_to_server`, bytes), as a link that
             lost its route; both sides still believe they are connected.
  cut()      the network breaks: every relayed connection is closed with a
             TCP RST (SO_LINGER 0) towards the client *and* towards the
             server, at once, whatever is in flight is lost. Neither side sees
             a </stream:stream>, a TLS close_notify or even a FIN: the client
             library gets ECONNRESET, the server a reset connection. Bytes the
             relay had read but not yet written are dropped, as a dead link
             would.
  down       from cut() until restore(), new connections from the client are
             accepted but held: nothing is read from them and nothing is sent
             to the server (a client reconnecting on its own waits, as behind
             a link that is not back yet). `held` counts them.
  restore()  the network is back: held connections are connected to the
             server and relayed from their first byte on.

Nothing here sleeps to synchronise: `until(condition, timeout)` waits for a
condition on the counters (accepted, held, lost_to_client, lost_to_server),
checked whenever one of them changes.
"""

import asyncio
import socket
import struct


class Relay:
    def __init__(self, server_host, server_port, host="127.0.0.1"):
        self.server = (server_host, server_port)
        self.host = host
        self.port = None
        self.down = False
        self.accepted = 0  # client connections accepted so far
        self.held = 0  # accepted while down
        self.cuts = 0
        self.stalled = False
        self.lost_to_client = 0  # bytes from the server thrown away while stalled
        self.lost_to_server = 0  # bytes from the client thrown away while stalled
        self._pairs = set()  # (client_writer, server_writer) being relayed
        self._held = []  # (reader, writer, ready event) waiting for restore()
        self._server = None
        self._tasks = set()
        self._watchers = []  # futures woken when a counter changes

    async def start(self):
        self._server = await asyncio.start_server(self._on_client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for cw, sw in list(self._pairs):
            for w in (cw, sw):
                if w is not None:
                    w.transport.abort()
        for _r, w, _ev in self._held:
            w.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- the network ----------------------------------------------------------
    def stall(self):
        """Throw away what either side sends, from now until cut()."""
        self.stalled = True

    def cut(self):
        """Reset every relayed connection, both ways; new ones are held."""
        self.stalled = False
        self.down = True
        self.cuts += 1
        n = 0
        for cw, sw in list(self._pairs):
            for w in (cw, sw):
                if w is not None:
                    _rst(w)
            n += 1
        self._pairs.clear()
        return n

    def restore(self):
        """Relay the connections held while down, and every new one."""
        self.down = False
        held, self._held = self._held, []
        for _r, _w, ready in held:
            ready.set()

    async def until(self, cond, timeout):
        """Until cond() is true; asyncio.TimeoutError after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not cond():
            fut = loop.create_future()
            self._watchers.append(fut)
            try:
                await asyncio.wait_for(fut, max(0, deadline - loop.time()))
            finally:
                self._watchers.remove(fut)

    def _changed(self):
        for fut in self._watchers:
            if not fut.done():
                fut.set_result(None)

    # --- relaying -----------------------------------------------------------------
    def _on_client(self, reader, writer):
        t = asyncio.ensure_future(self._serve(reader, writer))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _serve(self, creader, cwriter):
        self.accepted += 1
        if self.down:
            self.held += 1
        self._changed()
        if self.down:
            ready = asyncio.Event()
            entry = (creader, cwriter, ready)
            self._held.append(entry)
            await ready.wait()
        try:
            sreader, swriter = await asyncio.open_connection(*self.server)
        except OSError:
            _rst(cwriter)
            return
        pair = (cwriter, swriter)
        self._pairs.add(pair)
        try:
            await asyncio.gather(self._pump(creader, swriter, "lost_to_server"),
                                 self._pump(sreader, cwriter, "lost_to_client"))
        finally:
            if pair in self._pairs:  # not cut: one side closed, close the other
                self._pairs.discard(pair)
                for w in pair:
                    w.transport.abort()


    async def _pump(self, reader, writer, lost):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()  # a FIN is passed on as a FIN
                    return
                if self.stalled:
                    setattr(self, lost, getattr(self, lost) + len(data))
                    self._changed()
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            return  # cut, or the other side is gone


def _rst(writer):
    """Close with a TCP RST: SO_LINGER on, timeout 0, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()

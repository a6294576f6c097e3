// Interop test: xmpp.js (@xmpp/client, node) and PEP (XEP-0163) with XEP-0080
// user location.
//
//   node xmppjs_pep.mjs --modules DIR --port PORT --users A,B,C --password PW
//
// DIR is the node_modules of xmppjs-install.sh (@xmpp/client pinned by
// xmppjs/package-lock.json). The test CA is trusted through NODE_EXTRA_CA_CERTS
// (node reads it at start); nothing else about TLS is changed: node verifies
// the chain and the name "localhost" (xmpp.js upgrades with host = domain).
//
// Three xmpp.js clients A, B, C, each over STARTTLS with SASL SCRAM-SHA-1
// (xmpp.js has no SCRAM-SHA-256; the server offers both), resource binding:
//   1. every login: TLS verified, the <auth/> xmpp.js sent names SCRAM-SHA-1;
//   2. A: disco#info of its own bare JID lists the identity pubsub/pep
//      (what PEP clients look for before they publish) and, as XEP-0163 6.1
//      asks, the XEP-0060 features: publish, retrieve-items, publish-options;
//   3. B and C announce XEP-0115 caps with
//      http://jabber.org/protocol/geoloc+notify in their initial presence
//      (xmpp.js has no caps module: the test computes the sha-1 ver and
//      answers the server's disco#info query for node#ver with an iq
//      handler); each waits for that query and then pings the server (its
//      stanzas are handled in order, so afterwards it knows the +notify);
//   4. A <-> B: mutual presence subscription (raw presence stanzas, roster
//      pushes answered with an empty result, as RFC 6121 asks);
//   5. A publishes a geoloc item (no 'to': its own PEP service) -> the result
//      names the item id; A reads the node back with an items request;
//   6. B (a contact with +notify) receives the notification, from A's bare
//      JID, payload intact; B reads A's node with an items request too;
//   7. C (+notify, no subscription to A) receives no notification (checked
//      after A's later chat message reached C, plus a bounded wait), and its
//      items request for A's node is refused with <not-authorized/> +
//      <presence-subscription-required/> (XEP-0060 6.5.9.4);
//   8. B received the notification exactly once.
//
// Exit status 0 only if every step passed; each step is printed.

import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import tls from "node:tls";

const NS = {
  DISCO_INFO: "http://jabber.org/protocol/disco#info",
  CAPS: "http://jabber.org/protocol/caps",
  PUBSUB: "http://jabber.org/protocol/pubsub",
  PUBSUB_EVENT: "http://jabber.org/protocol/pubsub#event",
  PUBSUB_ERRORS: "http://jabber.org/protocol/pubsub#errors",
  GEOLOC: "http://jabber.org/protocol/geoloc",
  ROSTER: "jabber:iq:roster",
  PING: "urn:xmpp:ping",
  SASL: "urn:ietf:params:xml:ns:xmpp-sasl",
  STANZAS: "urn:ietf:params:xml:ns:xmpp-stanzas",
};
const CAPS_NODE = "https://github.com/xmppjs/xmpp.js#hydrant-interop";

const T0 = performance.now();
function step(msg) {
  console.log(`[${((performance.now() - T0) / 1000).toFixed(2).padStart(6)}s] ${msg}`);
}

class Failure extends Error {}

function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

function withTimeout(promise, secs, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out after ${secs}s: ${what}`)), secs * 1000);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// Events as a list; wait() returns the first past or future one matching a
// predicate, or throws Failure at the timeout (as xmpputil.Recorder).
class Recorder {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
  }
  add(item) {
    this.items.push(item);
    for (const w of [...this.waiters]) {
      if (w.pred(item)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(item);
      }
    }
  }
  wait(pred, secs, what) {
    const past = this.items.find(pred);
    if (past !== undefined) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        const recent = this.items.slice(-8).map((x) => JSON.stringify(x)).join("\n      ");
        reject(new Failure(`timed out after ${secs}s waiting for ${what}; last ${this.name} seen:\n      ${recent || "(nothing)"}`));
      }, secs * 1000);
    });
  }
  // resolves null when nothing matching arrives within secs
  async none(pred, secs) {
    try {
      return await this.wait(pred, secs, "");
    } catch (e) {
      if (e instanceof Failure) return null;
      throw e;
    }
  }
}

const { values: args } = parseArgs({
  options: {
    modules: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    domain: { type: "string", default: "localhost" },
    users: { type: "string" },
    password: { type: "string" },
    timeout: { type: "string", default: "10" },
    "quiet-wait": { type: "string", default: "1" },
    debug: { type: "boolean", default: false },
  },
});

async function main() {
  check(args.modules && args.port && args.users && args.password,
    "usage: node xmppjs_pep.mjs --modules DIR --port PORT --users A,B,C --password PW [--host H] [--domain D]");
  check(process.env.NODE_EXTRA_CA_CERTS, "NODE_EXTRA_CA_CERTS (the test CA) is not set");
  const { client, xml } = await import(pathToFileURL(join(args.modules, "@xmpp/client/index.js")).href);
  const clientVersion = JSON.parse(readFileSync(join(args.modules, "@xmpp/client/package.json"), "utf8")).version;
  const t = Number(args.timeout);
  const quietWait = Number(args["quiet-wait"]);
  const dom = args.domain;
  const tok = randomBytes(4).toString("hex");
  const users = args.users.split(",");
  check(users.length === 3, "--users needs three localparts");

  // --- an xmpp.js client and what it receives -------------------------------------
  function makeClient(label, user) {
    const c = client({
      service: `xmpp://${args.host}:${args.port}`,
      domain: dom,
      resource: `xmppjs-${tok}`,
      username: user,
      password: args.password,
    });
    const x = {
      label, c, user, bare: `${user}@${dom}`,
      mechanism: null, offered: null, errors: [],
      events: new Recorder(`${label} pubsub events`),
      chats: new Recorder(`${label} chat messages`),
      presences: new Recorder(`${label} presences`),
      pushes: new Recorder(`${label} roster pushes`),
      discoQueries: new Recorder(`${label} disco#info queries`),
      features: null, // what its disco#info answers (set by announce())
    };
    c.on("error", (e) => x.errors.push(String(e)));
    c.on("send", (el) => {
      if (el.is("auth", NS.SASL)) x.mechanism = el.attrs.mechanism;
      if (args.debug) console.error(`${label} SEND ${el}`);
    });
    c.on("element", (el) => {
      if (args.debug) console.error(`${label} RECV ${el}`);
      if (el.is("features", "http://etherx.jabber.org/streams")) {
        const mechs = el.getChild("mechanisms", NS.SASL);
        if (mechs) x.offered = mechs.getChildren("mechanism").map((m) => m.text());
      }
    });
    c.on("stanza", (st) => {
      if (st.is("message")) {
        const ev = st.getChild("event", NS.PUBSUB_EVENT);
        if (ev) {
          for (const items of ev.getChildren("items")) {
            for (const it of items.getChildren("item")) {
              x.events.add({ from: st.attrs.from, node: items.attrs.node, id: it.attrs.id, payload: it.getChildElements()[0] ?? null });
            }
          }
        }
        const body = st.getChildText("body");
        if (body !== null) x.chats.add({ from: st.attrs.from, type: st.attrs.type, body });
      } else if (st.is("presence")) {
        x.presences.add({ from: st.attrs.from, type: st.attrs.type ?? "available" });
      }
    });
    // RFC 6121 2.1.6: a roster push is answered with an empty result
    c.iqCallee.set(NS.ROSTER, "query", (ctx) => {
      for (const item of ctx.element.getChildren("item")) {
        x.pushes.add({ jid: item.attrs.jid, subscription: item.attrs.subscription, ask: item.attrs.ask ?? null });
      }
      return true;
    });
    // XEP-0115: the server asks what node#ver means
    c.iqCallee.get(NS.DISCO_INFO, "query", (ctx) => {
      const node = ctx.element.attrs.node;
      x.discoQueries.add({ from: ctx.stanza.attrs.from, node: node ?? null });
      return xml("query", { xmlns: NS.DISCO_INFO, ...(node && { node }) },
        xml("identity", { category: "client", type: "bot", name: "hydrant interop (xmpp.js)" }),
        ...(x.features ?? [NS.DISCO_INFO]).map((v) => xml("feature", { var: v })));
    });
    return x;
  }

  async function login(x) {
    const jid = await withTimeout(x.c.start(), t, `${x.label}: login (errors: ${x.errors})`);
    const sock = x.c.socket?.socket;
    check(sock instanceof tls.TLSSocket && sock.authorized,
      `${x.label}: not on a verified TLS connection (${sock?.authorizationError ?? "no TLS socket"})`);
    check(x.mechanism === "SCRAM-SHA-1", `${x.label}: authenticated with ${x.mechanism}, expected SCRAM-SHA-1`);
    check(jid.bare().toString() === x.bare, `${x.label}: bound ${jid}, expected ${x.bare}/...`);
    x.full = jid.toString();
    x.tls = sock.getProtocol();
  }

  const iq = (x, type, to, child) => withTimeout(
    x.c.iqCaller.request(xml("iq", { type, ...(to && { to }) }, child), t * 1000), t, `${x.label}: iq ${type}`);

  async function ping(x) {
    await iq(x, "get", dom, xml("ping", { xmlns: NS.PING }));
  }

  // XEP-0115 ver: sha-1 over "category/type/lang/name<" + sorted features, each + "<"
  function capsVer(features) {
    const s = "client/bot//hydrant interop (xmpp.js)<" + [...features].sort().map((f) => `${f}<`).join("");
    return createHash("sha1").update(s, "utf8").digest("base64");
  }

  // Available presence with caps; wait for the server's disco#info query for
  // node#ver (answered by the iq handler), then ping the server: afterwards it
  // knows this session's +notify set.
  async function announce(x) {
    x.features = [NS.DISCO_INFO, NS.CAPS, NS.PING, `${NS.GEOLOC}+notify`, `urn:hydrant:interop:xmppjs:${x.label}`];
    const ver = capsVer(x.features);
    await x.c.send(xml("presence", {}, xml("c", { xmlns: NS.CAPS, hash: "sha-1", node: CAPS_NODE, ver })));
    const q = await x.discoQueries.wait((q) => q.node === `${CAPS_NODE}#${ver}`, t,
      `the server's disco#info query for ${CAPS_NODE}#${ver} at ${x.label}`);
    check(q.from === dom || q.from.split("/")[0] === x.bare, `${x.label}: caps query from ${q.from}`);
    await ping(x);
    return { ver, q };
  }

  const a = makeClient("A", users[0]);
  const b = makeClient("B", users[1]);
  const c = makeClient("C", users[2]);
  const all = [a, b, c];
  try {
    // --- 1. log in ----------------------------------------------------------------------
    await Promise.all(all.map(login));
    step(`A ${a.full}, B ${b.full}, C ${c.full}: logged in with @xmpp/client ${clientVersion} on node ` +
      `${process.version}: STARTTLS (${a.tls}, certificate verified against the test CA), ` +
      `SASL ${a.mechanism} (server offered ${a.offered?.join(" ")}), resource bound`);

    // --- 2. the account is a PEP service ----------------------------------------------------
    const info = (await iq(a, "get", a.bare, xml("query", { xmlns: NS.DISCO_INFO }))).getChild("query", NS.DISCO_INFO);
    const idents = info.getChildren("identity").map((i) => `${i.attrs.category}/${i.attrs.type}`);
    const feats = info.getChildren("feature").map((f) => f.attrs.var);
    check(idents.includes("pubsub/pep"), `A: disco#info of ${a.bare} has identities [${idents}], no pubsub/pep`);
    // XEP-0163 6.1: with pubsub/pep the account lists the namespaces and features it
    // supports, "including all supported XEP-0060 features"; clients decide on them
    // (publish-options, XEP-0223: what Gajim and Conversations look for on the account
    // before they publish bookmarks, OMEMO bundles or avatars with access preconditions).
    const want = ["publish", "retrieve-items", "publish-options"].map((f) => `${NS.PUBSUB}#${f}`);
    const lacking = want.filter((f) => !feats.includes(f));
    check(lacking.length === 0, `A: disco#info of ${a.bare} (identities ${idents.join(", ")}) lacks ` +
      `${lacking.join(" ")}: it lists only ${feats.join(" ")}`);
    step(`A: disco#info of ${a.bare}: identities ${idents.join(", ")}; ${want.map((f) => f.split("#")[1]).join(", ")} ` +
      `among ${feats.length} features`);

    // --- 3. caps with geoloc+notify ---------------------------------------------------------
    for (const x of all) await iq(x, "get", null, xml("query", { xmlns: NS.ROSTER }));
    await a.c.send(xml("presence"));
    for (const x of [b, c]) {
      const { ver, q } = await announce(x);
      step(`${x.label}: presence with caps ver ${ver} (+notify for geoloc); the server asked disco#info ` +
        `node ...#${ver} (from ${q.from}), xmpp.js answered; ping answered after it`);
    }

    // --- 4. A <-> B mutual presence subscription ---------------------------------------------
    for (const [x, y] of [[a, b], [b, a]]) {
      await x.c.send(xml("presence", { to: y.bare, type: "subscribe" }));
      await y.presences.wait((p) => p.type === "subscribe" && p.from.split("/")[0] === x.bare, t,
        `subscribe from ${x.bare} at ${y.label}`);
      await y.c.send(xml("presence", { to: x.bare, type: "subscribed" }));
      await x.presences.wait((p) => p.type === "subscribed" && p.from.split("/")[0] === y.bare, t,
        `subscribed from ${y.bare} at ${x.label}`);
    }
    for (const [x, y] of [[a, b], [b, a]]) {
      await x.pushes.wait((p) => p.jid === y.bare && p.subscription === "both", t,
        `roster push subscription='both' for ${y.bare} at ${x.label}`);
    }
    step("A <-> B: mutual presence subscription (roster pushes: both); C has none");

    // --- 5. A publishes, reads back ------------------------------------------------------------
    const iid = `loc-${tok}`;
    const where = { lat: "48.8584", lon: "2.2945", locality: "Paris", text: `xmpp.js interop ${tok}` };
    const geoloc = () => xml("geoloc", { xmlns: NS.GEOLOC },
      ...Object.entries(where).map(([k, v]) => xml(k, {}, v)));
    const res = await iq(a, "set", null, xml("pubsub", { xmlns: NS.PUBSUB },
      xml("publish", { node: NS.GEOLOC }, xml("item", { id: iid }, geoloc()))));
    const pubItem = res.getChild("pubsub", NS.PUBSUB)?.getChild("publish")?.getChild("item");
    check(!pubItem || pubItem.attrs.id === iid, `A: publish result names item ${pubItem?.attrs.id}, sent ${iid}`);
    const samePayload = (p) => p && p.is("geoloc", NS.GEOLOC) &&
      Object.entries(where).every(([k, v]) => p.getChildText(k) === v);
    async function readItems(x) {
      const r = await iq(x, "get", a.bare, xml("pubsub", { xmlns: NS.PUBSUB }, xml("items", { node: NS.GEOLOC })));
      const items = r.getChild("pubsub", NS.PUBSUB).getChild("items").getChildren("item");
      return items.map((i) => ({ id: i.attrs.id, payload: i.getChildElements()[0] }));
    }
    const mine = await readItems(a);
    check(mine.length >= 1 && mine[0].id === iid && samePayload(mine[0].payload),
      `A: items of its geoloc node: ${mine.map((i) => `${i.id}: ${i.payload}`)}, expected ${iid} first with the payload`);
    step(`A: published ${iid} to its own PEP node ${NS.GEOLOC} (result: item ${pubItem?.attrs.id ?? "-"}); ` +
      `an items request reads it back (${mine.length} item${mine.length === 1 ? "" : "s"}, payload intact)`);

    // --- 6. B: the notification, and an items request ---------------------------------------------
    const ev = await b.events.wait((e) => e.node === NS.GEOLOC && e.id === iid, t, `A's geoloc ${iid} at B`);
    check(ev.from === a.bare, `B: notification from ${ev.from}, expected A's bare JID ${a.bare}`);
    check(samePayload(ev.payload), `B: notification payload ${ev.payload}`);
    const theirs = await readItems(b);
    check(theirs.length >= 1 && theirs[0].id === iid && samePayload(theirs[0].payload),
      `B: items of A's geoloc node: ${theirs.map((i) => i.id)}`);
    step(`B: notification from ${ev.from} with A's location (${where.locality}, ${where.lat} ${where.lon}); ` +
      `B's items request for A's node returns ${iid} too`);

    // --- 7. C: interest but no subscription ----------------------------------------------------------
    const sentinel = `sentinel ${tok}`;
    for (const x of [b, c]) await a.c.send(xml("message", { to: x.full, type: "chat" }, xml("body", {}, sentinel)));
    await c.chats.wait((m) => m.body === sentinel, t, "A's sentinel chat at C");
    await b.chats.wait((m) => m.body === sentinel, t, "A's sentinel chat at B");
    const leaked = await c.events.none((e) => e.node === NS.GEOLOC, quietWait);
    check(leaked === null, `C (no presence subscription to A) received A's location: ${JSON.stringify(leaked)}`);
    let refused = null;
    try {
      await readItems(c);
    } catch (e) {
      refused = e;
    }
    check(refused && refused.condition, `C: items request for A's node: ${refused ?? "succeeded"}, expected an error`);
    const errEl = refused.element;
    check(refused.condition === "not-authorized" && errEl.attrs.type === "auth" &&
      errEl.getChild("presence-subscription-required", NS.PUBSUB_ERRORS),
      `C: items request for A's node refused with ${errEl}, expected type auth <not-authorized/> + <presence-subscription-required/>`);
    step(`C: got A's later chat message, and no location event (also none ${quietWait}s later); its items request ` +
      "for A's node: auth/not-authorized + presence-subscription-required");

    // --- 8. exactly once -----------------------------------------------------------------------------------
    const n = b.events.items.filter((e) => e.node === NS.GEOLOC && e.id === iid).length;
    check(n === 1, `B: ${n} notifications for ${iid}`);
    step(`B: exactly one notification (checked after A's later chat message, ${quietWait}s on)`);

    await iq(a, "set", null, xml("pubsub", { xmlns: `${NS.PUBSUB}#owner` }, xml("delete", { node: NS.GEOLOC })));
  } finally {
    await Promise.allSettled(all.map((x) => withTimeout(x.c.stop(), 3, `${x.label}: stop`)));
  }
}

try {
  await main();
  step("PASS: all xmppjs_pep steps passed");
  process.exit(0);
} catch (e) {
  if (e instanceof Failure) step(`FAIL: ${e.message}`);
  else {
    console.error(e);
    step(`FAIL: unexpected exception: ${e}`);
  }
  process.exit(1);
}

// Interop test: XEP-0138 zlib stream compression with gloox (Debian's libgloox-dev),
// a second stock client implementation next to slixmpp_zlib.py: C++, GnuTLS, and its
// own XEP-0138 code (gloox's CompressionZlib, over the system's libz), unpatched.
//
//   g++ -O1 -o gloox_zlib gloox_zlib.cpp $(pkg-config --cflags --libs gloox)
//   gloox_zlib --host 127.0.0.1 --port 5222 --domain localhost --ca ca.crt
//              --users a,b,c --password PW [--items 20] [--timeout 15] [--debug]
//
// Three gloox clients in one thread (each polled with Client::recv):
//   A  publisher, compression switched off (Client::setCompression(false)): plain;
//   B, C  subscribers, gloox's defaults (compression on), so they take zlib when the
//         server offers it.
// All three: STARTTLS required, the test CA as the only trust anchor and the
// certificate checked (Session::onTLSConnect), SASL SCRAM-SHA-1 (gloox would also take
// PLAIN; SCRAM proves more).
//
// Checked, each printed as a step; exit status 0 only if all passed:
//   - every client: GnuTLS verified the certificate against the test CA and the
//     domain; SCRAM-SHA-1 was the mechanism (the stanza trace).
//   - B and C: compression really active. Three independent signs:
//     gloox's own flag (ClientBase::m_compressionActive, read through a subclass),
//     the stanza trace (gloox's XML log): `<success/>` (SASL) < `<compress/>` sent <
//     `<compressed/>` received < the bind request, i.e. XEP-0170's order, with
//     zlib offered in the features after SASL (and not before); and byte counts:
//     every byte the server sent after `<compressed/>` went through the zlib
//     inflater (CountingZlib, which hands the bytes unchanged to gloox's own
//     CompressionDefault), and fewer bytes were read than inflated. A is checked
//     to be uncompressed. (hydrant itself logs nothing per compressed c2s stream.)
//   - A creates a node on pubsub.DOMAIN, B and C subscribe, A publishes ITEMS Atom
//     entries (~2.3 KB, random hex content, so not trivially compressible), each
//     acknowledged. B and C must each receive every item exactly once, in publish
//     order, with the same id, title, link and content; a short drain after the
//     last one catches duplicates.
//   - A message B sends (compressed, client to server) reaches A.
// A hard overall deadline (alarm) ends a hung run with FAIL.
//
// What gloox 1.0.24 needed (each found by running against hydrant):
//   - The CA: ClientBase::setCACerts alone leaves GnuTLS without it (the server's
//     certificate then has status CertInvalid|CertSignerUnknown), so the TLSDefault
//     is built here and given the CA after init().
//   - SCRAM: with SaslMechScramSha1 alone in setSASLMechanisms, gloox sends the GS2
//     header "y,," first and c=biws ("n,,") last, a mismatch hydrant refuses; keeping
//     the -PLUS bit makes the header "n,,", consistent (see the constructor).
//   - Compression order: gloox asks for compression whenever the features offer it,
//     checked before SASL; hydrant offers it only after SASL, so gloox compresses
//     after SASL and before bind, as XEP-0170 says. It still logs "negotiating
//     Compression at this stage is not recommended. See XEP-0170" (printed as a
//     warning): its message, not a problem of the order.
//   - A pubsub event's ItemOperation::payload is the whole <item/> (cloned), not the
//     entry inside it: compare() looks inside.

#include <gloox/client.h>
#include <gloox/compressionbase.h>
#include <gloox/compressiondatahandler.h>
#include <gloox/compressiondefault.h>
#include <gloox/connectionlistener.h>
#include <gloox/connectiontcpclient.h>
#include <gloox/error.h>
#include <gloox/loghandler.h>
#include <gloox/message.h>
#include <gloox/messagehandler.h>
#include <gloox/pubsub.h>
#include <gloox/pubsubevent.h>
#include <gloox/pubsubitem.h>
#include <gloox/pubsubmanager.h>
#include <gloox/pubsubresulthandler.h>
#include <gloox/tag.h>
#include <gloox/tlsdefault.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace gloox;

namespace {

const char* const NS_ATOM = "http://www.w3.org/2005/Atom";
const auto T0 = std::chrono::steady_clock::now();

double elapsed() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - T0).count();
}

void step(const std::string& msg) {
  std::printf("[%6.2fs] %s\n", elapsed(), msg.c_str());
  std::fflush(stdout);
}

[[noreturn]] void fail(const std::string& msg) {
  std::printf("FAIL: %s\n", msg.c_str());
  std::fflush(stdout);
  _exit(1);  // no orderly goodbye: the server sees the connections drop
}

void check(bool cond, const std::string& msg) {
  if (!cond) fail(msg);
}

void on_alarm(int) {
  const char msg[] = "FAIL: overall deadline passed (hung?)\n";
  ssize_t n = write(STDOUT_FILENO, msg, sizeof msg - 1);
  (void)n;
  _exit(1);
}

std::string error_text(const Error* e) {
  if (!e) return "no error";
  std::unique_ptr<Tag> t(e->tag());
  return t ? t->xml() : "an error";
}

// gloox's zlib, with the bytes counted on both sides of it. The client hands this
// everything it reads once compression is active (after TLS decryption) and
// everything it writes; the inner CompressionDefault (zlib) does the work.
class CountingZlib : public CompressionBase, public CompressionDataHandler {
 public:
  explicit CountingZlib(CompressionDataHandler* client)
      : CompressionBase(client), inner_(this, CompressionDefault::MethodZlib) {}
  bool init() override { return m_valid = inner_.init(); }
  void compress(const std::string& data) override {
    plain_out += data.size();
    inner_.compress(data);
  }
  void decompress(const std::string& data) override {
    wire_in += data.size();
    inner_.decompress(data);
  }
  void cleanup() override { inner_.cleanup(); }
  void handleCompressedData(const std::string& data) override {
    wire_out += data.size();
    m_handler->handleCompressedData(data);
  }
  void handleDecompressedData(const std::string& data) override {
    plain_in += data.size();
    m_handler->handleDecompressedData(data);
  }

  unsigned long long wire_in = 0, plain_in = 0, wire_out = 0, plain_out = 0;

 private:
  CompressionDefault inner_;
};

// gloox::Client with its protected "compression negotiated and on" flag readable.
class ZClient : public Client {
 public:
  using Client::Client;
  bool compressionActive() const { return m_compressionActive; }
};

struct Received {
  std::string node, id;
  std::unique_ptr<Tag> item;  // the <item/> (gloox's ItemOperation::payload)
};

struct Sent {
  std::string id, title, atom_id, href, content;
};

class Session : public ConnectionListener, public MessageHandler, public LogHandler,
                public PubSub::ResultHandler {
 public:
  Session(std::string label, const JID& jid, const std::string& password, bool compress,
          const std::string& host, int port, const std::string& ca, bool debug)
      : label(std::move(label)), debug_(debug), client_(jid, password, port), pubsub_(&client_) {
    client_.setTls(TLSRequired);
    client_.setCompression(compress);
    // SCRAM-SHA-1 (hydrant offers no -PLUS, so gloox picks plain SCRAM-SHA-1). The -PLUS
    // bit must stay in the set: without it gloox 1.0.24 opens with the GS2 flag "y,,"
    // but still sends c=biws ("n,,") in its final message, which RFC 5802 5.1 forbids
    // and hydrant rightly refuses (malformed-request).
    client_.setSASLMechanisms(SaslMechScramSha1 | SaslMechScramSha1Plus);
    client_.setResource("gloox-zlib");
    // TCP to the numeric address; the TLS name check and the stream's to= stay the domain.
    client_.setConnectionImpl(new ConnectionTCPClient(&client_, client_.logInstance(), host, port));
    // The trust anchor, loaded into GnuTLS ourselves: gloox 1.0's GnuTLSClient::init
    // does not take ClientBase::setCACerts' list, only TLSBase::setCACerts on an
    // initialised object loads it (gnutls_certificate_set_x509_trust_file).
    auto* tls = new TLSDefault(&client_, jid.server());
    check(tls->init(EmptyString, EmptyString, StringList()), this->label + ": TLS init failed");
    tls->setCACerts(StringList{ca});
    client_.setEncryptionImpl(tls);
    if (compress) {
      zlib_ = new CountingZlib(&client_);
      client_.setCompressionImpl(zlib_);  // owned by the client from here on
    }
    client_.registerStanzaExtension(new PubSub::Event());
    client_.registerConnectionListener(this);
    client_.registerMessageHandler(this);
    client_.logInstance().registerLogHandler(LogLevelDebug, LogAreaAll, this);
  }

  void connect() {
    check(client_.connect(false), label + ": could not connect");
  }
  void poll() {
    if (!disconnected_) client_.recv(10000);  // microseconds
  }

  // ConnectionListener
  void onConnect() override { connected_ = true; }
  void onDisconnect(ConnectionError e) override {
    disconnected_ = true;
    connected_ = false;
    if (!leaving_)
      fail(label + ": disconnected (gloox ConnectionError " + std::to_string(e) +
           (e == ConnTlsFailed ? ", TLS: certificate status " + std::to_string(cert_.status) : "") +
           (e == ConnAuthenticationFailed ? ", SASL error " + std::to_string(client_.authError()) : "") +
           (e == ConnCompressionFailed ? ", compression setup refused" : "") + ")");
  }
  // Accept the server only if GnuTLS verified its certificate against the test CA
  // (gnutls_certificate_verify_peers2: not CertInvalid, CertSignerUnknown,
  // CertSignerNotCa, CertRevoked), within its validity dates and issued for the
  // domain (gnutls_x509_crt_check_hostname; not CertWrongPeer): status == CertOk.
  // CertInfo::chain is not used: gloox 1.0 overwrites it with a check against an
  // empty CA list.
  bool onTLSConnect(const CertInfo& info) override {
    cert_ = info;
    tls_checked_ = true;
    return info.status == CertOk;
  }
  void onStreamEvent(StreamEvent ev) override { events.push_back(ev); }

  // MessageHandler
  void handleMessage(const Message& msg, MessageSession*) override {
    if (const auto* ev = msg.findExtension<PubSub::Event>(ExtPubSubEvent)) {
      for (const auto* op : ev->items()) {
        if (op->retract) continue;
        received.push_back(Received{ev->node(), op->item,
                                    std::unique_ptr<Tag>(op->payload ? op->payload->clone() : nullptr)});
      }
    }
    if (msg.subtype() == Message::Chat && !msg.body().empty())
      messages.push_back({msg.from().full(), msg.body()});
  }

  // LogHandler: gloox logs every stanza it writes and reads (after inflating).
  void handleLog(LogLevel level, LogArea area, const std::string& text) override {
    if (area == LogAreaXmlIncoming || area == LogAreaXmlOutgoing)
      trace.push_back({area == LogAreaXmlIncoming ? '<' : '>', text});
    if (debug_ || level >= LogLevelWarning)
      std::printf("  [%s gloox %s] %s\n", label.c_str(),
                  area == LogAreaXmlIncoming ? "in" : area == LogAreaXmlOutgoing ? "out" : "log",
                  text.size() > 600 && !debug_ ? (text.substr(0, 600) + "...").c_str() : text.c_str());
  }

  // PubSub::ResultHandler: only creation, subscription and publication are used.
  void handleNodeCreation(const std::string&, const JID&, const std::string& node,
                          const Error* error) override {
    results.push_back({"create " + node, error ? error_text(error) : ""});
  }
  void handleSubscriptionResult(const std::string&, const JID&, const std::string& node,
                                const std::string&, const JID& jid, const PubSub::SubscriptionType sub,
                                const Error* error) override {
    std::string err = error ? error_text(error)
                            : sub != PubSub::SubscriptionSubscribed
                                  ? "subscription state " + std::to_string(sub) + " for " + jid.full()
                                  : "";
    results.push_back({"subscribe " + node, err});
  }
  void handleItemPublication(const std::string&, const JID&, const std::string& node,
                             const PubSub::ItemList& items, const Error* error) override {
    (void)items;
    results.push_back({"publish " + node, error ? error_text(error) : ""});
  }
  void handleItem(const JID&, const std::string&, const Tag*) override {}
  void handleItems(const std::string&, const JID&, const std::string&, const PubSub::ItemList&,
                   const Error*) override {}
  void handleItemDeletion(const std::string&, const JID&, const std::string&,
                          const PubSub::ItemList&, const Error*) override {}
  void handleUnsubscriptionResult(const std::string&, const JID&, const Error*) override {}
  void handleSubscriptionOptions(const std::string&, const JID&, const JID&, const std::string&,
                                 const DataForm*, const std::string&, const Error*) override {}
  void handleSubscriptionOptionsResult(const std::string&, const JID&, const JID&,
                                       const std::string&, const std::string&,
                                       const Error*) override {}
  void handleSubscribers(const std::string&, const JID&, const std::string&,
                         const PubSub::SubscriptionList&, const Error*) override {}
  void handleSubscribersResult(const std::string&, const JID&, const std::string&,
                               const PubSub::SubscriberList*, const Error*) override {}
  void handleAffiliates(const std::string&, const JID&, const std::string&,
                        const PubSub::AffiliateList*, const Error*) override {}
  void handleAffiliatesResult(const std::string&, const JID&, const std::string&,
                              const PubSub::AffiliateList*, const Error*) override {}
  void handleNodeConfig(const std::string&, const JID&, const std::string&, const DataForm*,
                        const Error*) override {}
  void handleNodeConfigResult(const std::string&, const JID&, const std::string&,
                              const Error*) override {}
  void handleNodeDeletion(const std::string&, const JID&, const std::string&,
                          const Error*) override {}
  void handleNodePurge(const std::string&, const JID&, const std::string&, const Error*) override {}
  void handleSubscriptions(const std::string&, const JID&, const PubSub::SubscriptionMap&,
                           const Error*) override {}
  void handleAffiliations(const std::string&, const JID&, const PubSub::AffiliationMap&,
                          const Error*) override {}
  void handleDefaultNodeConfig(const std::string&, const JID&, const DataForm*,
                               const Error*) override {}

  void leave() {
    leaving_ = true;
    if (!disconnected_) client_.disconnect();
  }

  ZClient& client() { return client_; }
  const ZClient& client() const { return client_; }
  PubSub::Manager& pubsub() { return pubsub_; }
  const CountingZlib* zlib() const { return zlib_; }
  const CertInfo& cert() const { return cert_; }
  bool connected() const { return connected_; }
  bool tlsChecked() const { return tls_checked_; }

  // index of the first trace entry at or after `from` in direction `dir` containing
  // `needle`, or -1
  long find(char dir, const std::string& needle, long from = 0) const {
    for (size_t i = static_cast<size_t>(from); i < trace.size(); ++i)
      if (trace[i].first == dir && trace[i].second.find(needle) != std::string::npos)
        return static_cast<long>(i);
    return -1;
  }

  const std::string label;
  std::vector<StreamEvent> events;
  std::vector<std::pair<char, std::string>> trace;
  std::vector<Received> received;
  std::vector<std::pair<std::string, std::string>> messages;  // from, body
  std::vector<std::pair<std::string, std::string>> results;   // what, error ("" = ok)

 private:
  bool debug_;
  bool connected_ = false, disconnected_ = false, leaving_ = false, tls_checked_ = false;
  CertInfo cert_{};
  ZClient client_;
  PubSub::Manager pubsub_;
  CountingZlib* zlib_ = nullptr;
};

// Poll every session until `done` holds; FAIL at the deadline.
void pump(std::vector<Session*>& all, double secs, const std::string& what,
          const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(secs);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      fail("timed out after " + std::to_string(static_cast<int>(secs)) + "s waiting for " + what);
    for (auto* s : all) s->poll();
  }
}

// Wait for the next result a session's ResultHandler records, which must be no error.
void expect_ok(std::vector<Session*>& all, Session& s, double secs, const std::string& what) {
  size_t before = s.results.size();
  pump(all, secs, what, [&] { return s.results.size() > before; });
  const auto& r = s.results[before];
  check(r.second.empty(), s.label + ": " + what + " refused: " + r.second);
}

std::string random_hex(std::mt19937_64& rng, size_t chars) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(chars);
  for (size_t i = 0; i < chars; ++i) out += digits[rng() & 15];
  return out;
}

// An Atom entry like a photo post with a caption, ~2.3 KB, and what identifies it.
Tag* atom_entry(int n, const std::string& tok, std::mt19937_64& rng, Sent& sent) {
  char updated[32];
  std::time_t now = std::time(nullptr);
  std::strftime(updated, sizeof updated, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  sent.title = "photo " + std::to_string(n) + " (" + tok + ")";
  sent.atom_id = "urn:hydrant:interop:gloox:" + tok + ":" + std::to_string(n);
  sent.href = "https://photos.example/" + tok + "/" + std::to_string(n) + ".jpg";
  sent.content = random_hex(rng, 2000);
  Tag* entry = new Tag("entry");
  entry->setXmlns(NS_ATOM);
  new Tag(entry, "title", sent.title);
  new Tag(entry, "id", sent.atom_id);
  new Tag(entry, "updated", updated);
  Tag* link = new Tag(entry, "link", "rel", "enclosure");
  link->addAttribute("type", "image/jpeg");
  link->addAttribute("href", sent.href);
  link->addAttribute("length", std::to_string(400000 + n));
  Tag* author = new Tag(entry, "author");
  new Tag(author, "name", "interop");
  Tag* content = new Tag(entry, "content", sent.content);
  content->addAttribute("type", "text");
  return entry;
}

// What is wrong with a received item, or "" if it is the entry that was sent.
std::string compare(const Received& r, const Sent& s) {
  if (r.id != s.id) return "item id " + r.id + ", expected " + s.id;
  if (!r.item) return s.id + ": no payload";
  const Tag* entry = r.item->name() == "entry" ? r.item.get() : r.item->findChild("entry");
  if (!entry) return s.id + ": no <entry/> in " + r.item->xml().substr(0, 200);
  if (entry->xmlns() != NS_ATOM) return s.id + ": entry namespace '" + entry->xmlns() + "'";
  auto text = [&](const char* name) {
    const Tag* t = entry->findChild(name);
    return t ? t->cdata() : std::string("<missing>");
  };
  if (text("title") != s.title) return s.id + ": title '" + text("title") + "'";
  if (text("id") != s.atom_id) return s.id + ": atom id '" + text("id") + "'";
  const Tag* link = entry->findChild("link");
  if (!link || link->findAttribute("href") != s.href) return s.id + ": link differs";
  if (text("content") != s.content)
    return s.id + ": content differs (" + std::to_string(text("content").size()) + " chars, sent " +
           std::to_string(s.content.size()) + ")";
  return "";
}

struct Options {
  std::string host = "127.0.0.1", domain = "localhost", ca, users, password;
  int port = 0, items = 20;
  double timeout = 15;
  bool debug = false;
};

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail("missing value for " + a);
      return argv[++i];
    };
    if (a == "--host") o.host = value();
    else if (a == "--port") o.port = std::atoi(value().c_str());
    else if (a == "--domain") o.domain = value();
    else if (a == "--ca") o.ca = value();
    else if (a == "--users") o.users = value();
    else if (a == "--password") o.password = value();
    else if (a == "--items") o.items = std::atoi(value().c_str());
    else if (a == "--timeout") o.timeout = std::atof(value().c_str());
    else if (a == "--debug") o.debug = true;
    else fail("unknown argument " + a);
  }
  if (o.port <= 0 || o.ca.empty() || o.users.empty() || o.password.empty() || o.items <= 0)
    fail("usage: gloox_zlib --port P --ca FILE --users A,B,C --password PW "
         "[--host H] [--domain D] [--items N] [--timeout S] [--debug]");
  return o;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0, pos;
  while ((pos = s.find(sep, start)) != std::string::npos) {
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
  out.push_back(s.substr(start));
  return out;
}

void check_compressed(const Session& s) {
  const std::string& who = s.label;
  check(s.client().compressionActive(), who + ": gloox reports the stream uncompressed");
  // the order on the wire (as gloox logs it: after TLS, after inflating)
  long success = s.find('<', "<success");
  long features = s.find('<', "http://jabber.org/features/compress", success < 0 ? 0 : success);
  long compress = s.find('>', "<compress xmlns='http://jabber.org/protocol/compress'");
  long compressed = s.find('<', "<compressed");
  long bind = s.find('>', "urn:ietf:params:xml:ns:xmpp-bind");
  check(success >= 0, who + ": no SASL <success/> in the trace");
  check(features > success, who + ": no zlib compression feature offered after SASL");
  check(s.trace[features].second.find("<method>zlib</method>") != std::string::npos,
        who + ": compression offered without zlib: " + s.trace[features].second);
  check(compress > features, who + ": <compress/> not sent after the features");
  check(s.trace[compress].second.find("<method>zlib</method>") != std::string::npos,
        who + ": <compress/> did not ask for zlib");
  check(compressed > compress, who + ": no <compressed/> after <compress/>");
  check(bind > compressed, who + ": resource binding not after <compressed/> (XEP-0170)");
  check(s.find('<', "http://jabber.org/features/compress") == features,
        who + ": compression offered before SASL");
}

void run(const Options& o) {
  auto users = split(o.users, ',');
  check(users.size() == 3, "--users needs three localparts");
  std::random_device seed;
  std::mt19937_64 rng((static_cast<unsigned long long>(seed()) << 32) ^ seed());
  const std::string tok = random_hex(rng, 8);
  const std::string node = "gloox-zlib-" + tok;
  const JID service("pubsub." + o.domain);
  const double t = o.timeout;

  Session a("A", JID(users[0] + "@" + o.domain), o.password, false, o.host, o.port, o.ca, o.debug);
  Session b("B", JID(users[1] + "@" + o.domain), o.password, true, o.host, o.port, o.ca, o.debug);
  Session c("C", JID(users[2] + "@" + o.domain), o.password, true, o.host, o.port, o.ca, o.debug);
  std::vector<Session*> all{&a, &b, &c};
  std::vector<Session*> subs{&b, &c};

  for (auto* s : all) s->connect();
  pump(all, t, "all three to log in", [&] { return a.connected() && b.connected() && c.connected(); });
  for (auto* s : all) {
    check(s->tlsChecked(), s->label + ": logged in without a TLS certificate check");
    check(s->find('>', "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'") >= 0,
          s->label + ": did not authenticate with SCRAM-SHA-1");
  }
  step("A, B, C logged in: STARTTLS (" + a.cert().protocol + ", " + a.cert().cipher +
       "; certificate '" + a.cert().server + "' verified against the test CA '" + a.cert().issuer +
       "'), SASL SCRAM-SHA-1, bound");
  check(!a.client().compressionActive(), "A: compressed although compression was switched off");
  for (auto* s : subs) check_compressed(*s);
  step("B and C: zlib offered after SASL, <compress/> -> <compressed/>, then bind "
       "(XEP-0170 order); gloox reports compression active; A stays plain");

  a.pubsub().createNode(service, node, nullptr, &a);
  expect_ok(all, a, t, "create node " + node);
  for (auto* s : subs) {
    s->pubsub().subscribe(service, node, s);
    expect_ok(all, *s, t, "subscribe to " + node);
  }
  step("A created " + service.full() + "/" + node + "; B and C subscribed over their compressed streams");

  std::vector<Sent> sent;
  for (int i = 0; i < o.items; ++i) {
    Sent s;
    s.id = "i" + std::to_string(i);
    auto* item = new PubSub::Item();
    item->setID(s.id);
    item->setPayload(atom_entry(i, tok, rng, s));
    PubSub::ItemList items{item};
    a.pubsub().publishItem(service, node, items, nullptr, &a);
    expect_ok(all, a, t, "publish " + s.id);
    sent.push_back(s);
  }
  step("A published " + std::to_string(o.items) + " items (~2.3 KB Atom entries, random hex), each acknowledged");

  auto ours = [&](const Session& s) {
    size_t n = 0;
    for (const auto& r : s.received) n += r.node == node;
    return n;
  };
  pump(all, t, "every notification at B and C",
       [&] { return ours(b) >= sent.size() && ours(c) >= sent.size(); });
  // a moment more: a duplicate would arrive right behind the last one
  auto drain_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  pump(all, 2, "the drain", [&] { return std::chrono::steady_clock::now() > drain_until; });

  for (auto* s : subs) {
    std::vector<const Received*> got;
    for (const auto& r : s->received)
      if (r.node == node) got.push_back(&r);
    check(got.size() == sent.size(), s->label + ": " + std::to_string(got.size()) +
                                         " notifications for " + std::to_string(sent.size()) + " items");
    for (size_t i = 0; i < sent.size(); ++i) {
      std::string wrong = compare(*got[i], sent[i]);
      check(wrong.empty(), s->label + ": notification " + std::to_string(i) + ": " + wrong);
    }
    const CountingZlib* z = s->zlib();
    check(z && z->plain_in > 0, s->label + ": nothing went through the inflater");
    check(z->plain_in >= sent.size() * 2000, s->label + ": only " + std::to_string(z->plain_in) +
                                                 " bytes inflated for " + std::to_string(sent.size()) +
                                                 " notifications of ~2.3 KB");
    check(z->wire_in < z->plain_in, s->label + ": read " + std::to_string(z->wire_in) +
                                        " bytes for " + std::to_string(z->plain_in) + " inflated");
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.2f", double(z->wire_in) / double(z->plain_in));
    step(s->label + ": all " + std::to_string(sent.size()) +
         " items exactly once, in order, payloads intact; read " + std::to_string(z->wire_in) +
         " bytes (after TLS) for " + std::to_string(z->plain_in) + " inflated (" + ratio +
         "x); wrote " + std::to_string(z->wire_out) + " deflated for " +
         std::to_string(z->plain_out));
  }

  const std::string body = "compressed " + tok;
  b.client().send(Message(Message::Chat, a.client().jid(), body));
  pump(all, t, "B's message at A", [&] {
    for (const auto& m : a.messages)
      if (m.second == body) return true;
    return false;
  });
  for (const auto& m : a.messages)
    if (m.second == body)
      check(m.first == b.client().jid().full(), "message from " + m.first + ", expected " + b.client().jid().full());
  step("a message B sent compressed reached A");

  for (auto* s : all) s->leave();
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  std::signal(SIGALRM, on_alarm);
  alarm(static_cast<unsigned>(o.timeout * 5 + 10));
  run(o);
  std::printf("PASS: gloox with zlib (XEP-0138) receives every notification\n");
  return 0;
}

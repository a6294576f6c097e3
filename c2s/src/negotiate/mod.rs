//! Stream negotiation before a resource is bound (RFC 6120 sections 4.3, 5, 6, 7).

pub(crate) mod bind;
pub(crate) mod compress;
pub(crate) mod register;
pub(crate) mod sasl;
pub(crate) mod starttls;

use hydrant_proto::{Element, StreamError, StreamErrorCondition as Cond, ns};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::backend::Backend;
use crate::stream::{Flow, Stream};

impl<S, B> Stream<'_, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    /// TLS is on offer and not yet in place.
    pub(crate) fn tls_pending(&self) -> bool {
        !self.secure && self.cfg().tls.is_some()
    }

    /// SASL and registration are allowed on this stream now.
    pub(crate) fn may_authenticate(&self) -> bool {
        self.secure || !self.cfg().require_tls
    }

    /// `<stream:features/>` for the current state (RFC 6120 4.3.2).
    pub(crate) fn features(&self) -> Vec<u8> {
        let mut feats: Vec<Element> = Vec::new();
        if self.username.is_some() {
            // XEP-0170: compression after SASL, before binding.
            if self.cfg().compression && !self.conn.is_compressed() {
                feats.push(
                    Element::new("compression", ns::COMPRESS_FEATURE)
                        .with_child(Element::new("method", ns::COMPRESS_FEATURE).with_text("zlib")),
                );
            }
            feats.push(Element::new("bind", ns::BIND));
            if self.cfg().stream_management {
                feats.push(Element::new("sm", hydrant_stream::sm::NS));
            }
            if self.cfg().csi {
                feats.push(Element::new("csi", hydrant_stream::csi::NS));
            }
            // RFC 6121 (errata) / RFC 3921 session establishment, optional for old clients.
            feats.push(
                Element::new("session", ns::SESSION)
                    .with_child(Element::new("optional", ns::SESSION)),
            );
            feats.extend(self.cfg().extra_features.iter().cloned());
        } else {
            if self.tls_pending() {
                let mut starttls = Element::new("starttls", ns::TLS);
                if self.cfg().require_tls {
                    starttls.append_child(Element::new("required", ns::TLS));
                }
                feats.push(starttls);
            }
            if self.may_authenticate() {
                let mut mechs = Element::new("mechanisms", ns::SASL);
                for m in self.mechanisms() {
                    mechs.append_child(Element::new("mechanism", ns::SASL).with_text(m.as_str()));
                }
                feats.push(mechs);
                if self.cfg().allow_registration {
                    feats.push(Element::new("register", ns::REGISTER_FEATURE));
                }
            }
        }
        let mut out = b"<stream:features>".to_vec();
        for f in &feats {
            f.write_to(&mut out, ns::CLIENT);
        }
        out.extend_from_slice(b"</stream:features>");
        out
    }

    pub(crate) async fn on_preauth_element(&mut self, el: Element) -> Flow {
        if el.is("starttls", ns::TLS) {
            return self.on_starttls();
        }
        if el.ns() == ns::SASL {
            self.on_sasl(el).await;
            return Flow::Continue;
        }
        if self.tls_pending() && self.cfg().require_tls {
            self.stream_error(
                StreamError::new(Cond::PolicyViolation).with_text("STARTTLS is required first"),
            );
            return Flow::Continue;
        }
        if el.is("iq", ns::CLIENT) && self.is_register_iq(&el) {
            self.on_register(el).await;
            return Flow::Continue;
        }
        // RFC 6120 4.9.3.12: no stanzas are processed before authentication.
        self.stream_error(StreamError::new(Cond::NotAuthorized));
        Flow::Continue
    }

    pub(crate) async fn on_authenticated_element(&mut self, el: Element) -> Flow {
        if el.is("compress", ns::COMPRESS) {
            return self.on_compress(&el);
        }
        if el.is("resume", hydrant_stream::sm::NS) && self.cfg().stream_management {
            self.on_resume(&el).await;
            return Flow::Continue;
        }
        if el.is("enable", hydrant_stream::sm::NS) {
            // XEP-0198 3: stream management needs a bound resource first.
            self.sm_failed("unexpected-request", None);
            return Flow::Continue;
        }
        if el.is("iq", ns::CLIENT) && el.get_child("bind", ns::BIND).is_some() {
            self.on_bind(el).await;
            return Flow::Continue;
        }
        // RFC 6120 7.1: a stanza before resource binding is not processed and the stream
        // is closed with <not-authorized/>.
        self.stream_error(StreamError::new(Cond::NotAuthorized));
        Flow::Continue
    }
}

//! XEP-0138 stream compression (zlib), negotiated after authentication and before
//! binding (XEP-0170). The compressing itself is `hydrant_stream::zlib`: no deflate state
//! per stream, shared notification parts deflated once for every subscriber.

use hydrant_proto::{Element, ns};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::backend::Backend;
use crate::stream::{Flow, Stream};

impl<S, B> Stream<'_, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    /// `<compress/>`: `<compressed/>` and a compressed stream from the next byte on
    /// (XEP-0138 5), or `<failure/>` and the stream goes on uncompressed (XEP-0138 6).
    pub(crate) fn on_compress(&mut self, el: &Element) -> Flow {
        let failure = |condition: &str| {
            let mut out = Element::new("failure", ns::COMPRESS);
            out.append_child(Element::new(condition, ns::COMPRESS));
            out
        };
        if !self.cfg().compression || self.conn.is_compressed() {
            // Not offered (or on already): the XEP's failure for a setup that cannot be.
            self.send_element(&failure("setup-failed"));
            return Flow::Continue;
        }
        let zlib = el
            .children()
            .any(|m| m.is("method", ns::COMPRESS) && m.text().trim() == "zlib");
        if !zlib {
            self.send_element(&failure("unsupported-method"));
            return Flow::Continue;
        }
        self.conn
            .send(&b"<compressed xmlns='http://jabber.org/protocol/compress'/>"[..]);
        Flow::Compress
    }
}

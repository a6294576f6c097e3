//! STARTTLS (RFC 6120 section 5).

use hydrant_proto::{StreamError, StreamErrorCondition as Cond};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::backend::Backend;
use crate::stream::{Flow, Stream};

impl<S, B> Stream<'_, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    pub(crate) fn on_starttls(&mut self) -> Flow {
        if !self.tls_pending() {
            // RFC 6120 5.4.2.2: the failure case is <failure/> followed by closing the
            // stream; here TLS is either not configured or already in place.
            self.conn
                .send(&b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"[..]);
            self.stream_error(
                StreamError::new(Cond::PolicyViolation).with_text("TLS not available"),
            );
            return Flow::Continue;
        }
        // RFC 6120 5.4.3.3: the handshake starts right after the closing '>' of <proceed/>.
        self.conn
            .send(&b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"[..]);
        Flow::StartTls
    }
}

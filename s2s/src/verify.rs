//! The receiving server's check of a dialback key (XEP-0220 2.3): a stream of its own
//! to the authoritative server of the originating domain, one `<db:verify/>`, its answer.

use hydrant_proto::{StreamEvent, ns};
use tokio::time::Instant;
use tracing::debug;

use crate::Shared;
use crate::dialback::{DbElement, DbKind};
use crate::failure::Failure;
use crate::open::{next_event, open};

/// Asks the authoritative server of `originating` whether `key` is the key it gave for
/// the stream `stream_id` we (as `receiving`) assigned. `Ok(true)`: valid.
pub(crate) async fn verify<B>(
    shared: &Shared<B>,
    receiving: &str,
    originating: &str,
    stream_id: &str,
    key: String,
) -> Result<bool, Failure> {
    let deadline = Instant::now() + shared.cfg.negotiate_timeout;
    let mut opened = open(shared, receiving, originating, deadline).await?;
    let req = DbElement::VerifyRequest {
        from: receiving.to_owned(),
        to: originating.to_owned(),
        id: stream_id.to_owned(),
        key,
    };
    opened.conn.send(req.to_bytes());
    loop {
        match next_event(&mut opened.conn, deadline).await? {
            StreamEvent::Stanza(el) if el.ns() == ns::DIALBACK => {
                if let Ok(DbElement::VerifyResponse { from, to, id, kind }) =
                    crate::dialback::parse(&el)
                    && from == originating
                    && to == receiving
                    && id == stream_id
                {
                    hydrant_stream::close::queue_close(&opened.conn.outbox);
                    return Ok(matches!(kind, DbKind::Valid));
                }
                debug!(%el, "unexpected dialback element on a verify stream");
            }
            StreamEvent::Stanza(el) if el.is("error", ns::STREAM) => {
                return Err(Failure::NotAuthorized(format!("stream error: {el}")));
            }
            StreamEvent::Close => return Err(Failure::Closed),
            _ => {}
        }
    }
}

//! XEP-0138 stream compression (zlib, RFC 1950) as a layer under the XML stream.
//!
//! Both directions are one zlib stream each for the rest of the connection. Every write
//! is compressed with a sync flush, so the peer can decode each stanza as soon as it
//! arrives (what XEP-0138 section 3 asks of both sides); reads inflate whatever arrived.
//! Written for the generator rather than taken from a crate: it has to sit between the
//! socket (or TLS) and the streaming scanner as one more `AsyncRead + AsyncWrite`, and
//! `async-compression` only offers one direction per wrapper.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Compressed bytes read from the socket per read.
const IN_CHUNK: usize = 8192;

/// Bytes read off compressed streams, process-wide, and what they inflated to: the bytes
/// on the wire per notification of a `--zlib` run.
pub static WIRE_IN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
pub static PLAIN_IN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub struct Zlib<S> {
    inner: S,
    inflate: Decompress,
    deflate: Compress,
    /// Compressed input not yet inflated: `input[in_pos..in_end]`. The buffer is
    /// allocated once and reused: zeroing a fresh 8 KiB for every read cost more than
    /// the inflating at hundreds of thousands of small reads per second.
    input: Vec<u8>,
    in_pos: usize,
    in_end: usize,
    /// Compressed output not yet written: `output[out_pos..]`.
    output: Vec<u8>,
    out_pos: usize,
    eof: bool,
    /// The last inflate filled the caller's buffer: the inflater may hold more output
    /// even with no input left, which must be drained before reading the socket again.
    full: bool,
}

impl<S> Zlib<S> {
    pub fn new(inner: S) -> Self {
        Zlib {
            inner,
            inflate: Decompress::new(true),
            deflate: Compress::new(Compression::default(), true),
            input: Vec::new(),
            in_pos: 0,
            in_end: 0,
            output: Vec::new(),
            out_pos: 0,
            eof: false,
            full: false,
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zlib: {e}"))
}

impl<S: AsyncWrite + Unpin> Zlib<S> {
    /// Writes pending compressed output; Ready once all of it is written.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.output.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.output[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.output.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Zlib<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.in_pos < this.in_end || (this.full && !this.eof) {
                let (before_in, before_out) = (this.inflate.total_in(), this.inflate.total_out());
                let out = buf.initialize_unfilled();
                let status = this
                    .inflate
                    .decompress(
                        &this.input[this.in_pos..this.in_end],
                        out,
                        FlushDecompress::Sync,
                    )
                    .map_err(corrupt)?;
                let used = usize::try_from(this.inflate.total_in() - before_in).expect("fits");
                let made = usize::try_from(this.inflate.total_out() - before_out).expect("fits");
                this.in_pos += used;
                if this.in_pos == this.in_end {
                    this.in_pos = 0;
                    this.in_end = 0;
                }
                this.full = made > 0 && made == out.len();
                if made > 0 {
                    PLAIN_IN.fetch_add(made as u64, std::sync::atomic::Ordering::Relaxed);
                    buf.advance(made);
                    return Poll::Ready(Ok(()));
                }
                if status == Status::StreamEnd {
                    this.eof = true;
                }
                if used > 0 {
                    continue;
                }
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // Inflate needs more input.
            if this.in_end + IN_CHUNK / 2 > this.input.len() {
                // Little room left: move what is unread to the front, or grow.
                this.input.copy_within(this.in_pos..this.in_end, 0);
                this.in_end -= this.in_pos;
                this.in_pos = 0;
                if this.in_end + IN_CHUNK / 2 > this.input.len() {
                    let len = (this.input.len() * 2).max(IN_CHUNK);
                    this.input.resize(len, 0);
                }
            }
            let mut rb = ReadBuf::new(&mut this.input[this.in_end..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut rb);
            let n = rb.filled().len();
            WIRE_IN.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            this.in_end += n;
            ready!(polled)?;
            if n == 0 {
                if this.in_pos < this.in_end {
                    return Poll::Ready(Err(corrupt("stream ends inside a compressed block")));
                }
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Zlib<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Earlier output first: the peer must get the zlib stream in order.
        ready!(this.poll_write_out(cx))?;
        let mut consumed = 0;
        loop {
            this.output.reserve(data.len() / 2 + 64);
            let before_in = this.deflate.total_in();
            this.deflate
                .compress_vec(&data[consumed..], &mut this.output, FlushCompress::Sync)
                .map_err(corrupt)?;
            consumed += usize::try_from(this.deflate.total_in() - before_in).expect("fits");
            // A sync flush is complete once all input is taken and there was room to
            // spare in the output (zlib's documented test for a finished flush).
            if consumed == data.len() && this.output.len() < this.output.capacity() {
                break;
            }
        }
        // Start sending now; whatever the socket does not take goes out on the next
        // write or flush.
        if let Poll::Ready(Err(e)) = this.poll_write_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_are_decodable_stanza_by_stanza_and_reads_inflate() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut z = Zlib::new(a);
        // Our side writes; the peer inflates each stanza as it arrives.
        let stanzas = [
            "<presence/>",
            "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
        ];
        let writer = tokio::spawn(async move {
            for s in stanzas {
                z.write_all(s.as_bytes()).await.unwrap();
                z.flush().await.unwrap();
            }
            z
        });
        let mut inflate = Decompress::new(true);
        let mut got = Vec::new();
        let want: usize = stanzas.iter().map(|s| s.len()).sum();
        let mut raw = [0u8; 256];
        while got.len() < want {
            let n = b.read(&mut raw).await.unwrap();
            assert!(n > 0, "peer closed early");
            let mut off = 0;
            while off < n {
                got.reserve(1024);
                let before = inflate.total_in();
                inflate
                    .decompress_vec(&raw[off..n], &mut got, FlushDecompress::Sync)
                    .unwrap();
                off += usize::try_from(inflate.total_in() - before).unwrap();
            }
        }
        assert_eq!(String::from_utf8(got).unwrap(), stanzas.concat());
        let mut z = writer.await.unwrap();

        // The peer writes a large stanza in pieces; we read it back whole.
        let big = format!("<message><body>{}</body></message>", "x".repeat(100_000));
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        enc.write_all(big.as_bytes()).unwrap();
        enc.flush().unwrap();
        let compressed = enc.get_ref().clone();
        tokio::spawn(async move {
            for chunk in compressed.chunks(7) {
                b.write_all(chunk).await.unwrap();
            }
            b
        });
        let mut back = vec![0u8; big.len()];
        z.read_exact(&mut back).await.unwrap();
        assert_eq!(back, big.as_bytes());
    }
}

//! A relay connection read in large pieces into a buffer that exists only while bytes are
//! waiting ([`ReadAhead`]), so that an idle 1:1 tunnel holds no read buffer.
//!
//! A WebSocket codec keeps a read buffer for the connection's whole life (tungstenite's is
//! zero-filled up to `read_buffer_size` on every read attempt), so with the 64 KiB a bulk
//! transfer wants, every idle WebSocket held 64 KiB. The codecs are therefore given small
//! buffers and read through this wrapper: a read attempt allocates a buffer (uninitialised:
//! nothing is touched that the kernel did not fill), frees it at once when the socket had
//! nothing, and frees the rest as soon as the codec has taken the last byte. A bulk transfer
//! still costs one `read` per large piece; the codec's small reads are copies out of this
//! buffer, and a read at least the buffer's size goes straight to the socket.
//!
//! The buffer's size follows the traffic ([`ReadSize`], as the pump's local reads do): it
//! starts at [`FIRST_READ`] and grows up to [`ReadAhead::new`]'s `chunk` while reads fill it.
//! A license call's few hundred bytes so never take 64 KiB: when a thousand tunnels open at
//! once, the heap does not grow by a thousand large buffers that it keeps after they were
//! freed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ReadSize;

/// The size of a [`ReadAhead`]'s first read, and the smallest it shrinks to.
pub const FIRST_READ: usize = 4 << 10;

/// A byte stream whose reads go through a buffer held only while it has unread bytes.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    pending: BytesMut,
    size: ReadSize,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`, reading at most `chunk` bytes (at least 1) from it at a time.
    pub fn new(inner: S, chunk: usize) -> Self {
        Self {
            inner,
            pending: BytesMut::new(),
            size: ReadSize::new(FIRST_READ, chunk),
        }
    }

    /// Bytes read from the stream and not yet taken (held in memory now).
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            if buf.remaining() >= this.size.get() {
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                this.size.adapt(buf.filled().len() - before);
                return Poll::Ready(Ok(()));
            }
            let mut fresh = BytesMut::with_capacity(this.size.get());
            ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut fresh
            ))?;
            this.size.adapt(fresh.len());
            // Empty: end of stream, reported as a read of nothing.
            this.pending = fresh;
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        if this.pending.is_empty() {
            // Give the allocation back now rather than at the next read.
            this.pending = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn small_reads_are_served_from_one_large_read_and_the_buffer_goes_when_taken() {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        let mut reader = ReadAhead::new(near, 1024);
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        far.write_all(&data).await.expect("io");
        let mut small = [0u8; 100];
        reader.read_exact(&mut small).await.expect("io");
        assert_eq!(&small[..], &data[..100]);
        // One read of `chunk` bytes (below the first read's size) from the stream; the rest of
        // it waits here.
        assert_eq!(reader.buffered(), 924);
        let mut rest = vec![0u8; 924];
        reader.read_exact(&mut rest).await.expect("io");
        assert_eq!(rest, &data[100..1024]);
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.pending.capacity(), 0, "a drained buffer is freed");
        // A read at least `chunk` long goes straight to the stream.
        let mut large = vec![0u8; 4096];
        let n = reader.read(&mut large).await.expect("io");
        assert_eq!(&large[..n], &data[1024..1024 + n]);
        assert_eq!(reader.buffered(), 0);
    }

    #[tokio::test]
    async fn reads_grow_while_they_fill_the_buffer_and_shrink_after_small_ones() {
        let (mut far, near) = tokio::io::duplex(1 << 20);
        let mut reader = ReadAhead::new(near, 64 << 10);
        assert_eq!(
            reader.size.get(),
            FIRST_READ,
            "a call's few bytes take a small buffer"
        );
        let bulk = 256 << 10;
        far.write_all(&vec![1u8; bulk]).await.expect("io");
        // Reads of 4, 8, 16 and 32 KiB, each filled: the next is the largest.
        let mut piece = vec![0u8; 1024];
        for _ in 0..60 {
            reader.read_exact(&mut piece).await.expect("io");
        }
        assert_eq!(reader.size.get(), 64 << 10);
        let mut rest = vec![0u8; bulk - (60 << 10)];
        reader.read_exact(&mut rest).await.expect("io");
        // Small messages again: back down to the first size.
        for _ in 0..8 {
            far.write_all(b"call").await.expect("io");
            let mut call = [0u8; 4];
            reader.read_exact(&mut call).await.expect("io");
            assert_eq!(&call, b"call");
        }
        assert_eq!(reader.size.get(), FIRST_READ);
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer_and_eof_and_writes_pass_through() {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        let mut reader = ReadAhead::new(near, 1 << 16);
        let mut one = [0u8; 8];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let polled = Pin::new(&mut reader).poll_read(&mut cx, &mut ReadBuf::new(&mut one));
        assert!(polled.is_pending(), "nothing to read yet");
        assert_eq!(
            reader.pending.capacity(),
            0,
            "a read that found nothing keeps nothing"
        );
        reader.write_all(b"ping").await.expect("io");
        reader.flush().await.expect("io");
        let mut got = [0u8; 4];
        far.read_exact(&mut got).await.expect("io");
        assert_eq!(&got, b"ping");
        far.shutdown().await.expect("io");
        drop(far);
        assert_eq!(reader.read(&mut one).await.expect("io"), 0, "end of stream");
    }
}

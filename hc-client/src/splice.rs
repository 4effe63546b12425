//! Moving bytes between a local stream (TCP, TLS) and one multiplexed stream, both ways, with
//! half-close: the byte copy of a tunnelled connection in `dongle-relay.mux.v1` mode.
//!
//! Why not `tokio::io::copy_bidirectional`: it keeps two 8 KiB buffers per connection for its
//! whole life, and an idle tunnel then costs 16 KiB at each end. Here a read buffer exists only
//! while a read is being attempted: it is allocated when the local side is polled and freed
//! again if nothing was there (`Pending`), so an idle tunnel holds no buffer at all, while a
//! busy one reads up to `max_chunk` bytes at a time. The other direction writes yamux' own
//! received chunks straight to the local stream (no buffer of ours).
//!
//! - local EOF → the yamux stream is closed for writing (FIN; the peer shuts its target's
//!   write half) and receiving goes on;
//! - yamux EOF (FIN or reset) → the local stream is shut down for writing and sending goes on;
//! - both ended → done.
//!
//! Backpressure is end to end: a direction reads again only after its last chunk was written,
//! and a yamux write waits for the stream's window.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::Stream as _;
use futures_util::io::AsyncWrite as FuturesWrite;
use heap_trim::ReadSize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use yamux::{Packet, Stream};

use crate::pump::ByteMeter;

/// How a spliced connection ended.
#[derive(Debug)]
pub enum SpliceEnd {
    /// Both directions ended normally.
    Completed,
    /// The local stream failed.
    LocalError(std::io::Error),
    /// The multiplexed stream failed (reset, session lost).
    MuxError(std::io::Error),
    /// No data moved for the idle timeout.
    IdleTimeout,
    /// Aborted by the caller (shutdown).
    Aborted,
}

impl SpliceEnd {
    /// Whether this is a normal end.
    pub fn is_normal(&self) -> bool {
        matches!(self, Self::Completed)
    }
}

/// What a splice moved and how it ended.
#[derive(Debug)]
pub struct SpliceReport {
    /// Bytes read locally and sent into the stream.
    pub sent: u64,
    /// Bytes received from the stream and written locally.
    pub received: u64,
    /// How it ended.
    pub end: SpliceEnd,
}

enum Up {
    Read,
    Write(BytesMut),
    Close,
    Done,
}

enum Down {
    Next,
    Write(Packet, usize),
    Flush,
    Shutdown,
    Done,
}

struct Splice<'a, L> {
    local: L,
    stream: Stream,
    up: Up,
    down: Down,
    chunk: ReadSize,
    meter: &'a ByteMeter,
    sent: u64,
    received: u64,
    last_data: Instant,
}

/// Smallest read attempted; doubled while reads fill the buffer, up to `max_chunk`.
const MIN_CHUNK: usize = 4 * 1024;

impl<L: AsyncRead + AsyncWrite + Unpin> Splice<'_, L> {
    /// Local → stream. `Ready(Err)` ends the splice.
    fn poll_up(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SpliceEnd>> {
        loop {
            match &mut self.up {
                Up::Read => {
                    let mut buf = BytesMut::with_capacity(self.chunk.get());
                    match tokio_util::io::poll_read_buf(Pin::new(&mut self.local), cx, &mut buf) {
                        // Nothing there: the buffer is freed (see the module documentation).
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(SpliceEnd::LocalError(e))),
                        Poll::Ready(Ok(0)) => self.up = Up::Close,
                        Poll::Ready(Ok(n)) => {
                            self.chunk.adapt(n);
                            self.sent += n as u64;
                            self.meter.to_relay.fetch_add(n as u64, Ordering::Relaxed);
                            self.last_data = Instant::now();
                            self.up = Up::Write(buf);
                        }
                    }
                }
                Up::Write(buf) => {
                    match Pin::new(&mut self.stream).poll_write(cx, buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(SpliceEnd::MuxError(e))),
                        Poll::Ready(Ok(n)) => {
                            let _ = buf.split_to(n);
                        }
                    }
                    if buf.is_empty() {
                        self.up = Up::Read;
                    }
                }
                Up::Close => match Pin::new(&mut self.stream).poll_close(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(SpliceEnd::MuxError(e))),
                    Poll::Ready(Ok(())) => self.up = Up::Done,
                },
                Up::Done => return Poll::Ready(Ok(())),
            }
        }
    }

    /// Stream → local. `Ready(Err)` ends the splice.
    fn poll_down(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SpliceEnd>> {
        loop {
            match &mut self.down {
                Down::Next => match Pin::new(&mut self.stream).poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Err(SpliceEnd::MuxError(e)));
                    }
                    Poll::Ready(Some(Ok(packet))) => {
                        if !packet.as_ref().is_empty() {
                            self.down = Down::Write(packet, 0);
                        }
                    }
                    Poll::Ready(None) => self.down = Down::Shutdown,
                },
                Down::Write(packet, offset) => {
                    let data = &packet.as_ref()[*offset..];
                    match Pin::new(&mut self.local).poll_write(cx, data) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(SpliceEnd::LocalError(e))),
                        Poll::Ready(Ok(0)) => {
                            let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
                            return Poll::Ready(Err(SpliceEnd::LocalError(e)));
                        }
                        Poll::Ready(Ok(n)) => {
                            *offset += n;
                            self.received += n as u64;
                            self.meter.from_relay.fetch_add(n as u64, Ordering::Relaxed);
                            self.last_data = Instant::now();
                        }
                    }
                    if *offset == packet.as_ref().len() {
                        self.down = Down::Flush;
                    }
                }
                Down::Flush => match Pin::new(&mut self.local).poll_flush(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(SpliceEnd::LocalError(e))),
                    Poll::Ready(Ok(())) => self.down = Down::Next,
                },
                Down::Shutdown => match Pin::new(&mut self.local).poll_shutdown(cx) {
                    Poll::Pending => return Poll::Pending,
                    // A local side that is already gone has nothing left to shut down.
                    Poll::Ready(_) => self.down = Down::Done,
                },
                Down::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Copies between `local` and `stream` until both directions ended, a side failed, no data
/// moved for `idle_timeout`, or `abort` was cancelled. Reads at most `max_chunk` bytes at a
/// time. Dropping the stream early resets it, which the peer sees as the end of its stream.
pub async fn splice<L>(
    local: L,
    stream: Stream,
    max_chunk: usize,
    idle_timeout: Option<Duration>,
    meter: &ByteMeter,
    abort: &CancellationToken,
) -> SpliceReport
where
    L: AsyncRead + AsyncWrite + Unpin,
{
    let mut s = Splice {
        local,
        stream,
        up: Up::Read,
        down: Down::Next,
        chunk: ReadSize::new(MIN_CHUNK, max_chunk.max(MIN_CHUNK)),
        meter,
        sent: 0,
        received: 0,
        last_data: Instant::now(),
    };
    let end = loop {
        let deadline = idle_timeout.map(|d| s.last_data + d);
        let copy = std::future::poll_fn(|cx| {
            let up = s.poll_up(cx);
            if let Poll::Ready(Err(_)) = up {
                return up;
            }
            let down = s.poll_down(cx);
            match (up, down) {
                (_, Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
                (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
                _ => Poll::Pending,
            }
        });
        let idle = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            biased;
            _ = abort.cancelled() => Some(SpliceEnd::Aborted),
            r = copy => Some(match r {
                Ok(()) => SpliceEnd::Completed,
                Err(end) => end,
            }),
            _ = idle => None,
        };
        match outcome {
            Some(end) => break end,
            None => {
                if let Some(d) = idle_timeout
                    && s.last_data + d <= Instant::now()
                {
                    break SpliceEnd::IdleTimeout;
                }
            }
        }
    };
    heap_trim::released();
    SpliceReport {
        sent: s.sent,
        received: s.received,
        end,
    }
}

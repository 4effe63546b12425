//! A relay WebSocket seen as one byte stream ([`WsIo`]), for the multiplexer: yamux needs a
//! `futures::AsyncRead + AsyncWrite`, and a pooled connection's binary messages are nothing
//! but consecutive pieces of one yamux byte stream.
//!
//! - **Reading** hands out the bytes of each received binary (or text) message in order; pings
//!   and pongs are skipped (tungstenite answers pings); Close or the end of the connection is
//!   EOF.
//! - **Writing** collects bytes until a flush, or until [`WsIo::new`]'s `max_message` bytes are
//!   pending, and sends them as one binary message. yamux flushes after every frame it writes,
//!   so a small frame (a license request) goes out at once and bulk data goes out in large
//!   messages. Sending waits on the sink's readiness, so tungstenite's write buffer stays within
//!   the dialer's `max_write_buffer_size`: memory per connection is bounded.
//! - **Keep-alive**: with an interval, a ping is sent after that long without a frame from the
//!   peer. Data sent is owed an answer too: when nothing at all comes back within
//!   [`DATA_PING_AFTER`], the peer is pinged. A ping or data that nothing answers within
//!   [`PONG_DEADLINE`] fails the stream (`TimedOut`), which ends the yamux session so the pool
//!   can re-establish it. A frozen peer is so noticed within seconds of a call being sent to
//!   it, not after several intervals. yamux polls the reader continuously, so the timers run
//!   even when no stream is busy.
//! - **No ping for data that is answered.** A call's reply, or the window updates of a bulk
//!   transfer, answer data before [`DATA_PING_AFTER`]. Pinging with the data itself had cost a
//!   transfer a ping and a pong per window update, each its own write in three processes.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::io::{AsyncRead, AsyncWrite};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead as TokioRead, AsyncWrite as TokioWrite};
use tokio::time::{Instant, Interval};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How long a live peer may take to answer a ping (any frame counts). A few seconds: a
/// WebSocket pong needs no work from the application, only a running peer and a path.
pub const PONG_DEADLINE: Duration = Duration::from_secs(4);

/// How long data sent may go unanswered before the peer is pinged for a sign of life (the
/// deadline for that sign still runs from the data: [`PONG_DEADLINE`]).
pub const DATA_PING_AFTER: Duration = Duration::from_secs(1);

/// Pings and the silence that counts as a dead peer.
struct KeepAlive {
    every: Duration,
    timer: Interval,
    last_rx: Instant,
    ping_due: bool,
    /// A ping went out and nothing came back since.
    pinged: bool,
    /// The deadline of the oldest unanswered ping or data.
    answer_by: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When to ping for data still unanswered.
    ping_at: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A WebSocket as a byte stream (see the module documentation).
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    rx: Bytes,
    tx: BytesMut,
    max_message: usize,
    eof: bool,
    keepalive: Option<KeepAlive>,
}

impl<S> WsIo<S> {
    /// Wraps `ws`; outgoing messages carry at most `max_message` bytes; `ping` enables
    /// keep-alive pings at that interval.
    pub fn new(ws: WebSocketStream<S>, max_message: usize, ping: Option<Duration>) -> Self {
        let keepalive = ping.filter(|d| !d.is_zero()).map(|every| KeepAlive {
            every,
            timer: crate::pump::pinger(every),
            last_rx: Instant::now(),
            ping_due: false,
            pinged: false,
            answer_by: None,
            ping_at: None,
        });
        Self {
            ws,
            rx: Bytes::new(),
            tx: BytesMut::new(),
            max_message: max_message.max(1024),
            eof: false,
            keepalive,
        }
    }
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: TokioRead + TokioWrite + Unpin> WsIo<S> {
    /// Fires pings and detects silence. Errors when the peer has been silent too long.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(ka) = self.keepalive.as_mut() else {
            return Ok(());
        };
        if let Some(deadline) = ka.answer_by.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "nothing from the peer within {} s of a ping or of data sent to it",
                    PONG_DEADLINE.as_secs()
                ),
            ));
        }
        if let Some(at) = ka.ping_at.as_mut()
            && at.as_mut().poll(cx).is_ready()
        {
            ka.ping_at = None;
            ka.ping_due = true;
        }
        while ka.timer.poll_tick(cx).is_ready() {
            if ka.last_rx.elapsed() >= ka.every {
                ka.ping_due = true;
            }
        }
        if ka.ping_due && ka.pinged {
            // One ping outstanding at a time: its answer vouches for the peer.
            ka.ping_due = false;
        }
        if ka.ping_due {
            let mut ws = Pin::new(&mut self.ws);
            if let Poll::Ready(ready) = ws.as_mut().poll_ready(cx) {
                ready.map_err(io_error)?;
                ws.as_mut()
                    .start_send(Message::Ping(Bytes::new()))
                    .map_err(io_error)?;
                ka.ping_due = false;
                ka.pinged = true;
                if ka.answer_by.is_none() {
                    ka.answer_by = Some(timer(PONG_DEADLINE, cx));
                }
                // The ping leaves with the next flush at the latest; try now.
                if let Poll::Ready(r) = ws.poll_flush(cx) {
                    r.map_err(io_error)?;
                }
            }
        }
        Ok(())
    }

    fn touch(&mut self) {
        if let Some(ka) = self.keepalive.as_mut() {
            ka.last_rx = Instant::now();
            ka.pinged = false;
            ka.answer_by = None;
            ka.ping_at = None;
        }
    }

    /// Sends the pending bytes as one binary message (waits for the sink's room).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut ws = Pin::new(&mut self.ws);
        ready!(ws.as_mut().poll_ready(cx)).map_err(io_error)?;
        let message = Message::Binary(self.tx.split().freeze());
        ws.start_send(message).map_err(io_error)?;
        // Data towards a peer that may have frozen: it owes an answer from now, and is
        // pinged if none comes soon.
        if let Some(ka) = self.keepalive.as_mut()
            && ka.answer_by.is_none()
        {
            ka.answer_by = Some(timer(PONG_DEADLINE, cx));
            ka.ping_at = Some(timer(DATA_PING_AFTER, cx));
        }
        Poll::Ready(Ok(()))
    }
}

/// A timer `after` from now, registered with the task of `cx` so that it wakes it.
fn timer(after: Duration, cx: &mut Context<'_>) -> Pin<Box<tokio::time::Sleep>> {
    let mut sleep = Box::pin(tokio::time::sleep(after));
    let _ = sleep.as_mut().poll(cx);
    sleep
}

impl<S: TokioRead + TokioWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if !this.rx.is_empty() {
                let n = this.rx.len().min(buf.len());
                buf[..n].copy_from_slice(&this.rx.split_to(n));
                return Poll::Ready(Ok(n));
            }
            if this.eof {
                return Poll::Ready(Ok(0));
            }
            let Poll::Ready(next) = Pin::new(&mut this.ws).poll_next(cx) else {
                // Only with nothing left to read is silence judged: a task that ran late (a
                // busy machine) must not time out a peer whose answer is already waiting.
                this.poll_keepalive(cx)?;
                return Poll::Pending;
            };
            this.touch();
            match next {
                Some(Ok(Message::Binary(data))) => this.rx = data,
                Some(Ok(Message::Text(text))) => this.rx = text.into(),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)))
                | None
                | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    this.eof = true;
                }
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
    }
}

impl<S: TokioRead + TokioWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.tx.len() >= this.max_message {
            ready!(this.poll_send(cx))?;
        }
        let n = buf.len().min(this.max_message - this.tx.len());
        this.tx.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.tx.is_empty() {
            ready!(this.poll_send(cx))?;
        }
        Pin::new(&mut this.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.tx.is_empty() {
            ready!(this.poll_send(cx))?;
        }
        match ready!(Pin::new(&mut this.ws).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    #[tokio::test]
    async fn bytes_cross_as_messages_and_close_is_eof() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let ws = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let mut peer = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        let mut io = WsIo::new(ws, 4096, None);
        io.write_all(b"hello ").await.expect("write");
        io.write_all(b"world").await.expect("write");
        io.flush().await.expect("flush");
        assert_eq!(
            peer.next().await.expect("msg").expect("ok"),
            Message::binary(b"hello world".to_vec())
        );
        // Large writes are cut at max_message.
        io.write_all(&vec![7u8; 10_000]).await.expect("write");
        io.flush().await.expect("flush");
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < 10_000 {
            match peer.next().await.expect("msg").expect("ok") {
                Message::Binary(b) => sizes.push(b.len()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sizes, [4096, 4096, 1808]);
        peer.send(Message::binary(b"abc".to_vec()))
            .await
            .expect("send");
        peer.send(Message::Ping(Bytes::new())).await.expect("ping");
        peer.send(Message::text("de")).await.expect("send");
        peer.close(None).await.expect("close");
        let mut got = Vec::new();
        io.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"abcde");
    }

    /// A `WsIo` pinging every `every`, and the peer WebSocket on its other end.
    async fn pinging(
        every: Duration,
    ) -> (
        WsIo<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let ws = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let peer = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        (WsIo::new(ws, 4096, Some(every)), peer)
    }

    #[tokio::test(start_paused = true)]
    async fn data_to_a_frozen_peer_fails_the_stream_within_the_pong_deadline() {
        let (mut io, mut peer) = pinging(Duration::from_secs(30)).await;
        // The peer was alive a moment ago...
        peer.send(Message::binary(b"hi".to_vec()))
            .await
            .expect("send");
        let mut buf = [0u8; 16];
        assert_eq!(io.read(&mut buf).await.expect("read"), 2);
        // ...then freezes (never reads, so never pongs). A call is written; the stream fails
        // a pong deadline later, not 30 s or 90 s later.
        let frozen = Instant::now();
        io.write_all(b"call").await.expect("write");
        io.flush().await.expect("flush");
        let err = io.read(&mut buf).await.expect_err("frozen peer");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(frozen.elapsed() <= PONG_DEADLINE + Duration::from_millis(10));
        drop(peer);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_waiting_when_a_late_reader_runs_is_not_silence() {
        let (mut io, mut peer) = pinging(Duration::from_secs(30)).await;
        let mut buf = [0u8; 16];
        // A call goes out; the reader finds nothing yet, and the call's deadline runs.
        io.write_all(b"call").await.expect("write");
        io.flush().await.expect("flush");
        let idle = tokio::time::timeout(Duration::from_millis(1), io.read(&mut buf)).await;
        assert!(idle.is_err(), "nothing to read yet");
        // The peer answers in time...
        assert_eq!(
            peer.next().await.expect("msg").expect("ok"),
            Message::binary(b"call".to_vec())
        );
        peer.send(Message::binary(b"answer".to_vec()))
            .await
            .expect("send");
        // ...but the reader only runs again after the deadline (a busy machine): the answer
        // waiting for it counts, not the time.
        tokio::time::advance(PONG_DEADLINE + Duration::from_secs(1)).await;
        assert_eq!(io.read(&mut buf).await.expect("the answer"), 6);
        assert_eq!(&buf[..6], b"answer");
    }

    #[tokio::test(start_paused = true)]
    async fn only_data_that_stays_unanswered_is_pinged_for() {
        let (mut io, mut peer) = pinging(Duration::from_secs(30)).await;
        let mut buf = [0u8; 16];
        // A call answered within a moment: no ping follows it.
        io.write_all(b"call").await.expect("write");
        io.flush().await.expect("flush");
        let call = peer.next().await.expect("msg").expect("ok");
        assert_eq!(call, Message::binary(b"call".to_vec()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        peer.send(Message::binary(b"r".to_vec()))
            .await
            .expect("send");
        assert_eq!(io.read(&mut buf).await.expect("the reply"), 1);
        // A call left unanswered: a ping follows once it is DATA_PING_AFTER old.
        io.write_all(b"more").await.expect("write");
        io.flush().await.expect("flush");
        let early = DATA_PING_AFTER - Duration::from_millis(100);
        let silent = tokio::time::timeout(early, io.read(&mut buf)).await;
        assert!(silent.is_err(), "nothing to read");
        let more = peer.next().await.expect("msg").expect("ok");
        assert_eq!(
            more,
            Message::binary(b"more".to_vec()),
            "no ping after the first call"
        );
        let none = tokio::time::timeout(Duration::from_millis(1), peer.next()).await;
        assert!(none.is_err(), "no ping yet: {none:?}");
        let silent = tokio::time::timeout(Duration::from_millis(200), io.read(&mut buf)).await;
        assert!(silent.is_err(), "nothing to read");
        let ping = peer.next().await.expect("msg").expect("ok");
        assert!(matches!(ping, Message::Ping(_)), "{ping:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peer_fails_the_stream_after_an_interval_and_the_pong_deadline() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let ws = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        // The peer never reads, so it never answers pings.
        let _peer = b;
        let mut io = WsIo::new(ws, 4096, Some(Duration::from_secs(10)));
        let start = Instant::now();
        let mut buf = [0u8; 16];
        let err = io.read(&mut buf).await.expect_err("keep-alive timeout");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_secs(10) + PONG_DEADLINE);
        assert!(start.elapsed() <= Duration::from_secs(20) + PONG_DEADLINE);
    }
}

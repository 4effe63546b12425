//! The one byte pump between a local stream (TCP, TLS, anything `AsyncRead + AsyncWrite`) and a
//! relay WebSocket, used by both the local-proxy and the relay-listener.
//!
//! Two halves run concurrently in one task:
//!
//! - **up** (local → relay): reads at most [`PumpConfig::max_frame`] bytes (the read size starts
//!   small, doubles while reads fill it and halves after short ones) and sends each read as one
//!   binary message, flushed at once (TLS would otherwise hold it back). The read buffer exists
//!   only while a read is attempted: it is allocated when the local stream is polled and freed
//!   when nothing was there, so an idle tunnel holds no read buffer. It owns the WebSocket's
//!   sending side, so it also sends pings and every Close frame.
//! - **down** (relay → local): writes each binary message to the local stream and flushes.
//!
//! Backpressure is end to end: a half waits for its write to finish before it reads again, so
//! memory per connection is one read buffer per direction plus tungstenite's bounded buffers.
//!
//! End of stream depends on the negotiated [`Framing`] (see [`crate::subprotocol`]):
//!
//! - `HalfClose` (`dongle-relay.v1`): local EOF → send an empty binary message and keep
//!   receiving; an empty binary message received → `shutdown()` the local write half and keep
//!   sending; once both directions have ended, Close 1000.
//! - `Raw` (foreign peers): local EOF → Close 1000; Close received → local `shutdown()`.
//!
//! **Text messages are treated as data** (their UTF-8 bytes): a foreign peer such as a Node
//! `ws` client sends strings as text frames, and a byte tunnel has no reason to refuse them.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use heap_trim::ReadSize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use crate::subprotocol::Framing;

/// Smallest read buffer; it doubles up to `max_frame` while reads fill it.
const INITIAL_READ: usize = 8 * 1024;

/// Default idle deadline of a tunnel: far beyond any legacy license call (MxNet2 opens one
/// connection per call and closes it within milliseconds), short enough that sockets which
/// never send do not hold a tunnel slot for long.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Tuning of a pump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpConfig {
    /// Largest read from the local stream, i.e. largest WebSocket message sent. Default 64 KiB.
    pub max_frame: usize,
    /// Close the tunnel when no data moved in either direction for this long (default
    /// [`DEFAULT_IDLE_TIMEOUT`]; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// Send a WebSocket ping this often; if nothing at all was received for three intervals
    /// the peer is considered dead.
    pub ping_interval: Option<Duration>,
    /// How long to wait for the peer's Close reply (and for a Close to be sent).
    pub close_timeout: Duration,
}

impl Default for PumpConfig {
    fn default() -> Self {
        Self {
            max_frame: 64 * 1024,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            ping_interval: None,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// Byte counters shared by many pumps (a component's totals). Relaxed atomics: one add per
/// message.
#[derive(Debug, Default)]
pub struct ByteMeter {
    pub(crate) to_relay: AtomicU64,
    pub(crate) from_relay: AtomicU64,
}

impl ByteMeter {
    /// Payload bytes sent to the relay.
    pub fn to_relay(&self) -> u64 {
        self.to_relay.load(Ordering::Relaxed)
    }

    /// Payload bytes received from the relay.
    pub fn from_relay(&self) -> u64 {
        self.from_relay.load(Ordering::Relaxed)
    }
}

/// How a pump ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// Both directions ended and the WebSocket closed normally.
    Completed,
    /// The peer closed the WebSocket abnormally or before its data had ended.
    PeerClosed {
        /// The close code, if any.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
    /// The WebSocket's connection ended without a Close frame.
    PeerVanished,
    /// No data moved for the idle timeout; closed with 1000 "idle timeout".
    IdleTimeout,
    /// Nothing was received for three ping intervals.
    KeepAliveTimeout,
    /// Aborted by the caller (shutdown); closed with 1001.
    Aborted,
    /// Reading or writing the local stream failed.
    LocalError(std::io::Error),
    /// The WebSocket failed.
    RelayError(String),
    /// The peer broke the framing (data after its end-of-stream marker).
    Protocol(&'static str),
}

impl PumpEnd {
    /// Whether this is a normal end of the tunnel.
    pub fn is_normal(&self) -> bool {
        matches!(self, Self::Completed)
    }
}

/// What a pump moved and how it ended.
#[derive(Debug)]
pub struct PumpReport {
    /// Payload bytes sent to the relay.
    pub sent: u64,
    /// Payload bytes received from the relay.
    pub received: u64,
    /// How it ended.
    pub end: PumpEnd,
}

/// State of the down half, watched by the up half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Down {
    Running,
    /// The peer's end-of-stream marker arrived (half-close framing).
    EofReceived,
    /// The down half returned.
    Finished,
}

/// How the down half ended.
#[derive(Debug)]
enum DownEnd {
    Closed(Option<CloseFrame>),
    Vanished,
    Stopped,
    Relay(String),
    Local(std::io::Error),
    Protocol(&'static str),
}

/// How the up half ended.
#[derive(Debug)]
enum UpEnd {
    /// We sent Close 1000 after our data ended (and, half-closing, the peer's too).
    Closed,
    /// The down half finished first (peer Close or failure).
    PeerDone,
    Aborted,
    Idle,
    KeepAlive,
    Local(std::io::Error),
    Relay(String),
}

/// Timestamps shared by the halves, as milliseconds since the pump started.
struct Clock {
    start: Instant,
    last_data: AtomicU64,
    last_rx: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_data: AtomicU64::new(0),
            last_rx: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch_data(&self) {
        self.last_data.store(self.now_ms(), Ordering::Relaxed);
    }

    fn touch_rx(&self) {
        self.last_rx.store(self.now_ms(), Ordering::Relaxed);
    }

    fn at(&self, ms: &AtomicU64) -> Instant {
        self.start + Duration::from_millis(ms.load(Ordering::Relaxed))
    }
}

/// Everything the halves share.
struct Ctx<'a> {
    framing: Framing,
    config: &'a PumpConfig,
    meter: &'a ByteMeter,
    clock: Clock,
    abort: &'a CancellationToken,
    stop_down: CancellationToken,
}

/// Moves bytes between `local` and `ws` until both directions have ended, the peer closed, a
/// timeout fired, or `abort` was cancelled. Never panics on peer behaviour; every outcome is in
/// the report. The local stream is shut down for writing when the peer's data ends.
///
/// Both streams are split (moved to the heap, where their halves share them) before the
/// future exists: an `async fn` keeps room for its arguments for its whole life, so taking
/// them whole would make every tunnel's task carry a second, unused copy of both (1.4 KiB for
/// a relay WebSocket, sized for its TLS state even over `ws://`).
pub fn pump<'a, L, S>(
    local: L,
    ws: WebSocketStream<S>,
    framing: Framing,
    config: &'a PumpConfig,
    meter: &'a ByteMeter,
    abort: &'a CancellationToken,
) -> impl Future<Output = PumpReport> + 'a
where
    L: AsyncRead + AsyncWrite + Unpin + 'a,
    S: AsyncRead + AsyncWrite + Unpin + 'a,
{
    let (local_rx, local_tx) = tokio::io::split(local);
    let (sink, stream) = ws.split();
    let ends = Ends {
        local_rx,
        local_tx,
        sink,
        stream,
    };
    pump_split(ends, framing, config, meter, abort)
}

/// The two streams of a pump, each split into its halves.
struct Ends<L, S> {
    local_rx: ReadHalf<L>,
    local_tx: WriteHalf<L>,
    sink: SplitSink<WebSocketStream<S>, Message>,
    stream: SplitStream<WebSocketStream<S>>,
}

/// [`pump`] once its streams are split.
async fn pump_split<L, S>(
    ends: Ends<L, S>,
    framing: Framing,
    config: &PumpConfig,
    meter: &ByteMeter,
    abort: &CancellationToken,
) -> PumpReport
where
    L: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Ends {
        mut local_rx,
        mut local_tx,
        mut sink,
        mut stream,
    } = ends;
    let ctx = Ctx {
        framing,
        config,
        meter,
        clock: Clock::new(),
        abort,
        stop_down: CancellationToken::new(),
    };
    let (down_tx, mut down_rx) = watch::channel(Down::Running);
    let mut sent = 0u64;
    let mut received = 0u64;
    let up = async {
        let end = upstream(&mut local_rx, &mut sink, &ctx, &mut down_rx, &mut sent).await;
        if !matches!(end, UpEnd::PeerDone) {
            // We closed (or gave up): give the peer's Close reply a bounded time to arrive.
            let finished = down_rx.wait_for(|d| *d == Down::Finished);
            if tokio::time::timeout(ctx.config.close_timeout, finished)
                .await
                .is_err()
            {
                ctx.stop_down.cancel();
            }
        }
        end
    };
    let down = async {
        let end = downstream(&mut stream, &mut local_tx, &ctx, &down_tx, &mut received).await;
        down_tx.send_replace(Down::Finished);
        end
    };
    let (up_end, (down_end, peer_eof)) = tokio::join!(up, down);
    if matches!((&up_end, &down_end), (UpEnd::PeerDone, DownEnd::Closed(_))) {
        // tungstenite queued the reply to the peer's Close; make sure it goes out.
        let _ = tokio::time::timeout(config.close_timeout, sink.flush()).await;
    }
    let end = match (up_end, down_end) {
        (UpEnd::Aborted, _) => PumpEnd::Aborted,
        (UpEnd::Idle, _) => PumpEnd::IdleTimeout,
        (UpEnd::KeepAlive, _) => PumpEnd::KeepAliveTimeout,
        (UpEnd::Local(e), _) | (_, DownEnd::Local(e)) => PumpEnd::LocalError(e),
        (UpEnd::Relay(e), _) | (_, DownEnd::Relay(e)) => PumpEnd::RelayError(e),
        (_, DownEnd::Protocol(what)) => PumpEnd::Protocol(what),
        (UpEnd::Closed, _) => PumpEnd::Completed,
        (UpEnd::PeerDone, DownEnd::Vanished | DownEnd::Stopped) => PumpEnd::PeerVanished,
        (UpEnd::PeerDone, DownEnd::Closed(frame)) => {
            let normal = frame.as_ref().is_none_or(|f| f.code == CloseCode::Normal);
            let data_ended = framing == Framing::Raw || peer_eof;
            if normal && data_ended {
                PumpEnd::Completed
            } else {
                PumpEnd::PeerClosed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                }
            }
        }
    };
    heap_trim::released();
    PumpReport {
        sent,
        received,
        end,
    }
}

/// What woke the upstream half.
enum Step {
    Abort,
    DownChanged,
    Idle,
    Ping,
    Read(std::io::Result<BytesMut>),
}

/// What the upstream half does about a [`Step`].
enum Next {
    /// Nothing to send: wait again.
    Wait,
    /// Send this to the relay.
    Send(Message),
    /// Close with this code and reason, ending as given.
    Close(CloseCode, &'static str, UpEnd),
}

/// What the upstream half reads: the local side's end and the adaptive read size.
struct Reading {
    size: ReadSize,
    eof: bool,
}

/// Local → relay, plus pings and every Close frame.
async fn upstream<R, K>(
    local: &mut R,
    sink: &mut K,
    ctx: &Ctx<'_>,
    down: &mut watch::Receiver<Down>,
    sent: &mut u64,
) -> UpEnd
where
    R: AsyncRead + Unpin,
    K: Sink<Message, Error = WsError> + Unpin,
{
    let config = ctx.config;
    let mut reading = Reading {
        size: ReadSize::new(INITIAL_READ, config.max_frame),
        eof: false,
    };
    let mut ping = config.ping_interval.map(pinger);
    // Registered once for the half's whole life: a fresh `cancelled()` per message would lock
    // the token and queue a waiter twice per message.
    let aborted = ctx.abort.cancelled();
    tokio::pin!(aborted);
    loop {
        let state = *down.borrow_and_update();
        match state {
            Down::Finished => return UpEnd::PeerDone,
            Down::EofReceived if reading.eof => {
                return close(sink, ctx, CloseCode::Normal, "", UpEnd::Closed).await;
            }
            _ => {}
        }
        let idle_at = config
            .idle_timeout
            .map(|d| ctx.clock.at(&ctx.clock.last_data) + d);
        let step = tokio::select! {
            biased;
            () = &mut aborted => Step::Abort,
            _ = down.changed() => Step::DownChanged,
            _ = sleep_until(idle_at) => Step::Idle,
            _ = tick(ping.as_mut()) => Step::Ping,
            r = read_chunk(local, reading.size.get()), if !reading.eof => Step::Read(r),
        };
        let message = match next_upstream(step, ctx, &mut reading, sent) {
            Next::Wait => continue,
            Next::Send(message) => message,
            Next::Close(code, reason, end) => return close(sink, ctx, code, reason, end).await,
        };
        // Sending may wait on backpressure; the peer going away or an abort must still win.
        let outcome = tokio::select! {
            biased;
            () = &mut aborted => Some(UpEnd::Aborted),
            _ = down.wait_for(|d| *d == Down::Finished) => Some(UpEnd::PeerDone),
            r = sink.send(message) => r.err().map(|e| UpEnd::Relay(e.to_string())),
        };
        match outcome {
            None => {}
            Some(UpEnd::Aborted) => {
                return close(sink, ctx, CloseCode::Away, "shutting down", UpEnd::Aborted).await;
            }
            Some(end) => return end,
        }
    }
}

/// What the upstream half does about `step`: the idle and keep-alive deadlines are checked
/// again here (a timer may fire for a deadline that moved), local data is counted.
fn next_upstream(step: Step, ctx: &Ctx<'_>, reading: &mut Reading, sent: &mut u64) -> Next {
    let config = ctx.config;
    match step {
        Step::Abort => Next::Close(CloseCode::Away, "shutting down", UpEnd::Aborted),
        Step::DownChanged => Next::Wait,
        Step::Idle => match config.idle_timeout {
            Some(idle) if ctx.clock.at(&ctx.clock.last_data) + idle <= Instant::now() => {
                Next::Close(CloseCode::Normal, "idle timeout", UpEnd::Idle)
            }
            _ => Next::Wait,
        },
        Step::Ping => {
            let every = config.ping_interval.unwrap_or(Duration::MAX);
            let silent = Instant::now() - ctx.clock.at(&ctx.clock.last_rx);
            if silent > every.saturating_mul(3) {
                Next::Close(CloseCode::Away, "keep-alive timeout", UpEnd::KeepAlive)
            } else {
                Next::Send(Message::Ping(Default::default()))
            }
        }
        Step::Read(Ok(buf)) if buf.is_empty() => {
            reading.eof = true;
            match ctx.framing {
                // Half-close: tell the peer this direction ended; keep receiving.
                Framing::HalfClose => Next::Send(Message::Binary(Default::default())),
                Framing::Raw => Next::Close(CloseCode::Normal, "", UpEnd::Closed),
            }
        }
        Step::Read(Ok(buf)) => {
            let n = buf.len();
            reading.size.adapt(n);
            *sent += n as u64;
            ctx.meter.to_relay.fetch_add(n as u64, Ordering::Relaxed);
            ctx.clock.touch_data();
            Next::Send(Message::Binary(buf.freeze()))
        }
        Step::Read(Err(e)) => {
            Next::Close(CloseCode::Error, "local connection failed", UpEnd::Local(e))
        }
    }
}

/// Sends a Close frame (bounded by the close timeout) and returns `end`.
async fn close<K>(sink: &mut K, ctx: &Ctx<'_>, code: CloseCode, reason: &str, end: UpEnd) -> UpEnd
where
    K: Sink<Message, Error = WsError> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let sent = tokio::time::timeout(
        ctx.config.close_timeout,
        sink.send(Message::Close(Some(frame))),
    )
    .await;
    match sent {
        Ok(Ok(())) | Ok(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => end,
        // The Close could not go out: nothing more will arrive either.
        Ok(Err(e)) => {
            ctx.stop_down.cancel();
            match end {
                UpEnd::Closed => UpEnd::Relay(e.to_string()),
                other => other,
            }
        }
        Err(_) => {
            ctx.stop_down.cancel();
            end
        }
    }
}

/// Relay → local. Returns how it ended and whether the peer's end-of-stream marker arrived.
async fn downstream<T, W>(
    stream: &mut T,
    local: &mut W,
    ctx: &Ctx<'_>,
    state: &watch::Sender<Down>,
    received: &mut u64,
) -> (DownEnd, bool)
where
    T: Stream<Item = Result<Message, WsError>> + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut eof = false;
    let stopped = ctx.stop_down.cancelled();
    tokio::pin!(stopped);
    loop {
        let next = tokio::select! {
            biased;
            () = &mut stopped => return (DownEnd::Stopped, eof),
            m = stream.next() => m,
        };
        ctx.clock.touch_rx();
        let data = match next {
            None => {
                if !eof {
                    let _ = local.shutdown().await;
                }
                return (DownEnd::Vanished, eof);
            }
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                return (DownEnd::Vanished, eof);
            }
            Some(Err(e)) => return (DownEnd::Relay(e.to_string()), eof),
            Some(Ok(Message::Close(frame))) => {
                if !eof {
                    let _ = local.shutdown().await;
                }
                return (DownEnd::Closed(frame), eof);
            }
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Text(text))) => text.into(),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
        };
        if data.is_empty() {
            // Only half-close framing gives an empty message a meaning; otherwise it is a no-op.
            if ctx.framing == Framing::HalfClose && !eof {
                eof = true;
                let _ = local.shutdown().await;
                state.send_replace(Down::EofReceived);
            }
            continue;
        }
        if eof {
            return (DownEnd::Protocol("data after end-of-stream"), eof);
        }
        let write = async {
            local.write_all(&data).await?;
            local.flush().await
        };
        let written = tokio::select! {
            biased;
            () = &mut stopped => return (DownEnd::Stopped, eof),
            r = write => r,
        };
        if let Err(e) = written {
            return (DownEnd::Local(e), eof);
        }
        let n = data.len() as u64;
        *received += n;
        ctx.meter.from_relay.fetch_add(n, Ordering::Relaxed);
        ctx.clock.touch_data();
    }
}

/// Reads at most `size` bytes into a buffer that exists only during the attempt: allocated
/// when polled, freed again when the reader has nothing (see the module documentation). An
/// empty buffer means EOF.
async fn read_chunk<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
) -> std::io::Result<BytesMut> {
    std::future::poll_fn(|cx| {
        let mut buf = BytesMut::with_capacity(size);
        match tokio_util::io::poll_read_buf(Pin::new(&mut *reader), cx, &mut buf) {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(buf)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Sleeps until `at`, or forever without one: a `select!` branch for an optional deadline.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A keep-alive interval: its first tick one period from now, and a tick missed while busy
/// delays the next ones (one late ping, not a burst).
pub fn pinger(every: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + every, every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The interval's next tick, or never without one: a `select!` branch for optional pings.
pub async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

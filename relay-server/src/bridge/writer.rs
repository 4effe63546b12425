//! The writing half of one side of a bridge, shared by the pump towards that side (data,
//! Close) and the pump from it (answers to its pings): once a Close went out nothing follows
//! it, and a failed write marks the side gone.

use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, OpCode};
use tokio_util::codec::Framed;

use super::CLOSE_GRACE;
use crate::frames::FrameCodec;

/// The writing half of one side, shared by the pump towards it (data, Close) and the pump
/// from it (answers to its pings).
pub(super) struct Writer<T> {
    pub(super) sink: SplitSink<Framed<T, FrameCodec>, Frame>,
    /// A Close was sent to this side: nothing may follow it.
    closed: bool,
    /// A write failed: the side is gone.
    failed: bool,
}

pub(super) type Side<T> = Mutex<Writer<T>>;

impl<T: AsyncRead + AsyncWrite + Unpin> Writer<T> {
    pub(super) fn new(sink: SplitSink<Framed<T, FrameCodec>, Frame>) -> Self {
        Self {
            sink,
            closed: false,
            failed: false,
        }
    }

    /// Sends `frame` unless a Close went out already (a Close marks the side closed and is
    /// bounded by [`CLOSE_GRACE`]). Returns false when the side is gone (this or an earlier
    /// write failed).
    pub(super) async fn send(&mut self, frame: Frame) -> bool {
        if self.closed {
            return !self.failed;
        }
        let sent = if is_close(&frame) {
            self.closed = true;
            timeout(CLOSE_GRACE, self.sink.send(frame))
                .await
                .unwrap_or(Ok(()))
        } else {
            self.sink.send(frame).await
        };
        if let Err(err) = sent {
            tracing::debug!(error = %err, "bridge: write failed");
            self.closed = true;
            self.failed = true;
        }
        !self.failed
    }
}

pub(super) fn is_close(frame: &Frame) -> bool {
    frame.header().opcode == OpCode::Control(Control::Close)
}

pub(super) fn close_frame(frame: CloseFrame) -> Frame {
    Frame::close(Some(frame))
}

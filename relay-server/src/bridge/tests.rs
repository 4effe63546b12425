use tokio::io::DuplexStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;

use super::writer::is_close;
use super::*;

/// A peer's WebSocket (the client end) and the relay's raw end of its connection.
async fn pair() -> (WebSocketStream<DuplexStream>, DuplexStream) {
    let (a, b) = tokio::io::duplex(1 << 16);
    (
        WebSocketStream::from_raw_socket(a, Role::Client, None).await,
        b,
    )
}

/// A peer that speaks frames (as .NET's does under its `Shutdown()`): it may go on
/// sending after a Close.
fn frame_peer() -> (Framed<DuplexStream, FrameCodec>, DuplexStream) {
    let (a, b) = tokio::io::duplex(1 << 16);
    (Framed::new(a, FrameCodec::new(End::Client, 1 << 20)), b)
}

async fn next_data(ws: &mut WebSocketStream<DuplexStream>) -> Message {
    loop {
        match ws.next().await.expect("open").expect("ok") {
            Message::Ping(_) | Message::Pong(_) => continue,
            m => return m,
        }
    }
}

fn settings(idle: u64) -> (BridgeSettings, CancellationToken) {
    let drain = CancellationToken::new();
    (
        BridgeSettings {
            idle_timeout: Duration::from_secs(idle),
            peer_response_timeout: Duration::ZERO,
            max_frame: 1 << 20,
            read_chunk: 32 << 10,
            drain: drain.clone(),
            stats: RelayStats::new(),
        },
        drain,
    )
}

#[tokio::test]
async fn forwards_empty_binary_text_and_close() {
    let (mut sender, sender_side) = pair().await;
    let (mut listener, listener_side) = pair().await;
    let (settings, _drain) = settings(0);
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings,
    ));
    let run = async {
        sender
            .send(Message::binary(vec![1, 2, 3]))
            .await
            .expect("send");
        sender
            .send(Message::binary(Vec::new()))
            .await
            .expect("send");
        listener.send(Message::text("hi")).await.expect("send");
        assert_eq!(
            next_data(&mut listener).await,
            Message::binary(vec![1, 2, 3])
        );
        assert_eq!(next_data(&mut listener).await, Message::binary(Vec::new()));
        assert_eq!(next_data(&mut sender).await, Message::text("hi"));
        sender
            .close(Some(CloseFrame {
                code: CloseCode::Library(4000),
                reason: "bye".into(),
            }))
            .await
            .expect("close");
        let Message::Close(Some(frame)) = next_data(&mut listener).await else {
            panic!("expected close");
        };
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::Library(4000), "bye")
        );
        // The listener completes the handshake; the sender sees its close answered.
        drop(listener);
        while let Some(Ok(_)) = sender.next().await {}
        task.await.expect("bridge ends");
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("in time");
}

#[tokio::test(start_paused = true)]
async fn idle_bridge_closes_both_sides_with_1001() {
    let (mut sender, sender_side) = pair().await;
    let (mut listener, listener_side) = pair().await;
    let (settings, _drain) = settings(60);
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings,
    ));
    sender.send(Message::binary(vec![9])).await.expect("send");
    assert_eq!(next_data(&mut listener).await, Message::binary(vec![9]));
    let start = Instant::now();
    for ws in [&mut sender, &mut listener] {
        let Message::Close(Some(frame)) = next_data(ws).await else {
            panic!("expected close");
        };
        assert_eq!(frame.code, CloseCode::Away);
        assert!(
            frame.reason.starts_with("idle timeout. TrackingId:"),
            "{frame:?}"
        );
    }
    assert!(start.elapsed() >= Duration::from_secs(59));
    drop((sender, listener));
    task.await.expect("bridge ends");
}

#[tokio::test(start_paused = true)]
async fn keep_alive_pings_keep_a_quiet_bridge_open() {
    let (mut sender, sender_side) = pair().await;
    let (mut listener, listener_side) = pair().await;
    let (settings, _drain) = settings(60);
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings,
    ));
    // Two hours without data, the sender pinging every 30 s (the listener only answers
    // the relay's nothing; its reads keep the streams moving).
    for _ in 0..240 {
        sender
            .send(Message::Ping(Default::default()))
            .await
            .expect("ping");
        let _ = timeout(Duration::from_secs(30), sender.next()).await;
        let _ = timeout(Duration::from_millis(1), listener.next()).await;
        assert!(!task.is_finished(), "closed although both ends kept alive");
    }
    // Pings stop: the idle timeout applies again.
    let quiet = Instant::now();
    let Message::Close(Some(frame)) = next_data(&mut listener).await else {
        panic!("expected close");
    };
    assert!(
        frame.reason.starts_with("idle timeout. TrackingId:"),
        "{frame:?}"
    );
    assert!(
        quiet.elapsed() >= Duration::from_secs(59),
        "{:?}",
        quiet.elapsed()
    );
    drop((sender, listener));
    task.await.expect("bridge ends");
}

#[tokio::test(start_paused = true)]
async fn drain_deadline_closes_both_sides() {
    let (mut sender, sender_side) = pair().await;
    let (mut listener, listener_side) = pair().await;
    let (settings, drain) = settings(0);
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings,
    ));
    drain.cancel();
    for ws in [&mut sender, &mut listener] {
        let Message::Close(Some(frame)) = next_data(ws).await else {
            panic!("expected close");
        };
        assert!(
            frame.reason.starts_with("relay shutting down. TrackingId:"),
            "{frame:?}"
        );
    }
    drop((sender, listener));
    task.await.expect("bridge ends");
}

#[tokio::test]
async fn a_close_is_forwarded_and_the_other_side_may_still_send() {
    let (mut sender, sender_side) = pair().await;
    let (mut listener, listener_side) = frame_peer();
    let (settings, _drain) = settings(0);
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings,
    ));
    let run = async {
        sender
            .send(Message::binary(&b"request"[..]))
            .await
            .expect("send");
        // The sender has finished: its Close goes to the listener, nobody answers it yet.
        sender.close(None).await.expect("close");
        let request = listener.next().await.expect("open").expect("frame");
        assert_eq!(request.payload(), b"request");
        let close = listener.next().await.expect("open").expect("frame");
        assert!(is_close(&close));
        for part in [&b"the "[..], b"whole ", b"reply"] {
            let data = Frame::message(part, OpCode::Data(Data::Binary), true);
            listener.send(data).await.expect("send after the close");
        }
        listener
            .send(close_frame(CloseFrame {
                code: CloseCode::Normal,
                reason: "done".into(),
            }))
            .await
            .expect("close");
        let mut reply = Vec::new();
        let frame = loop {
            match sender.next().await.expect("open").expect("message") {
                Message::Binary(data) => reply.extend_from_slice(&data),
                Message::Close(frame) => break frame,
                _ => {}
            }
        };
        assert_eq!(reply, b"the whole reply");
        assert_eq!(frame.map(|f| f.reason.to_string()).as_deref(), Some("done"));
        // The handshake completed end to end: the relay closes both connections.
        assert!(matches!(sender.next().await, None | Some(Err(_))));
        assert!(listener.next().await.is_none());
        task.await.expect("bridge ends");
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("in time");
}

#[tokio::test(start_paused = true)]
async fn a_side_that_never_closes_is_closed_after_the_linger() {
    let (mut sender, sender_side) = pair().await;
    let (mut listener, listener_side) = frame_peer();
    let (settings, _drain) = settings(0);
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings,
    ));
    sender.close(None).await.expect("close");
    let close = listener.next().await.expect("open").expect("frame");
    assert!(is_close(&close));
    let start = Instant::now();
    away(&mut sender, "no close after the peer's close. TrackingId:").await;
    assert!(start.elapsed() >= CLOSE_LINGER, "{:?}", start.elapsed());
    drop(listener);
    task.await.expect("bridge ends");
}

/// Waits for the relay's Close to `ws`: 1001 with a reason starting with `reason`.
async fn away(ws: &mut WebSocketStream<DuplexStream>, reason: &str) {
    let Message::Close(Some(frame)) = next_data(ws).await else {
        panic!("expected the relay's close");
    };
    assert_eq!(frame.code, CloseCode::Away);
    assert!(frame.reason.starts_with(reason), "{frame:?}");
}

/// Waits for the bridge to end once its sides are gone.
async fn ends(task: tokio::task::JoinHandle<()>) {
    timeout(CLOSE_GRACE * 3, task)
        .await
        .expect("ends")
        .expect("task");
}

/// A sender and a listener (WebSocket clients) bridged with `settings`, and the bridge.
async fn bridged(
    settings: BridgeSettings,
) -> (
    WebSocketStream<DuplexStream>,
    WebSocketStream<DuplexStream>,
    tokio::task::JoinHandle<()>,
) {
    let (sender, sender_side) = pair().await;
    let (listener, listener_side) = pair().await;
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings,
    ));
    (sender, listener, task)
}

fn settings_with(respond: u64, max_frame: usize) -> BridgeSettings {
    let (mut settings, _) = settings(0);
    settings.peer_response_timeout = Duration::from_secs(respond);
    settings.max_frame = max_frame;
    settings
}

/// The Close a frame-speaking peer gets, skipping data and pings.
async fn close_of(peer: &mut Framed<DuplexStream, FrameCodec>) -> CloseFrame {
    loop {
        let frame = peer.next().await.expect("open").expect("frame");
        if is_close(&frame) {
            let payload = frame.payload();
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
            return CloseFrame {
                code: code.into(),
                reason: reason.into(),
            };
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_side_that_stops_reading_is_reported_to_the_other() {
    let (mut sender, sender_side) = pair().await;
    // The listener's end is held but never read: frozen, or alive and not reading.
    let (_frozen, listener_side) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings_with(10, 1 << 20),
    ));
    let start = Instant::now();
    sender
        .send(Message::binary(&b"request"[..]))
        .await
        .expect("send");
    let reason = "listener stopped responding: nothing from it within 10 s";
    away(&mut sender, reason).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
    drop(sender);
    timeout(CLOSE_GRACE * 3, task)
        .await
        .expect("the bridge ends")
        .expect("task");
}

#[tokio::test(start_paused = true)]
async fn a_side_that_answers_pings_is_not_taken_for_dead() {
    let (mut sender, mut listener, task) = bridged(settings_with(10, 1 << 20)).await;
    // A minute of one-way data to a listener that reads (and so answers pings) but never
    // sends data back.
    for i in 0..60u8 {
        sender.send(Message::binary(vec![i])).await.expect("send");
        assert_eq!(next_data(&mut listener).await, Message::binary(vec![i]));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(!task.is_finished(), "closed a listener that answered");
    drop((sender, listener));
    ends(task).await;
}

#[tokio::test(start_paused = true)]
async fn only_a_side_that_stays_silent_is_pinged() {
    let (mut sender, mut listener, task) = bridged(settings_with(10, 1 << 20)).await;
    let call = Message::binary(&b"call"[..]);
    sender.send(call.clone()).await.expect("send");
    assert_eq!(listener.next().await.expect("open").expect("ok"), call);
    // The listener answers within a moment: it owes nothing, and is never pinged.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reply = Message::binary(&b"reply"[..]);
    listener.send(reply.clone()).await.expect("send");
    assert_eq!(sender.next().await.expect("open").expect("ok"), reply);
    let answered = Instant::now();
    // The sender stays silent after the reply: it is pinged once the reply is a moment old.
    let ping = sender.next().await.expect("open").expect("ok");
    assert!(matches!(ping, Message::Ping(_)), "{ping:?}");
    let waited = answered.elapsed();
    assert!(
        waited >= liveness::ping_after(Duration::from_secs(10)) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    let quiet = timeout(Duration::from_secs(3), listener.next()).await;
    assert!(quiet.is_err(), "the listener got {quiet:?}");
    drop((sender, listener));
    ends(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_side_that_owes_an_answer_is_pinged_before_a_close_is_forwarded_to_it() {
    let (mut sender, mut listener, task) = bridged(settings_with(10, 1 << 20)).await;
    // A foreign sender half-closes right after its request (its Close only means "done
    // sending"): the listener may take long to answer, so it must have a ping to answer.
    let request = Message::binary(&b"request"[..]);
    sender.send(request.clone()).await.expect("send");
    sender.send(Message::Close(None)).await.expect("close");
    assert_eq!(listener.next().await.expect("open").expect("ok"), request);
    let ping = listener.next().await.expect("open").expect("ok");
    assert!(matches!(ping, Message::Ping(_)), "{ping:?}");
    let close = listener.next().await.expect("open").expect("ok");
    assert!(matches!(close, Message::Close(_)), "{close:?}");
    drop((sender, listener));
    ends(task).await;
}

#[tokio::test(start_paused = true)]
async fn a_flooding_side_is_released_when_the_reader_vanishes() {
    let (sender, sender_side) = pair().await;
    // The listener's connection as the relay sees it when a reset shows on the write side
    // only: its reads stay pending, its writes block (nobody reads) until it vanishes,
    // then fail.
    let (_quiet, reads) = tokio::io::duplex(1 << 16);
    let (unread, writes) = tokio::io::duplex(1 << 16);
    let listener_side = tokio::io::join(reads, writes);
    // No liveness deadline and no idle timeout: only the failed write may end this.
    let task = tokio::spawn(bridge(
        Conn::new(sender_side),
        Conn::new(listener_side),
        settings_with(0, 1 << 20),
    ));
    let (mut sink, mut stream) = sender.split();
    let flood = tokio::spawn(async move {
        let mut sent = 0usize;
        while sink
            .send(Message::binary(vec![7u8; 16 << 10]))
            .await
            .is_ok()
        {
            sent += 1;
        }
        sent
    });
    // The flood fills the listener's unread buffer, then the bridge and the sender block.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!flood.is_finished() && !task.is_finished());
    let gone = Instant::now();
    drop(unread);
    let closed = async {
        loop {
            if let Message::Close(Some(frame)) =
                stream.next().await.expect("open").expect("message")
            {
                return frame;
            }
        }
    };
    let frame = timeout(CLOSE_GRACE, closed)
        .await
        .expect("released in time");
    assert_eq!(frame.code, CloseCode::Away);
    assert!(
        frame.reason.starts_with("peer connection lost"),
        "{frame:?}"
    );
    assert!(
        gone.elapsed() < Duration::from_secs(1),
        "{:?}",
        gone.elapsed()
    );
    drop(stream);
    timeout(CLOSE_GRACE * 3, task)
        .await
        .expect("the bridge ends")
        .expect("task");
    let sent = timeout(CLOSE_GRACE, flood)
        .await
        .expect("flood released")
        .expect("task");
    assert!(sent > 4, "{sent} messages");
}

#[tokio::test]
async fn broken_frames_get_precise_close_codes_on_both_sides() {
    let cases: [(Frame, u16, &str); 3] = [
        (
            Frame::message(vec![0u8; 2048], OpCode::Data(Data::Binary), true),
            1009,
            "a frame of 2048 bytes exceeds the limit of 1024 bytes",
        ),
        (
            Frame::message(vec![b'a', 0xFF], OpCode::Data(Data::Text), true),
            1007,
            "a text message is not valid UTF-8",
        ),
        (
            {
                let mut frame = Frame::message(vec![1], OpCode::Data(Data::Binary), true);
                frame.header_mut().rsv2 = true;
                frame
            },
            1002,
            "protocol violation: a reserved bit set without an extension",
        ),
    ];
    for (frame, code, what) in cases {
        let (mut sender, sender_side) = frame_peer();
        let (mut listener, listener_side) = frame_peer();
        let task = tokio::spawn(bridge(
            Conn::new(sender_side),
            Conn::new(listener_side),
            settings_with(0, 1 << 10),
        ));
        let run = async {
            sender.send(frame).await.expect("send");
            let to_sender = close_of(&mut sender).await;
            assert_eq!(u16::from(to_sender.code), code);
            assert!(
                to_sender
                    .reason
                    .starts_with(&format!("{what}. TrackingId:")),
                "{to_sender:?}"
            );
            let to_listener = close_of(&mut listener).await;
            assert_eq!(u16::from(to_listener.code), code);
            assert!(
                to_listener
                    .reason
                    .starts_with(&format!("sender: {what}. TrackingId:")),
                "{to_listener:?}"
            );
            drop((sender, listener));
            task.await.expect("bridge ends");
        };
        timeout(Duration::from_secs(20), run)
            .await
            .expect("in time");
    }
}

/// Frames a client sent right behind its upgrade request, which hyper read with the request,
/// come first and intact.
#[tokio::test]
async fn frames_read_ahead_of_the_bridge_are_forwarded_first() {
    let (mut sender, sender_side) = frame_peer();
    let (mut listener, listener_side) = frame_peer();
    // "early" as the client sent it (masked), already read off the connection.
    let mut early = bytes::BytesMut::new();
    tokio_util::codec::Encoder::encode(
        &mut FrameCodec::new(End::Client, 1 << 20),
        Frame::message(&b"early"[..], OpCode::Data(Data::Binary), true),
        &mut early,
    )
    .expect("encode");
    let sender_conn = Conn {
        io: sender_side,
        read_ahead: early.freeze(),
    };
    let (settings, _drain) = settings(0);
    let task = tokio::spawn(bridge(sender_conn, Conn::new(listener_side), settings));
    let run = async {
        let late = Frame::message(&b"late"[..], OpCode::Data(Data::Binary), true);
        sender.send(late).await.expect("send");
        for expected in [&b"early"[..], b"late"] {
            let frame = listener.next().await.expect("open").expect("frame");
            assert_eq!(frame.payload(), expected);
        }
        drop((sender, listener));
        task.await.expect("bridge ends");
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("in time");
}

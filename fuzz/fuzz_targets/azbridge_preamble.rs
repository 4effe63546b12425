//! The azbridge preamble as a relay-listener reads it from a sender's WebSocket: the input is
//! cut into binary messages (the first byte says where) and fed to `azbridge::answer` over an
//! in-memory WebSocket; no input may panic or hang past the preamble's time limit.
#![no_main]

use std::time::Duration;

use futures_util::SinkExt as _;
use hc_client::azbridge;
use hc_client::tokio_tungstenite::WebSocketStream;
use hc_client::tokio_tungstenite::tungstenite::Message;
use hc_client::tokio_tungstenite::tungstenite::protocol::Role;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    // Within the in-memory pipe's buffer: the sender writes everything before the answer reads.
    if body.len() > 8192 {
        return;
    }
    let step = usize::from(cut).max(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut sender = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
        let mut listener = WebSocketStream::from_raw_socket(b, Role::Server, None).await;
        for chunk in body.chunks(step) {
            if sender.feed(Message::binary(chunk.to_vec())).await.is_err() {
                return;
            }
        }
        let _ = sender.flush().await;
        let ports = vec!["license".to_owned(), "12300".to_owned()];
        // Paused time: the limit elapses at once when the input runs out.
        let _ = azbridge::answer(&mut listener, &ports, Duration::from_secs(5)).await;
        drop(sender);
    });
});

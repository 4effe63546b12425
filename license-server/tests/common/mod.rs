//! Test fixtures: a license server on 127.0.0.1:0 with an injectable wall clock, clients for
//! it, and a raw protocol client that builds frames by hand.

#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use license_client::{ClientConfig, ClientSession, RemoteApi};
use license_core::SlotRef;
use license_core::clock::{SharedWallClock, TokioClock};
use license_core::engine::SessionId;
use license_core::protocol::frame::{Frame, Header, TAG_LEN};
use license_core::protocol::{ClientHandshake, Command, Reply, Request};
use license_server::LicenseServer;
use license_server::config::{DongleSection, ServerConfig};
use test_support::license::License;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every end-to-end step is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(20);

pub const SLOT: u16 = 1;

pub fn at(slot: u16) -> SlotRef {
    SlotRef::first_dongle(slot)
}

/// A config with one simulated dongle whose AppSlot 1 has `limit` seats.
pub fn config(limit: u32) -> ServerConfig {
    ServerConfig {
        dongles: vec![DongleSection {
            number: 1,
            sernr: Some(1_234_567_890),
            name: Some("TestDongle".into()),
            limits: [(SLOT, limit), (2, 10)].into(),
            slot_names: [(SLOT, "Test App".to_owned())].into(),
            data: vec![5, 6, 7],
            ..DongleSection::default()
        }],
        ..ServerConfig::default()
    }
}

/// A license server on 127.0.0.1:0 ([`License`]) whose wall clock its clients share.
pub struct Running {
    pub server: LicenseServer,
    pub addr: SocketAddr,
    pub clock: SharedWallClock,
    license: License,
}

impl Running {
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::for_server(self.addr.ip().to_string(), self.addr.port());
        c.clock = self.clock.clone();
        c
    }

    pub fn client(&self) -> RemoteApi {
        RemoteApi::new(self.client_config())
    }

    pub fn persistent_client(&self) -> RemoteApi {
        let mut c = self.client_config();
        c.persistent = true;
        RemoteApi::new(c)
    }

    pub fn taken(&self, slot: u16) -> u32 {
        self.server.snapshot().slot(slot).map_or(0, |s| s.taken)
    }

    pub async fn stop(self) {
        self.license.stop_within(LIMIT).await;
    }
}

/// Starts a server for `config` on 127.0.0.1:0.
pub async fn start(config: ServerConfig) -> Running {
    let clock: SharedWallClock = Arc::new(TokioClock::new());
    let license = License::start_simulated(&config, clock.clone()).await;
    Running {
        server: license.server().clone(),
        addr: license.addr(),
        clock,
        license,
    }
}

/// A client that speaks the protocol by hand over one TCP connection.
pub struct Raw {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(LIMIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next frame, or `None` when the server closed the connection.
    pub async fn read(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = Frame::decode(&self.buf).expect("server frames decode") {
                let _ = self.buf.split_to(used);
                return Some(frame);
            }
            let n = tokio::time::timeout(LIMIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("answer in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    pub async fn call(&mut self, frame: &Frame) -> Frame {
        self.send_bytes(&frame.to_bytes()).await;
        self.read().await.expect("an answer")
    }

    /// Init by hand; returns the session.
    pub async fn init(&mut self, timestamp: u64) -> ClientSession {
        let (hs, frame) = init_frame("raw", timestamp);
        let answer = self.call(&frame).await;
        let reply = Reply::decode(Command::Init, &answer.payload).expect("init reply");
        let license_core::protocol::command::ReplyBody::Init {
            server_public,
            server_key,
            signature,
        } = reply.body
        else {
            panic!("init failed: {}", reply.value);
        };
        let id = SessionId::new(answer.header.session).expect("id");
        let secret = hs
            .finish(&server_public, &server_key, &signature, id, 1, None)
            .expect("finish");
        ClientSession {
            id,
            secret,
            next_packet: 2,
        }
    }

    /// Sends `request` in `session` and returns the decoded value (or error code).
    pub async fn request(
        &mut self,
        session: &mut ClientSession,
        request: &Request,
        ts: u64,
    ) -> i32 {
        let frame = session.request_frame(request, ts);
        let header = frame.header;
        let answer = self.call(&frame).await;
        match session.open_reply(&header, &answer) {
            Ok(reply) => reply.value,
            Err(code) => code.code(),
        }
    }
}

/// The answer's value, read without authentication.
pub fn value_of(frame: &Frame) -> i32 {
    i32::from_be_bytes(frame.payload[..4].try_into().expect("4 bytes"))
}

/// An Init request frame from a fresh key pair named `client_name`, and the handshake that can
/// finish it.
pub fn init_frame(client_name: &str, timestamp: u64) -> (ClientHandshake, Frame) {
    let hs = ClientHandshake::new().expect("handshake");
    let request = Request::Init {
        client_public: hs.public(),
        client_name: client_name.into(),
    };
    let frame = Frame {
        header: Header {
            response: false,
            command: Command::Init.code(),
            session: 0,
            packet: 1,
            timestamp,
        },
        payload: request.encode_payload(),
        tag: [0; TAG_LEN],
    };
    (hs, frame)
}

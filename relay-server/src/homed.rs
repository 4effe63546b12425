//! An accepted connection that can move to another runtime's I/O driver.
//!
//! Tokio registers a socket with the I/O driver of the runtime it was created on, and only
//! that driver learns when it becomes readable. The relay accepts and handshakes on its main
//! runtime, which new tunnels keep busy; a bridged connection left registered there is woken
//! only when that busy thread next looks at its driver. [`Homed::rehome`] registers the
//! socket with the driver of the runtime it is called on (see [`crate::established`]), so an
//! established connection's data is noticed by a thread that has nothing else to do.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::bridge::Conn;

/// A TCP connection as the relay accepts it, plain or under TLS.
#[derive(Debug)]
pub(crate) struct Homed(Option<TcpStream>);

impl Homed {
    pub(crate) fn new(tcp: TcpStream) -> Self {
        Self(Some(tcp))
    }

    /// Registers the socket with the current runtime's I/O driver instead of the one it was
    /// accepted on. Call it from a task that owns the connection, on the runtime that is to
    /// serve it from now on.
    ///
    /// # Errors
    /// The socket could not be deregistered or registered; the connection is then closed.
    pub(crate) fn rehome(&mut self) -> io::Result<()> {
        let tcp = self.0.take().ok_or_else(moved)?;
        self.0 = Some(TcpStream::from_std(tcp.into_std()?)?);
        Ok(())
    }

    fn tcp(self: Pin<&mut Self>) -> io::Result<Pin<&mut TcpStream>> {
        match self.get_mut().0.as_mut() {
            Some(tcp) => Ok(Pin::new(tcp)),
            None => Err(moved()),
        }
    }
}

/// A failed [`Homed::rehome`] left no socket behind.
fn moved() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection lost while moving it",
    )
}

impl AsyncRead for Homed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.tcp() {
            Ok(tcp) => tcp.poll_read(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl AsyncWrite for Homed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.tcp() {
            Ok(tcp) => tcp.poll_write(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.tcp() {
            Ok(tcp) => tcp.poll_write_vectored(cx, bufs),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tcp() {
            Ok(tcp) => tcp.poll_flush(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tcp() {
            Ok(tcp) => tcp.poll_shutdown(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

/// Any connection a bridge can speak frames over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection type the relay serves whose socket is [`Homed`]: plain, or under TLS.
trait Movable: Io + 'static {
    fn homed(&mut self) -> &mut Homed;
}

impl Movable for Homed {
    fn homed(&mut self) -> &mut Homed {
        self
    }
}

impl Movable for TlsStream<Homed> {
    fn homed(&mut self) -> &mut Homed {
        self.get_mut().0
    }
}

/// `upgraded` as a `T`, moved to the current runtime's driver, with the bytes hyper had read
/// past the upgrade request; `Err` with `upgraded` back when it is not a `T`.
fn moved_as<T: Movable>(upgraded: Upgraded) -> Result<io::Result<Conn<Box<dyn Io>>>, Upgraded> {
    let parts = upgraded.downcast::<TokioIo<T>>()?;
    let mut io = parts.io.into_inner();
    Ok(io.homed().rehome().map(|()| Conn {
        io: Box::new(io) as Box<dyn Io>,
        read_ahead: parts.read_buf,
    }))
}

/// An upgraded connection, moved to the current runtime's driver when hyper handed over the
/// bare connection (plain or TLS); a connection of another kind stays as hyper gave it.
pub(crate) fn rehomed(upgraded: Upgraded) -> io::Result<Conn<Box<dyn Io>>> {
    let upgraded = match moved_as::<Homed>(upgraded) {
        Ok(moved) => return moved,
        Err(upgraded) => upgraded,
    };
    match moved_as::<TlsStream<Homed>>(upgraded) {
        Ok(moved) => moved,
        Err(upgraded) => Ok(Conn::new(Box::new(TokioIo::new(upgraded)))),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A connection accepted on one runtime keeps working on another after that first
    /// runtime is gone, once it was moved; unmoved, it fails there.
    #[test]
    fn a_moved_connection_outlives_the_runtime_that_accepted_it() {
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (mut moved, mut stayed, mut peers) = first.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let mut peers = Vec::new();
            let mut accepted = Vec::new();
            for _ in 0..2 {
                peers.push(std::net::TcpStream::connect(addr).expect("connect"));
                accepted.push(Homed::new(listener.accept().await.expect("accept").0));
            }
            let stayed = accepted.pop().expect("two");
            let moved = accepted.pop().expect("two");
            (moved, stayed, peers)
        });
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        second.block_on(async { moved.rehome().expect("rehome") });
        drop(first);
        second.block_on(async {
            let limit = std::time::Duration::from_secs(10);
            use std::io::{Read as _, Write as _};
            peers[0].write_all(b"ping").expect("write");
            let mut got = [0u8; 4];
            tokio::time::timeout(limit, moved.read_exact(&mut got))
                .await
                .expect("in time")
                .expect("read");
            assert_eq!(&got, b"ping");
            moved.write_all(b"pong").await.expect("write back");
            peers[0].read_exact(&mut got).expect("read back");
            assert_eq!(&got, b"pong");
            // The one left on the dropped runtime's driver cannot wait for data any more.
            peers[1].write_all(b"ping").expect("write");
            let err = tokio::time::timeout(limit, stayed.read_exact(&mut got))
                .await
                .expect("in time");
            assert!(err.is_err(), "an unmoved connection still read: {err:?}");
        });
        drop(peers.pop());
    }
}

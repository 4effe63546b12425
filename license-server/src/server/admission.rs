//! Which connections are served: the listening socket (its backlog follows the system's
//! `somaxconn`, so bursts of one-call connections are queued by the kernel instead of
//! refused), and the table of open connections, shared fairly per client address. Nothing
//! here reads a byte: the idle deadline of each connection is in `connection.rs`.
//!
//! The table holds at most `MaxConnections` connections, at most `MaxConnectionsPerAddress`
//! of one address (IPv6: one /64, as for session quotas). A connection beyond its address's
//! share is closed at once. When the table is full, a newcomer from an address holding fewer
//! connections than the largest holder takes the place of that holder's oldest connection
//! (cancelled: it finishes a call in progress, then closes); otherwise it is closed. So idle
//! sockets from one address (or a few) never lock out the others.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use license_core::engine::quota_key;

/// Default `ConnectionIdleTimeOut`: MxNet2 opens a connection per call and sends its request
/// at once; a client that keeps its connection (ours, `persistent`) reconnects when it was
/// closed. A minute is far beyond either, and bounds what an idle socket costs.
pub const DEFAULT_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `MaxConnections`. An idle connection costs a socket, a small task and its read
/// buffer (a few KiB): 4096 of them are nothing for the machine, but need a file-descriptor
/// limit above it (`LimitNOFILE=` in the systemd unit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default `MaxConnectionsPerAddress`: a terminal server or a site's NAT with many processes
/// keeping connections still fits; one host cannot take more than a sixteenth of the table.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// The listen backlog where the system's maximum cannot be read.
const FALLBACK_BACKLOG: i32 = 1024;

/// The listen backlog: the system's maximum (`/proc/sys/net/core/somaxconn` on Linux), which
/// the kernel would cap any larger request to anyway.
pub fn listen_backlog() -> i32 {
    #[cfg(target_os = "linux")]
    if let Ok(text) = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        && let Ok(n) = text.trim().parse::<i32>()
        && n > 0
    {
        return n;
    }
    FALLBACK_BACKLOG
}

/// Binds a listening socket at `addr` with [`listen_backlog`] (tokio's own bind uses 1024).
///
/// # Errors
/// The address cannot be bound.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio and std do on Unix: a restarted server can bind while old connections linger
    // in TIME_WAIT. (On Windows the option would let another process steal the port.)
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(listen_backlog())?;
    TcpListener::from_std(socket.into())
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// Its address holds its share already.
    #[error("its address holds {0} connections already (MaxConnectionsPerAddress)")]
    PerAddress(usize),
    /// The table is full and its address holds as many as any other.
    #[error("the server holds MaxConnections connections and none can make room")]
    Full,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    total: usize,
    by_addr: HashMap<IpAddr, VecDeque<(u64, CancellationToken)>>,
}

impl Table {
    fn remove(&mut self, addr: IpAddr, id: u64) {
        let Some(list) = self.by_addr.get_mut(&addr) else {
            return;
        };
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        self.total -= before - list.len();
        if list.is_empty() {
            self.by_addr.remove(&addr);
        }
    }

    /// Cancels the oldest connection of the address holding the most, if it holds more than
    /// `mine` + 1 (taking its place must not simply move the imbalance).
    fn evict_from_largest(&mut self, except: IpAddr, mine: usize) -> bool {
        let largest = self
            .by_addr
            .iter()
            .filter(|(addr, _)| **addr != except)
            .max_by_key(|(_, list)| list.len())
            .map(|(addr, list)| (*addr, list.len()));
        let Some((addr, held)) = largest.filter(|&(_, held)| held > mine + 1) else {
            return false;
        };
        if let Some((id, token)) = self.by_addr.get(&addr).and_then(|l| l.front().cloned()) {
            tracing::debug!(victim = %addr, held, "connection table full: closing the oldest connection of the largest holder");
            token.cancel();
            self.remove(addr, id);
            return true;
        }
        false
    }
}

/// The open connections, per client address.
pub(crate) struct ConnectionTable {
    max: usize,
    per_address: usize,
    table: Mutex<Table>,
}

/// A connection's place in the table, given back when dropped.
pub(crate) struct Admitted<'a> {
    table: &'a ConnectionTable,
    addr: IpAddr,
    id: u64,
    /// Cancelled when the server stops or the connection is evicted.
    pub(crate) token: CancellationToken,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.table.lock().remove(self.addr, self.id);
    }
}

impl ConnectionTable {
    pub(crate) fn new(max: usize, per_address: usize) -> Self {
        Self {
            max: max.max(1),
            per_address: per_address.max(1),
            table: Mutex::new(Table::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection of client `ip`, or says why not. Its token is a child of
    /// `shutdown`.
    pub(crate) fn admit(
        &self,
        ip: IpAddr,
        shutdown: &CancellationToken,
    ) -> Result<Admitted<'_>, Refused> {
        let addr = quota_key(ip);
        let mut table = self.lock();
        let mine = table.by_addr.get(&addr).map_or(0, VecDeque::len);
        if mine >= self.per_address {
            return Err(Refused::PerAddress(mine));
        }
        if table.total >= self.max && !table.evict_from_largest(addr, mine) {
            return Err(Refused::Full);
        }
        table.next_id += 1;
        let id = table.next_id;
        let token = shutdown.child_token();
        table
            .by_addr
            .entry(addr)
            .or_default()
            .push_back((id, token.clone()));
        table.total += 1;
        Ok(Admitted {
            table: self,
            addr,
            id,
            token,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_address_gets_its_share_and_no_more() {
        let table = ConnectionTable::new(10, 3);
        let stop = CancellationToken::new();
        let held: Vec<_> = (0..3)
            .map(|_| table.admit(ip(1), &stop).expect("share"))
            .collect();
        assert_eq!(
            table.admit(ip(1), &stop).err(),
            Some(Refused::PerAddress(3))
        );
        assert!(table.admit(ip(2), &stop).is_ok(), "another address");
        drop(held);
        assert_eq!(table.open(), 0);
    }

    #[test]
    fn a_full_table_makes_room_from_the_largest_holder() {
        let table = ConnectionTable::new(4, 10);
        let stop = CancellationToken::new();
        let flood: Vec<_> = (0..4)
            .map(|_| table.admit(ip(1), &stop).expect("flood"))
            .collect();
        let good = table.admit(ip(2), &stop).expect("room is made");
        assert!(flood[0].token.is_cancelled(), "the oldest was evicted");
        assert!(!flood[1].token.is_cancelled());
        assert_eq!(table.open(), 4);
        assert_eq!(table.admit(ip(1), &stop).err(), Some(Refused::Full));
        drop(flood);
        assert_eq!(table.open(), 1);
        drop(good);
        assert_eq!(table.open(), 0);
        stop.cancel();
    }
}

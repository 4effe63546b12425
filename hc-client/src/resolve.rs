//! Turning a relay's host name into the addresses of its replicas: one DNS name may stand for
//! several relays (a Kubernetes headless Service has one A record per replica, DNS round robin
//! one per host), and [`crate::replicas`] treats each address as a replica of its own.
//!
//! [`Resolver`] is the injection point: the system's resolver (tokio's `lookup_host`, i.e.
//! `getaddrinfo`, which honours `/etc/hosts` and the platform's DNS settings) by default, any
//! [`Resolve`] in tests, which can then map a name to several loopback relays on different
//! ports — the answers are socket addresses for that reason.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

/// What a resolution returns: the addresses, or why there are none.
pub type Resolved<'a> = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// A way to resolve `host:port` to socket addresses.
pub trait Resolve: Send + Sync + fmt::Debug {
    /// Every address `host` (a name, never an IP literal) has, with `port` unless the
    /// resolver knows better.
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolved<'a>;
}

/// The system resolver (tokio's `lookup_host`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolved<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// The resolver a component uses: the system's unless a test put in another.
#[derive(Clone)]
pub struct Resolver(Arc<dyn Resolve>);

impl Resolver {
    /// Uses `resolve` instead of the system resolver.
    pub fn new(resolve: impl Resolve + 'static) -> Self {
        Self(Arc::new(resolve))
    }

    /// The addresses of `host:port`, sorted and without duplicates, so that two answers
    /// listing the same addresses in another order compare equal.
    ///
    /// # Errors
    /// The resolver's error.
    pub async fn addresses(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let mut addresses = self.0.resolve(host, port).await?;
        addresses.sort();
        addresses.dedup();
        Ok(addresses)
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Self::new(SystemResolver)
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Fixed answers that can be changed at run time: a name maps to socket addresses (ports
/// may differ per address), a name without an entry does not resolve. For tests that put
/// several relays on loopback behind one name and add or remove some while it runs.
#[derive(Debug, Default, Clone)]
pub struct Table(Arc<Mutex<HashMap<String, Vec<SocketAddr>>>>);

impl Table {
    /// `name` resolves to `addresses` from now on.
    pub fn set(&self, name: &str, addresses: &[SocketAddr]) {
        self.lock().insert(name.to_owned(), addresses.to_vec());
    }

    /// `name` no longer resolves.
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<SocketAddr>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Resolve for Table {
    fn resolve<'a>(&'a self, host: &'a str, _port: u16) -> Resolved<'a> {
        let answer = self.lock().get(host).cloned();
        Box::pin(async move {
            answer.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host}: no such name"),
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_system_resolver_answers_for_localhost_with_the_port() {
        let addresses = Resolver::default()
            .addresses("localhost", 9443)
            .await
            .expect("localhost resolves");
        assert!(!addresses.is_empty());
        assert!(
            addresses
                .iter()
                .all(|a| a.port() == 9443 && a.ip().is_loopback())
        );
    }
}

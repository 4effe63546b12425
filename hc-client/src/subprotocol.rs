//! The half-close negotiation between our sender and our listener.
//!
//! A WebSocket cannot carry data after one side sent Close, but a TCP connection can be
//! half-closed: one side finishes writing and keeps reading. To carry that, the sender offers
//! `Sec-WebSocket-Protocol: dongle-relay.raw, dongle-relay.v1` (in that order, because some
//! foreign listeners blindly pick the first offered one) and our listener picks
//! `dongle-relay.v1`, sending it on its accept dial-back; the relay returns it to both sides.
//!
//! Under `dongle-relay.v1` a **zero-length binary message means end-of-stream in that
//! direction**. Under `dongle-relay.raw` or no subprotocol (foreign peers) end-of-stream is the
//! WebSocket Close frame, so a half-close becomes a full close.
//!
//! A third protocol, `dongle-relay.mux.v1`, marks a **pooled** connection: a long-lived sender
//! WebSocket that carries many TCP streams with yamux (see [`crate::mux`]). The local-proxy
//! offers `dongle-relay.raw, dongle-relay.mux.v1` on such a connection (raw first, for the same
//! reason); our listener picks `dongle-relay.mux.v1` and runs a yamux server on it. A foreign
//! listener answers raw or nothing, which tells the proxy to fall back to one relay connection
//! per TCP connection.
//!
//! A fourth, `dongle-relay.preopened.v1`, marks a **pre-opened** 1:1 connection: the proxy
//! opens it before any client has come (so a legacy call skips the TLS handshake and the
//! rendezvous), which is why its upgrade carries no client headers. It frames like `v1`, and
//! the sender's first binary message is a PROXY v2 header naming the client and site (as a
//! multiplexed stream's first bytes are); our listener connects the target only once that
//! header has arrived. The proxy offers `dongle-relay.raw, dongle-relay.preopened.v1`; a
//! foreign listener answers raw or nothing, and then the connection is used (without the
//! header) only when the proxy is told to pre-open towards foreign listeners.

/// Half-close framing (zero-length binary message = end of stream).
pub const V1: &str = "dongle-relay.v1";
/// Plain framing, offered first for listeners that pick the first offer blindly.
pub const RAW: &str = "dongle-relay.raw";
/// Multiplexed framing: the WebSocket's binary messages carry one yamux session.
pub const MUX: &str = "dongle-relay.mux.v1";
/// Half-close framing on a pre-opened connection whose first message names the client.
pub const PREOPENED: &str = "dongle-relay.preopened.v1";
/// What a sender offers, in this order.
pub const SENDER_OFFER: [&str; 2] = [RAW, V1];
/// What the local-proxy offers on a pre-opened 1:1 connection, in this order.
pub const PREOPENED_OFFER: [&str; 2] = [RAW, PREOPENED];
/// What the local-proxy offers on a pooled (multiplexed) connection, in this order.
pub const MUX_OFFER: [&str; 2] = [RAW, MUX];

/// How the end of a byte stream is carried on the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `dongle-relay.v1`: an empty binary message ends one direction; Close ends both.
    HalfClose,
    /// Anything else: Close ends both directions.
    Raw,
}

impl Framing {
    /// The framing a negotiated subprotocol implies.
    pub fn from_subprotocol(chosen: Option<&str>) -> Self {
        match chosen {
            Some(p) if p.trim() == V1 || p.trim() == PREOPENED => Self::HalfClose,
            _ => Self::Raw,
        }
    }
}

/// The listener's choice from a sender's `Sec-WebSocket-Protocol` offer (a comma-separated list,
/// possibly absent): `mux.v1` if offered and `mux` is allowed, else `preopened.v1` if offered,
/// else `v1` if offered, else `raw` if offered, else nothing (a foreign offer we cannot speak is declined, as RFC 6455 allows).
/// A listener that does not multiplex (`mux == false`) answers a pooled connection with `raw`,
/// which the proxy takes as "fall back to 1:1".
pub fn choose(offer: Option<&str>, mux: bool) -> Option<&'static str> {
    let offered: Vec<&str> = offer
        .map(|o| o.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let preference: &[&'static str] = if mux {
        &[MUX, PREOPENED, V1, RAW]
    } else {
        &[PREOPENED, V1, RAW]
    };
    preference.iter().copied().find(|p| offered.contains(p))
}

/// Whether a negotiated subprotocol is the multiplexed one.
pub fn is_mux(chosen: Option<&str>) -> bool {
    chosen.is_some_and(|p| p.trim() == MUX)
}

/// Whether a negotiated subprotocol is the pre-opened one (a client header comes first).
pub fn is_preopened(chosen: Option<&str>) -> bool {
    chosen.is_some_and(|p| p.trim() == PREOPENED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_prefers_v1_and_declines_foreign_offers() {
        assert_eq!(
            choose(Some("dongle-relay.raw, dongle-relay.v1"), true),
            Some(V1)
        );
        assert_eq!(choose(Some("dongle-relay.raw"), true), Some(RAW));
        assert_eq!(choose(Some("mqtt"), true), None);
        assert_eq!(choose(None, true), None);
        assert_eq!(
            choose(Some("dongle-relay.raw, dongle-relay.mux.v1"), true),
            Some(MUX)
        );
        assert_eq!(
            choose(Some("dongle-relay.raw, dongle-relay.mux.v1"), false),
            Some(RAW)
        );
        assert!(is_mux(Some(MUX)) && !is_mux(Some(V1)) && !is_mux(None));
        for mux in [true, false] {
            assert_eq!(
                choose(Some("dongle-relay.raw, dongle-relay.preopened.v1"), mux),
                Some(PREOPENED)
            );
        }
        assert!(is_preopened(Some(PREOPENED)) && !is_preopened(Some(V1)));
        assert_eq!(
            Framing::from_subprotocol(Some(PREOPENED)),
            Framing::HalfClose
        );
        assert_eq!(Framing::from_subprotocol(Some(V1)), Framing::HalfClose);
        assert_eq!(Framing::from_subprotocol(Some(RAW)), Framing::Raw);
        assert_eq!(Framing::from_subprotocol(None), Framing::Raw);
    }
}

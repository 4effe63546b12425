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

/// Half-close framing (zero-length binary message = end of stream).
pub const V1: &str = "dongle-relay.v1";
/// Plain framing, offered first for listeners that pick the first offer blindly.
pub const RAW: &str = "dongle-relay.raw";
/// What a sender offers, in this order.
pub const SENDER_OFFER: [&str; 2] = [RAW, V1];

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
            Some(p) if p.trim() == V1 => Self::HalfClose,
            _ => Self::Raw,
        }
    }
}

/// The listener's choice from a sender's `Sec-WebSocket-Protocol` offer (a comma-separated list,
/// possibly absent): `v1` if offered, else `raw` if offered, else nothing (a foreign offer we
/// cannot speak is declined, as RFC 6455 allows).
pub fn choose(offer: Option<&str>) -> Option<&'static str> {
    let offered: Vec<&str> = offer
        .map(|o| o.split(',').map(str::trim).collect())
        .unwrap_or_default();
    [V1, RAW].into_iter().find(|p| offered.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_prefers_v1_and_declines_foreign_offers() {
        assert_eq!(choose(Some("dongle-relay.raw, dongle-relay.v1")), Some(V1));
        assert_eq!(choose(Some("dongle-relay.raw")), Some(RAW));
        assert_eq!(choose(Some("mqtt")), None);
        assert_eq!(choose(None), None);
        assert_eq!(Framing::from_subprotocol(Some(V1)), Framing::HalfClose);
        assert_eq!(Framing::from_subprotocol(Some(RAW)), Framing::Raw);
        assert_eq!(Framing::from_subprotocol(None), Framing::Raw);
    }
}

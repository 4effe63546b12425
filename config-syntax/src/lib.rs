//! The value syntax shared by every configuration surface of dongle-relay: command-line
//! flags, environment variables, TOML files. One parser per kind of value, so `--idle-timeout
//! 90s`, `DONGLE_RELAY_IDLE_TIMEOUT=90s` and `idle_timeout = "90s"` mean the same thing in the
//! relay, the listener and the proxy alike; the same for IP networks and allow/deny lists.

pub mod duration;
pub mod ip;
pub mod layers;

pub use duration::{DurationError, format_duration, parse_duration};
pub use ip::{AccessList, NetError, parse_net};
pub use layers::{Merge, layered};

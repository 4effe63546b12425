//! The relay-listener: runs on the dongle host, keeps an outbound control channel to the relay
//! and bridges each accepted rendezvous to a local TCP target.

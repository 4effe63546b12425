//! The local-proxy: runs at a client site, accepts local TCP connections and forwards each one
//! over the relay.

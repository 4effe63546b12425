//! The self-hosted Azure Relay Hybrid Connections relay.

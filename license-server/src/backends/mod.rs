//! Dongle backends: where the keys the engine serves come from.
//!
//! - [`simulated::SimulatedBackend`]: serial, model, AppSlot limits and data variables from
//!   configuration; the default for tests and the demo, labelled "simulated".
//! - [`usb::UsbBackend`] (rusb): enumerates Matrix keys, reports presence and access problems.
//! - [`none::NoDongles`]: no dongle at all.
//!
//! Both implement `license_core::dongle::DongleBackend`; the naming rules that turn what they
//! found into the engine's dongle table are `license_core::dongle::describe`.

pub mod none;
pub mod simulated;
pub mod usb;

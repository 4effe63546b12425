//! The dongle layer's vocabulary: what a backend reports ([`DongleBackend`], [`Detected`], a
//! [`Capabilities`] set), the `[dongleN]` naming sections of the configuration
//! ([`DongleSection`]), and the naming/limit rules of section 6.7 that turn what a backend found
//! into the engine's dongle table ([`describe`]).
//!
//! The backends themselves (simulated, USB) live in the `license-server` crate: they do I/O.
//! The USB key's own protocol is not public, so for a real key the AppSlot limits come from
//! configuration too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::engine::AppSlotDef;

/// Where a dongle comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DongleKind {
    /// A simulated dongle defined in configuration.
    Simulated,
    /// A Matrix key found on USB.
    Usb,
    /// No dongle source at all (`DongleBackend=none`): the server runs and answers, with no
    /// dongle present.
    None,
}

impl fmt::Display for DongleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Simulated => "simulated",
            Self::Usb => "usb",
            Self::None => "none",
        })
    }
}

/// Whether a dongle can be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum Presence {
    /// Present and usable.
    Present,
    /// Present, but the process may not open it (permissions, or another driver owns it).
    Inaccessible(String),
    /// Was present, is gone.
    Absent,
}

/// What a backend can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Lists the keys present.
    pub enumerate: bool,
    /// Reports arrival and removal while running, so the server polls it; a backend without it
    /// is read once at start.
    pub hotplug: bool,
    /// Reads the Matrix serial number from the key.
    pub serial: bool,
    /// Reads data variables from the key.
    pub read_data: bool,
    /// Checks the user code against the key.
    pub user_code: bool,
    /// Reads AppSlot limits from the key (never true: the key's protocol is not public, limits
    /// come from configuration).
    pub app_slots_from_key: bool,
}

/// A dongle a backend found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// Stable identity across scans: `sim:<serial>` or `usb:<bus>-<port path>`.
    pub key: String,
    /// The backend.
    pub kind: DongleKind,
    /// The model (from configuration, or the USB product).
    pub model: String,
    /// The Matrix serial number, when known.
    pub serial: Option<i32>,
    /// Data variables, when known.
    pub data: Vec<i32>,
    /// The user code the key answers to, when known (`None`: any).
    pub user_code: Option<i32>,
    /// Whether its data variables can be read (`rDongle_ReadDataEx`): false for a real USB key,
    /// whose protocol is not public.
    pub reads_data: bool,
    /// Usable or not.
    pub presence: Presence,
}

/// The model reported for a simulated dongle when the configuration names none.
pub const SIMULATED_MODEL: &str = "Matrix USB-Key (simulated)";

impl Detected {
    /// The simulated dongle a `[dongleN]` section describes: its serial (`Sernr`, else
    /// `1000000000 + N`), model, user code and data variables; always present.
    pub fn simulated(section: &DongleSection) -> Self {
        let serial = section
            .sernr
            .unwrap_or_else(|| 1_000_000_000_i32.saturating_add_unsigned(section.number));
        Self {
            key: format!("sim:{serial}"),
            kind: DongleKind::Simulated,
            model: section
                .model
                .clone()
                .unwrap_or_else(|| SIMULATED_MODEL.to_owned()),
            serial: Some(serial),
            data: section.data.clone(),
            user_code: section.user_code,
            reads_data: true,
            presence: Presence::Present,
        }
    }
}

/// Why a backend could not scan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DongleError {
    /// The USB subsystem cannot be used on this machine (no usbfs, no permissions...).
    #[error("USB is unavailable: {0}")]
    UsbUnavailable(String),
    /// Enumeration failed.
    #[error("cannot list USB devices: {0}")]
    Enumerate(String),
}

/// A source of dongles.
pub trait DongleBackend: Send + Sync + fmt::Debug {
    /// Which backend this is.
    fn kind(&self) -> DongleKind;
    /// What it can do.
    fn capabilities(&self) -> Capabilities;
    /// The dongles present now. Must not panic and must not block for long.
    ///
    /// # Errors
    /// The backend cannot be used at all right now.
    fn scan(&self) -> Result<Vec<Detected>, DongleError>;
}

/// One dongle as the engine knows it: what was detected, named and limited by configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DongleDescriptor {
    /// Stable identity (see [`Detected::key`]).
    pub key: String,
    /// Display name (section 6.7: `Name=`, else `DongleN`).
    pub name: String,
    /// Serial number (`Sernr=` for a USB key, whose serial cannot be read).
    pub serial: Option<i32>,
    /// Model.
    pub model: String,
    /// Backend.
    pub kind: DongleKind,
    /// The user code it answers to (`None`: any).
    pub user_code: Option<i32>,
    /// Data variables (simulated).
    pub data: Vec<i32>,
    /// Whether its data variables can be read (see [`Detected::reads_data`]).
    pub reads_data: bool,
    /// AppSlots with names and limits.
    pub slots: Vec<AppSlotDef>,
    /// Usable or not.
    pub presence: Presence,
}

/// Applies the naming rules of section 6.7 to what a backend found: a `[dongleN]` section whose
/// `Sernr` matches the dongle's serial wins; otherwise the section numbered like the dongle's
/// position (DngNr, from 1); otherwise the names are `DongleN` / `AppSlotN`. A section's slot
/// numbers name AppSlots and its `LimitN` keys give their seats.
pub fn describe(found: &[Detected], sections: &[DongleSection]) -> Vec<DongleDescriptor> {
    found
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let section = d
                .serial
                .and_then(|s| sections.iter().find(|sec| sec.sernr == Some(s)))
                .or_else(|| sections.iter().find(|sec| sec.number == number));
            let name = section
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| format!("Dongle{number}"));
            let slots = section.map_or_else(Vec::new, slot_defs);
            DongleDescriptor {
                key: d.key.clone(),
                name,
                serial: d.serial.or(section.and_then(|s| s.sernr)),
                model: d.model.clone(),
                kind: d.kind,
                user_code: d.user_code.or(section.and_then(|s| s.user_code)),
                data: d.data.clone(),
                reads_data: d.reads_data,
                slots,
                presence: d.presence.clone(),
            }
        })
        .collect()
}

fn slot_defs(section: &DongleSection) -> Vec<AppSlotDef> {
    let numbers: BTreeSet<u16> = section
        .slot_names
        .keys()
        .chain(section.limits.keys())
        .copied()
        .collect();
    numbers
        .into_iter()
        .map(|slot| AppSlotDef {
            slot,
            name: section
                .slot_names
                .get(&slot)
                .cloned()
                .unwrap_or_else(|| format!("AppSlot{slot}")),
            limit: section.limits.get(&slot).copied().unwrap_or(0),
        })
        .collect()
}

/// A `[dongleN]` section: names (section 6.7) plus our extensions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DongleSection {
    /// N of `[dongleN]` (the position in a TOML file, from 1).
    pub number: u32,
    /// `Sernr=`: the serial this section applies to (and a simulated dongle's serial).
    pub sernr: Option<i32>,
    /// `Name=`.
    pub name: Option<String>,
    /// `<slot>=<name>`: AppSlot names.
    pub slot_names: BTreeMap<u16, String>,
    /// `Limit<slot>=<seats>` (extension): AppSlot seat limits.
    pub limits: BTreeMap<u16, u32>,
    /// `Model=` (extension, simulated).
    pub model: Option<String>,
    /// `UserCode=` (extension): the user code the dongle answers to.
    pub user_code: Option<i32>,
    /// `Data=` (extension, simulated): comma-separated data variables.
    pub data: Vec<i32>,
}

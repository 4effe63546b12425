//! The simulated dongle: every `[dongleN]` section (or `[[dongle]]` table) of the server
//! configuration becomes one dongle with that serial number, model, user code and data
//! variables. It is always present and is labelled "simulated" in logs and status.

use super::{Capabilities, Detected, DongleBackend, DongleError, DongleKind, Presence};
use crate::config::DongleSection;

/// The model reported when the configuration names none.
pub const DEFAULT_MODEL: &str = "Matrix USB-Key (simulated)";

/// Simulated dongles from configuration.
#[derive(Debug, Clone)]
pub struct SimulatedBackend {
    dongles: Vec<Detected>,
}

impl SimulatedBackend {
    /// One simulated dongle per section, in section order. A section without `Sernr` gets
    /// serial `1000000000 + N`.
    pub fn new(sections: &[DongleSection]) -> Self {
        let dongles = sections
            .iter()
            .map(|s| {
                let serial = s
                    .sernr
                    .unwrap_or_else(|| 1_000_000_000_i32.saturating_add_unsigned(s.number));
                Detected {
                    key: format!("sim:{serial}"),
                    kind: DongleKind::Simulated,
                    model: s.model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
                    serial: Some(serial),
                    data: s.data.clone(),
                    user_code: s.user_code,
                    presence: Presence::Present,
                }
            })
            .collect();
        Self { dongles }
    }
}

impl DongleBackend for SimulatedBackend {
    fn kind(&self) -> DongleKind {
        DongleKind::Simulated
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            enumerate: true,
            hotplug: false,
            serial: true,
            read_data: true,
            user_code: true,
            app_slots_from_key: false,
        }
    }

    fn scan(&self) -> Result<Vec<Detected>, DongleError> {
        Ok(self.dongles.clone())
    }
}

/// No dongle at all (`DongleBackend=none`): every dongle call answers -102.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDongles;

impl DongleBackend for NoDongles {
    fn kind(&self) -> DongleKind {
        DongleKind::Simulated
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            enumerate: true,
            hotplug: false,
            serial: false,
            read_data: false,
            user_code: false,
            app_slots_from_key: false,
        }
    }

    fn scan(&self) -> Result<Vec<Detected>, DongleError> {
        Ok(Vec::new())
    }
}

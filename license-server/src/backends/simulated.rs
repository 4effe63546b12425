//! The simulated dongle: every `[dongleN]` section (or `[[dongle]]` table) of the server
//! configuration becomes one dongle with that serial number, model, user code and data
//! variables. It is always present and is labelled "simulated" in logs and status.

use license_core::dongle::{
    Capabilities, Detected, DongleBackend, DongleError, DongleKind, DongleSection,
};

/// Simulated dongles from configuration.
#[derive(Debug, Clone)]
pub struct SimulatedBackend {
    dongles: Vec<Detected>,
}

impl SimulatedBackend {
    /// One simulated dongle per section, in section order. A section without `Sernr` gets
    /// serial `1000000000 + N`.
    pub fn new(sections: &[DongleSection]) -> Self {
        let dongles = sections.iter().map(Detected::simulated).collect();
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

//! The `none` backend (`DongleBackend=none`): no dongle source at all, for a server that must
//! run on a machine with no key and no simulation (every dongle call answers -102).

use license_core::dongle::{Capabilities, Detected, DongleBackend, DongleError, DongleKind};

/// No dongle at all (`DongleBackend=none`): every dongle call answers -102.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDongles;

impl DongleBackend for NoDongles {
    fn kind(&self) -> DongleKind {
        DongleKind::None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_itself_as_none_finds_nothing_and_is_not_polled() {
        let b = NoDongles;
        assert_eq!(b.kind(), DongleKind::None);
        assert_eq!(b.kind().to_string(), "none");
        assert!(!b.capabilities().hotplug);
        assert_eq!(b.scan(), Ok(Vec::new()));
    }
}

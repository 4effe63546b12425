//! The USB backend (rusb): enumerates TDi Matrix keys (vendor 0x0E50, products 0x0001
//! "Matrix USB-Key" and 0x0002 "Matrixlock Dongle (HID)") and reports presence and access
//! problems. Arrival and removal are found by polling ([`UsbBackend::scan`] is called
//! periodically), which works on every platform, including Windows where libusb has no hotplug.
//!
//! It never uses rusb's global-context functions (they panic where USB is unavailable, as in
//! containers without `/dev/bus/usb`); it creates a `rusb::Context` per scan and reports
//! failure as [`DongleError::UsbUnavailable`]. It cannot read the serial number, data or
//! AppSlots: the key's protocol is not public, so seat limits come from configuration.
//!
//! A build without the `usb` Cargo feature (a relay- or proxy-only build, which must not compile
//! libusb) keeps the backend, and every scan reports USB as unavailable in this build.

use std::time::Duration;

use license_core::dongle::{Capabilities, Detected, DongleBackend, DongleError, DongleKind};

/// TDi's USB vendor id.
pub const MATRIX_VENDOR_ID: u16 = 0x0E50;
/// Matrix product ids and their names (from the usb.ids database).
pub const MATRIX_PRODUCTS: [(u16, &str); 2] = [
    (0x0001, "Matrix USB-Key"),
    (0x0002, "Matrixlock Dongle (HID)"),
];

/// How often the server polls for arrival and removal.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Matrix keys on USB.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsbBackend;

impl UsbBackend {
    /// The backend (no USB access happens until [`DongleBackend::scan`]).
    pub fn new() -> Self {
        Self
    }
}

impl DongleBackend for UsbBackend {
    fn kind(&self) -> DongleKind {
        DongleKind::Usb
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            enumerate: true,
            hotplug: true,
            serial: false,
            read_data: false,
            user_code: false,
            app_slots_from_key: false,
        }
    }

    fn scan(&self) -> Result<Vec<Detected>, DongleError> {
        scan_usb()
    }
}

/// Lists the Matrix keys on the USB buses.
#[cfg(feature = "usb")]
fn scan_usb() -> Result<Vec<Detected>, DongleError> {
    use license_core::dongle::Presence;
    use rusb::UsbContext as _;
    let context = rusb::Context::new().map_err(|e| DongleError::UsbUnavailable(e.to_string()))?;
    let devices = context
        .devices()
        .map_err(|e| DongleError::Enumerate(e.to_string()))?;
    let mut found = Vec::new();
    for device in devices.iter() {
        let Ok(descriptor) = device.device_descriptor() else {
            continue;
        };
        if descriptor.vendor_id() != MATRIX_VENDOR_ID {
            continue;
        }
        let Some((_, model)) = MATRIX_PRODUCTS
            .iter()
            .find(|(pid, _)| *pid == descriptor.product_id())
        else {
            continue;
        };
        let ports = device
            .port_numbers()
            .map(|p| p.iter().map(u8::to_string).collect::<Vec<_>>().join("."))
            .unwrap_or_else(|_| format!("addr{}", device.address()));
        // Opening proves access; the handle is dropped at once (nothing else may be done
        // with the key without its private protocol).
        let presence = match device.open() {
            Ok(_handle) => Presence::Present,
            Err(rusb::Error::Access) => Presence::Inaccessible(
                "permission denied: add a udev rule for 0e50:0001/0002".to_owned(),
            ),
            Err(rusb::Error::Busy) => {
                Presence::Inaccessible("busy: another driver or process holds it".to_owned())
            }
            Err(e) => Presence::Inaccessible(e.to_string()),
        };
        found.push(Detected {
            key: format!("usb:{}-{}", device.bus_number(), ports),
            kind: DongleKind::Usb,
            model: (*model).to_owned(),
            serial: None,
            data: Vec::new(),
            user_code: None,
            reads_data: false,
            presence,
        });
    }
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// Without the `usb` feature there is no libusb to ask.
#[cfg(not(feature = "usb"))]
fn scan_usb() -> Result<Vec<Detected>, DongleError> {
    Err(DongleError::UsbUnavailable(
        "this build has no USB support (built without the `usb` feature)".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where USB is unavailable (this CI: no usbfs), scanning reports it and does not panic;
    /// where it is available, it lists only Matrix keys.
    #[test]
    fn scan_never_panics() {
        match UsbBackend::new().scan() {
            Ok(found) => assert!(found.iter().all(|d| d.kind == DongleKind::Usb)),
            Err(e) => assert!(matches!(
                e,
                DongleError::UsbUnavailable(_) | DongleError::Enumerate(_)
            )),
        }
        assert!(!UsbBackend::new().capabilities().app_slots_from_key);
    }
}

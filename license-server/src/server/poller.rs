//! Polls a dynamic dongle backend (USB) for arrival, removal and access problems, and feeds
//! the engine's dongle table. Each scan runs on the blocking pool under a deadline, because
//! libusb calls can hang on broken devices.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Shared, persist};
use crate::backends::usb::POLL_INTERVAL;
use license_core::clock::Instant;
use license_core::dongle::describe;

/// A scan taking longer than this is abandoned (and reported).
const SCAN_DEADLINE: Duration = Duration::from_secs(10);

pub(super) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut last_error: Option<String> = None;
    loop {
        let backend = shared.backend.clone();
        let scan = tokio::task::spawn_blocking(move || backend.scan());
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            r = tokio::time::timeout(SCAN_DEADLINE, scan) => r,
        };
        let error = match result {
            Ok(Ok(Ok(found))) => {
                let descriptors = describe(&found, &shared.sections);
                let mut engine = shared.engine();
                for change in engine.update_dongles(descriptors) {
                    tracing::warn!("dongle: {change:?}");
                }
                // Persisted logins wait for the first scan that knows the dongles.
                let pending = shared
                    .pending_logins
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                if let (Some(logins), Some(store)) = (pending, &shared.store) {
                    let now_ms = shared.wall.unix_millis();
                    persist::restore_logins(store, &mut engine, logins, now_ms, Instant::now());
                }
                None
            }
            Ok(Ok(Err(e))) => {
                // Nothing is present while USB is unusable.
                for change in shared.engine().update_dongles(Vec::new()) {
                    tracing::warn!("dongle: {change:?}");
                }
                Some(e.to_string())
            }
            Ok(Err(join)) => Some(format!("dongle scan failed: {join}")),
            Err(_) => Some(format!("dongle scan took longer than {SCAN_DEADLINE:?}")),
        };
        if error != last_error {
            match &error {
                Some(e) => tracing::error!("dongle backend: {e}"),
                None if last_error.is_some() => tracing::info!("dongle backend: usable again"),
                None => {}
            }
            last_error = error;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

//! The messages a component sends its service manager ([`Notice`]: ready, stopping,
//! watchdog pings), where they go ([`Notifier`]: systemd's notification socket through
//! `sd-notify`, the Windows service's hang watchdog, or a test's recorder), and sending them
//! with one warning per failure streak.

use std::sync::Arc;

/// One message to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `READY=1` with a one-line `STATUS=`.
    Ready(String),
    /// `STOPPING=1` with a one-line `STATUS=`.
    Stopping(String),
    /// `WATCHDOG=1`.
    Watchdog,
}

impl Notice {
    /// The datagram as systemd receives it (`sd_notify(3)`).
    pub fn text(&self) -> String {
        match self {
            Self::Ready(status) => format!("READY=1\nSTATUS={}\n", one_line(status)),
            Self::Stopping(status) => format!("STOPPING=1\nSTATUS={}\n", one_line(status)),
            Self::Watchdog => "WATCHDOG=1\n".to_owned(),
        }
    }
}

/// `STATUS=` ends at a newline.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

/// Where [`Notice`]s go: systemd's notification socket, or a test's recorder.
pub trait Notifier: Send + Sync + 'static {
    /// Sends one notice.
    ///
    /// # Errors
    /// The socket cannot be reached.
    fn notify(&self, notice: &Notice) -> std::io::Result<()>;
}

/// systemd's `NOTIFY_SOCKET`, through `sd-notify`.
#[cfg(unix)]
pub(super) struct Systemd;

#[cfg(unix)]
impl Notifier for Systemd {
    fn notify(&self, notice: &Notice) -> std::io::Result<()> {
        use sd_notify::NotifyState;
        match notice {
            Notice::Ready(status) => {
                let status = one_line(status);
                sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)])
            }
            Notice::Stopping(status) => {
                let status = one_line(status);
                sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status(&status)])
            }
            Notice::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
        }
    }
}

/// Sends notices, warning once per failure streak.
pub(super) struct Sender {
    notifier: Arc<dyn Notifier>,
    failing: std::sync::atomic::AtomicBool,
}

impl Sender {
    pub(super) fn new(notifier: Arc<dyn Notifier>) -> Self {
        Self {
            notifier,
            failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(super) fn send(&self, notice: &Notice) {
        use std::sync::atomic::Ordering;
        match self.notifier.notify(notice) {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!("cannot notify the service manager: {e}");
                }
            }
        }
    }
}

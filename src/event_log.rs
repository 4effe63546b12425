//! The Windows event log (Application log, source `dongle-relay`): a service's start, stop and
//! errors go there besides its log files, where Windows administrators and their monitoring
//! look. Which events and how they read is decided here on every platform ([`wanted`],
//! [`text`]); the writing is the `eventlog` crate's (Windows only), whose message resource is
//! linked into the executable so Event Viewer shows the text, and which registers and removes
//! the source (`service install` / `uninstall`).

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};

/// The event source, shared by every dongle-relay service.
pub const SOURCE: &str = "dongle-relay";

/// The target of the service's own start and stop lines, which go to the event log although
/// they are not errors (not a module's path: `dongle_relay::service` is one).
pub const SERVICE_EVENTS: &str = "dongle_relay::service_events";

/// Whether an event goes to the event log: every error, and the service's start and stop.
pub fn wanted(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR || (meta.target() == SERVICE_EVENTS && meta.is_event())
}

/// An event as one line: its message, then its other fields as `name=value`.
pub fn text(event: &tracing::Event<'_>) -> String {
    let mut visitor = Text::default();
    event.record(&mut visitor);
    visitor.message + &visitor.fields
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// The layer writing [`wanted`] events to the event log, through the `eventlog` crate; it sees
/// only what the other layers' filters enabled (`--log`), errors included at any setting but
/// `off`.
#[cfg(windows)]
pub struct EventLogLayer(eventlog::EventLog);

#[cfg(windows)]
impl EventLogLayer {
    /// Opens the source.
    ///
    /// # Errors
    /// The event log refused.
    pub fn open() -> Result<Self, eventlog::Error> {
        eventlog::EventLog::new(SOURCE, log::Level::Info).map(Self)
    }

    /// Writes one entry.
    fn write(&self, level: log::Level, text: &str) {
        use log::Log as _;
        self.0.log(
            &log::Record::builder()
                .level(level)
                .target(SOURCE)
                .args(format_args!("{text}"))
                .build(),
        );
    }
}

#[cfg(windows)]
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EventLogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        // Checked here, so the layer never changes what the other layers see.
        if !wanted(event.metadata()) {
            return;
        }
        let level = match *event.metadata().level() {
            Level::ERROR => log::Level::Error,
            Level::WARN => log::Level::Warn,
            _ => log::Level::Info,
        };
        self.write(level, &text(event));
    }
}

/// Writes `text` as an error, for a failure before the log layers are installed; if the
/// event log refuses, there is nowhere left to say it.
#[cfg(windows)]
pub fn error_now(text: &str) {
    if let Ok(layer) = EventLogLayer::open() {
        layer.write(log::Level::Error, text);
    }
}

/// Registers the source (its messages in this executable); `service install` calls it.
///
/// # Errors
/// The registry could not be written.
#[cfg(windows)]
pub fn register() -> anyhow::Result<()> {
    eventlog::register(SOURCE)
        .map_err(|e| anyhow::anyhow!("cannot register the event log source {SOURCE}: {e}"))
}

/// Removes the source; `service uninstall` calls it.
///
/// # Errors
/// The registry could not be written.
#[cfg(windows)]
pub fn deregister() -> anyhow::Result<()> {
    eventlog::deregister(SOURCE)
        .map_err(|e| anyhow::anyhow!("cannot remove the event log source {SOURCE}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Records what would reach the event log.
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if wanted(event.metadata()) {
                self.0.lock().expect("lock").push(text(event));
            }
        }
    }

    #[test]
    fn errors_and_the_service_start_and_stop_go_to_the_event_log_nothing_else() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Recorder(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: SERVICE_EVENTS, service = "dr-server", "service started");
            tracing::info!("a client logged in");
            tracing::debug!(target: "dongle_relay::service", "a module's own line");
            tracing::warn!("a slow client");
            tracing::error!(code = -31, "no seat left");
            tracing::info!(target: SERVICE_EVENTS, "service stopped");
        });
        assert_eq!(
            *seen.lock().expect("lock"),
            [
                "service started service=dr-server",
                "no seat left code=-31",
                "service stopped"
            ]
        );
    }
}

//! A scripted license session: a list of steps (init, login, refresh, status, logout,
//! release, ...) run in order on one [`RemoteApi`], each reported with its return value or
//! error code and meaning. The CLI's `client` subcommand and the end-to-end demo use it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::RemoteApi;
use license_core::engine::SlotRef;
use license_core::error::ErrorCode;

/// One step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `rInit_MatrixAPI`.
    Init,
    /// `rLogIn_MatrixNet` (sent; counted when accepted).
    Login,
    /// A login that is sent but not counted (keeps the seat).
    Refresh,
    /// `rLogOut_MatrixNet` (counted).
    Logout,
    /// Dongle count, serial number, and the AppSlot's logins with client names.
    Status,
    /// `rRelease_MatrixAPI` (counted).
    Release,
    /// `rReset_MatrixAPI`.
    Reset,
    /// Waits this long.
    Sleep(Duration),
}

impl FromStr for Step {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "init" => Self::Init,
            "login" => Self::Login,
            "refresh" => Self::Refresh,
            "logout" => Self::Logout,
            "status" => Self::Status,
            "release" => Self::Release,
            "reset" => Self::Reset,
            other => match other.strip_prefix("sleep=") {
                Some(secs) => Self::Sleep(Duration::from_secs_f64(
                    secs.parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
                        .ok_or_else(|| format!("bad sleep duration {secs:?} (seconds)"))?,
                )),
                None => {
                    return Err(format!(
                        "unknown step {s:?}: use init, login, refresh, logout, status, release, \
                         reset or sleep=SECONDS"
                    ));
                }
            },
        })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Init => f.write_str("init"),
            Self::Login => f.write_str("login"),
            Self::Refresh => f.write_str("refresh"),
            Self::Logout => f.write_str("logout"),
            Self::Status => f.write_str("status"),
            Self::Release => f.write_str("release"),
            Self::Reset => f.write_str("reset"),
            Self::Sleep(d) => write!(f, "sleep={}", d.as_secs_f64()),
        }
    }
}

/// What a step returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// Its return value or error.
    pub result: Result<i32, ErrorCode>,
    /// A human-readable account (seats left, status details).
    pub detail: String,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.result {
            Ok(v) => write!(f, "{:<8} -> {v:>5} ok", self.step.to_string())?,
            Err(e) => write!(
                f,
                "{:<8} -> {:>5} {}",
                self.step.to_string(),
                e.code(),
                e.meaning()
            )?,
        }
        if !self.detail.is_empty() {
            write!(f, "  ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Runs `steps` against AppSlot `at`, waiting `interval` between steps, calling `report` after
/// each, and returns all reports.
pub async fn walkthrough(
    api: &RemoteApi,
    at: SlotRef,
    steps: &[Step],
    interval: Duration,
    mut report: impl FnMut(&StepReport),
) -> Vec<StepReport> {
    let mut out = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        if i > 0 && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        let r = run_step(api, at, *step).await;
        report(&r);
        out.push(r);
    }
    out
}

async fn run_step(api: &RemoteApi, at: SlotRef, step: Step) -> StepReport {
    let seats = |r: &Result<i32, ErrorCode>| match r {
        Ok(left) => format!("{left} seat(s) left in AppSlot {}", at.slot),
        Err(_) => String::new(),
    };
    let (result, detail) = match step {
        Step::Init => {
            let r = api.init().await;
            let d = match (&r, api.session_id().await) {
                (Ok(n), Some(id)) => format!("init count {n}, session {id}"),
                _ => String::new(),
            };
            (r, d)
        }
        Step::Login => {
            let r = api.login(at).await;
            let d = seats(&r);
            (r, d)
        }
        Step::Refresh => {
            let r = api.refresh(at).await;
            let d = seats(&r);
            (r, d)
        }
        Step::Logout => {
            let r = api.logout(at).await;
            let d = seats(&r);
            (r, d)
        }
        Step::Release => {
            let r = api.release().await;
            let d = r.map(|n| format!("init count {n}")).unwrap_or_default();
            (r, d)
        }
        Step::Reset => {
            api.reset().await;
            (Ok(0), "counters reset".to_owned())
        }
        Step::Sleep(d) => {
            tokio::time::sleep(d).await;
            (Ok(0), format!("slept {}s", d.as_secs_f64()))
        }
        Step::Status => status(api, at).await,
    };
    StepReport {
        step,
        result,
        detail,
    }
}

async fn status(api: &RemoteApi, at: SlotRef) -> (Result<i32, ErrorCode>, String) {
    let count = match api.dongle_count().await {
        Ok(n) => n,
        Err(e) => return (Err(e), String::new()),
    };
    let serial = match api.read_ser_nr(at.user_code, at.dng_nr).await {
        Ok(s) => s.to_string(),
        Err(e) => format!("{} ({})", e.code(), e.meaning()),
    };
    match api.login_count_ex(at).await {
        Ok((taken, names)) => (
            Ok(taken),
            format!(
                "{count} dongle(s); dongle {} serial {serial}; AppSlot {}: {taken} taken [{}]",
                at.dng_nr.max(1),
                at.slot,
                names.join(", ")
            ),
        ),
        Err(e) => (Err(e), format!("{count} dongle(s); serial {serial}")),
    }
}

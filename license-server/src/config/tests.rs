//! Configuration tests: the manual's `mxnet2.ini`, the naming rules of section 6.7, the TOML
//! equivalent, and errors that name their key.

use std::time::Duration;

use super::*;
use crate::backends::simulated::SimulatedBackend;
use license_core::dongle::{Detected, DongleBackend as _, DongleKind, Presence, describe};

/// The manual's section 3.1 file, plus the naming example of section 6.7.
const MANUAL: &str = r"
[Option]
#Language setting
Lang=eng
# the port mxnet1 waits on
Port=12300
# LogIn_MatrixNet Timeout in second
LoginTimeOut=300
#Init_MatrixAPI Timeout in second
SessionTimeOut=3000
#License type
# AppSlot license is either per IP or per session
SessionBaseLicense=1
#LogFile folder
LogFileFolder=
LogLevel=0

[dongle1]
Sernr=1234567890
Name=MyDongle
5=Foo Application #AppSlot5 is named Foo Application
6=Bar Application
[dongle2]
Sernr=1234567891
Name=MyDongle1
10 = App10
11= App11
";

#[test]
fn s3_1_reads_the_manuals_file() {
    let c = ServerConfig::from_ini_str(MANUAL).expect("parse");
    assert_eq!(c.port, 12300);
    assert_eq!(c.login_timeout, Duration::from_secs(300));
    assert_eq!(c.session_timeout, Duration::from_secs(3000));
    assert_eq!(c.license_mode, LicenseMode::Session);
    assert_eq!(c.log_file_folder, None);
    assert_eq!(c.log_level, LogLevel::Errors);
    assert!(c.check_cmd_issue_time);
    assert_eq!(c.cmd_issue_time_interval, Duration::from_secs(60));
    assert_eq!(c.dongles.len(), 2);
    assert_eq!(c.dongles[0].name.as_deref(), Some("MyDongle"));
    assert_eq!(c.dongles[0].slot_names[&5], "Foo Application");
    assert_eq!(c.dongles[1].slot_names[&10], "App10");
    assert_eq!(c.dongles[1].sernr, Some(1_234_567_891));
}

#[test]
fn keys_and_sections_are_case_insensitive_and_paths_keep_backslashes() {
    let c = ServerConfig::from_ini_str(
        "[option]\nlogfilefolder=c:\\folder\\logs\nLOGLEVEL=2\nCheckCmdIssueTime=0\n\
         CmdIssueTimeInterval=30\nsessionbaselicense=0\n[DONGLE1]\nNAME=X\nlimit5=4\n",
    )
    .expect("parse");
    assert_eq!(c.log_file_folder, Some(PathBuf::from("c:\\folder\\logs")));
    assert_eq!(c.log_level, LogLevel::Debug);
    assert!(!c.check_cmd_issue_time);
    assert_eq!(c.cmd_issue_time_interval, Duration::from_secs(30));
    assert_eq!(c.license_mode, LicenseMode::Ip);
    assert_eq!(c.dongles[0].limits[&5], 4);
}

#[test]
fn s6_7_stops_at_the_first_missing_dongle_section() {
    let c = ServerConfig::from_ini_str("[dongle1]\nName=A\n[dongle2]\nName=B\n[dongle4]\nName=D\n")
        .expect("parse");
    let names: Vec<_> = c.dongles.iter().filter_map(|d| d.name.clone()).collect();
    assert_eq!(names, ["A", "B"]);
    assert!(
        c.warnings[0].contains("[dongle4] ignored"),
        "{:?}",
        c.warnings
    );
}

fn usb(key: &str, serial: Option<i32>) -> Detected {
    Detected {
        key: key.into(),
        kind: DongleKind::Usb,
        model: "Matrix USB-Key".into(),
        serial,
        data: Vec::new(),
        user_code: None,
        reads_data: false,
        presence: Presence::Present,
    }
}

#[test]
fn s6_7_naming_by_serial_then_position_then_default() {
    let c = ServerConfig::from_ini_str(MANUAL).expect("parse");
    // Dongle 1 has the serial of [dongle2]; dongle 2 has no serial, so [dongle2] by position;
    // dongle 3 has no section at all.
    let found = [
        usb("usb:1-1", Some(1_234_567_891)),
        usb("usb:1-2", None),
        usb("usb:1-3", None),
    ];
    let d = describe(&found, &c.dongles);
    assert_eq!(d[0].name, "MyDongle1");
    assert_eq!(d[1].name, "MyDongle1");
    assert_eq!(d[2].name, "Dongle3");
    assert_eq!(d[0].slots[0].name, "App10");
    assert!(d[2].slots.is_empty());
    // A USB key's serial comes from the matching section when it cannot be read.
    assert_eq!(d[1].serial, Some(1_234_567_891));
}

#[test]
fn unnamed_slots_are_called_appslot_n() {
    let c = ServerConfig::from_ini_str("[dongle1]\nLimit3=2\n").expect("parse");
    let found = SimulatedBackend::new(&c.dongles).scan().expect("scan");
    let d = describe(&found, &c.dongles);
    assert_eq!(d[0].name, "Dongle1");
    assert_eq!(d[0].slots[0].name, "AppSlot3");
    assert_eq!(d[0].slots[0].limit, 2);
    assert_eq!(d[0].kind, DongleKind::Simulated);
}

#[test]
fn no_configuration_gives_a_runnable_default() {
    let c = ServerConfig::from_ini_str("").expect("parse");
    assert_eq!(c.port, DEFAULT_PORT);
    assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(c.dongles, vec![default_dongle()]);
    assert_eq!(ServerConfig::default().dongles[0].limits[&1], 3);
}

#[test]
fn unknown_keys_and_sections_are_named_and_ignored_so_a_vendor_file_still_loads() {
    let c = ServerConfig::from_ini_str(
        "[Option]\nPort=12301\nPrt=1\nUiColour=blue\n[dongle1]\nName=Main\nColour=red\n\
         [Mystery]\nA=1\n[dongleX]\nB=2\n",
    )
    .expect("a file with unknown keys loads");
    assert_eq!(c.port, 12301);
    assert_eq!(c.dongles[0].name.as_deref(), Some("Main"));
    for expected in [
        "[Option] Prt: unknown key, ignored",
        "[Option] UiColour: unknown key, ignored",
        "[dongle1] Colour: unknown key, ignored",
        "[Mystery]: unknown section, ignored",
        "[dongleX]: unknown section, ignored",
    ] {
        assert!(
            c.warnings.iter().any(|w| w == expected),
            "{expected:?} not in {:?}",
            c.warnings
        );
    }
}

#[test]
fn bad_values_of_known_keys_name_the_key() {
    let err = |text: &str| {
        ServerConfig::from_ini_str(text)
            .expect_err("error")
            .to_string()
    };
    assert_eq!(
        err("[Option]\nLoginTimeOut=five\n"),
        "[Option] LoginTimeOut: bad value \"five\": a whole number of seconds"
    );
    assert!(err("[Option]\nLogLevel=3\n").contains("LogLevel"));
    assert!(err("[Option]\nSessionBaseLicense=2\n").contains("SessionBaseLicense"));
    assert!(err("[Option]\nLoginTimeOut=0\n").contains("LoginTimeOut"));
    assert!(err("[dongle1]\nSernr=-5\n").contains("Sernr"));
    assert!(err("[dongle1]\nLimitX=1\n").contains("LimitX"));
    assert!(err("[Option]\nDongleBackend=floppy\n").contains("DongleBackend"));
}

const TOML: &str = r#"
port = 12301
bind = "0.0.0.0"
login_timeout = 60
session_timeout = 600
session_base_license = false
cmd_issue_time_interval = 30
check_cmd_issue_time = false
log_file_folder = "logs"
log_level = 1
key_file = "server.key"
dongle_backend = "usb"

[[dongle]]
sernr = 1234567890
name = "MyDongle"
user_code = 42
data = [1, 2]
slots = { 5 = { name = "Foo Application", limit = 3 }, 6 = { limit = 1 } }

[[dongle]]
name = "Second"
"#;

#[test]
fn toml_is_equivalent() {
    let c = ServerConfig::from_toml_str(TOML).expect("parse");
    assert_eq!(c.port, 12301);
    assert_eq!(c.bind.to_string(), "0.0.0.0");
    assert_eq!(c.login_timeout, Duration::from_secs(60));
    assert_eq!(c.license_mode, LicenseMode::Ip);
    assert!(!c.check_cmd_issue_time);
    assert_eq!(c.log_level, LogLevel::Information);
    assert_eq!(c.backend, BackendChoice::Usb);
    assert_eq!(c.dongles.len(), 2);
    assert_eq!(c.dongles[0].slot_names[&5], "Foo Application");
    assert_eq!(c.dongles[0].limits[&6], 1);
    assert_eq!(c.dongles[0].user_code, Some(42));
    assert_eq!(c.dongles[1].number, 2);
    let ini = ServerConfig::from_ini_str(
        "[Option]\nPort=12301\nBind=0.0.0.0\nLoginTimeOut=60\nSessionTimeOut=600\n\
         SessionBaseLicense=0\nCmdIssueTimeInterval=30\nCheckCmdIssueTime=0\nLogFileFolder=logs\n\
         LogLevel=1\nKeyFile=server.key\nDongleBackend=usb\n[dongle1]\nSernr=1234567890\n\
         Name=MyDongle\nUserCode=42\nData=1,2\n5=Foo Application\nLimit5=3\nLimit6=1\n\
         [dongle2]\nName=Second\n",
    )
    .expect("ini");
    assert_eq!(ini, c, "the INI and TOML forms give the same configuration");
}

#[test]
fn toml_errors_name_the_key() {
    let err = ServerConfig::from_toml_str("prot = 1\n")
        .expect_err("error")
        .to_string();
    assert!(err.contains("prot"), "{err}");
    let err = ServerConfig::from_toml_str("[[dongle]]\nslots = { x = { limit = 1 } }\n")
        .expect_err("error")
        .to_string();
    assert!(err.contains("slots.x"), "{err}");
    let err = ServerConfig::from_toml_str("log_level = 7\n")
        .expect_err("error")
        .to_string();
    assert!(err.contains("log_level"), "{err}");
}

#[test]
fn load_picks_the_format_and_resolves_relative_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = dir.path().join("server.toml");
    std::fs::write(&toml, "key_file = \"k.key\"\nlog_file_folder = \"logs\"\n").expect("write");
    let c = ServerConfig::load(&toml).expect("load");
    assert_eq!(c.key_file, Some(dir.path().join("k.key")));
    assert_eq!(c.log_file_folder, Some(dir.path().join("logs")));
    let ini = dir.path().join("mxnet2.ini");
    std::fs::write(&ini, "[Option]\nPort=9\n").expect("write");
    assert_eq!(ServerConfig::load(&ini).expect("load").port, 9);
    assert!(matches!(
        ServerConfig::load(&dir.path().join("missing.ini")),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn trusted_proxies_default_to_loopback_and_read_from_both_formats() {
    let d = ServerConfig::from_ini_str("").expect("parse");
    assert_eq!(d.trusted_proxies, TrustedProxies::loopback());
    let ini = ServerConfig::from_ini_str("[Option]\nTrustedProxy=10.0.0.5, 192.168.0.0/16 # lan\n")
        .expect("ini");
    assert!(
        ini.trusted_proxies
            .contains("192.168.7.7".parse().expect("ip"))
    );
    assert!(
        !ini.trusted_proxies
            .contains("127.0.0.1".parse().expect("ip"))
    );
    let toml =
        ServerConfig::from_toml_str("trusted_proxies = [\"10.0.0.5\", \"192.168.0.0/16\"]\n")
            .expect("toml");
    assert_eq!(
        ini, toml,
        "the INI and TOML forms give the same configuration"
    );
    let none = ServerConfig::from_ini_str("[Option]\nTrustedProxy=none\n").expect("none");
    assert!(none.trusted_proxies.is_empty());
    let none = ServerConfig::from_toml_str("trusted_proxies = []\n").expect("none");
    assert!(none.trusted_proxies.is_empty());
    let err = ServerConfig::from_ini_str("[Option]\nTrustedProxy=relay.local\n")
        .expect_err("bad")
        .to_string();
    assert!(err.contains("TrustedProxy"), "{err}");
    let err = ServerConfig::from_toml_str("trusted_proxies = [\"x\"]\n")
        .expect_err("bad")
        .to_string();
    assert!(err.contains("trusted_proxies"), "{err}");
}

#[test]
fn operations_keys_from_both_formats_relative_to_the_file() {
    let d = ServerConfig::from_ini_str("").expect("parse");
    assert_eq!(
        (
            &d.state_db,
            d.admin_bind,
            &d.admin_token_file,
            &d.relay_listener
        ),
        (&None, None, &None, &None),
        "off unless configured"
    );
    let ini = ServerConfig::from_ini_str(
        "[Option]\nStateDb=state/mxnet2-state.db\nAdminBind=127.0.0.1:12380\n\
         AdminTokenFile=admin.token\nRelayListener=listener.toml\n",
    )
    .expect("ini");
    let toml = ServerConfig::from_toml_str(
        "state_db = \"state/mxnet2-state.db\"\nadmin_bind = \"127.0.0.1:12380\"\n\
         admin_token_file = \"admin.token\"\nrelay_listener = \"listener.toml\"\n",
    )
    .expect("toml");
    assert_eq!(ini, toml);
    assert_eq!(
        ini.admin_bind,
        Some("127.0.0.1:12380".parse().expect("addr"))
    );
    let bare = ServerConfig::from_ini_str("[Option]\nAdminBind=::1\n").expect("bare");
    assert_eq!(bare.admin_bind, Some("[::1]:12380".parse().expect("addr")));
    let err = ServerConfig::from_ini_str("[Option]\nAdminBind=localhost:1\n")
        .expect_err("bad")
        .to_string();
    assert!(err.contains("AdminBind"), "{err}");
    let err = ServerConfig::from_toml_str("admin_bind = \"x\"\n")
        .expect_err("bad")
        .to_string();
    assert!(err.contains("admin_bind"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mxnet2.ini");
    std::fs::write(
        &file,
        "[Option]\nStateDb=mxnet2-state.db\nAdminTokenFile=admin.token\nRelayListener=l.toml\n",
    )
    .expect("write");
    let c = ServerConfig::load(&file).expect("load");
    assert_eq!(c.state_db, Some(dir.path().join("mxnet2-state.db")));
    assert_eq!(c.admin_token_file, Some(dir.path().join("admin.token")));
    assert_eq!(c.relay_listener, Some(dir.path().join("l.toml")));
}

#[test]
fn history_retention_is_read_from_ini_and_toml() {
    let d = ServerConfig::default();
    assert_eq!((d.history_days, d.history_event_days), (400, 90));
    let ini = ServerConfig::from_ini_str("[Option]\nHistoryDays=730\nHistoryEventDays=14\n")
        .expect("ini");
    assert_eq!(
        ini.retention(),
        crate::store::Retention {
            history_days: 730,
            event_days: 14
        }
    );
    let toml = ServerConfig::from_toml_str("history_days = 30\n").expect("toml");
    assert_eq!((toml.history_days, toml.history_event_days), (30, 90));
    let err = ServerConfig::from_ini_str("[Option]\nHistoryDays=0\n").expect_err("zero");
    assert!(err.to_string().contains("HistoryDays"), "{err}");
    let err = ServerConfig::from_toml_str("history_event_days = 0\n").expect_err("zero");
    assert!(err.to_string().contains("history_event_days"), "{err}");
}

#[test]
fn toml_values_are_checked_for_their_kind_before_their_option_parses_them() {
    let err = ServerConfig::from_toml_str("port = \"12300\"\n")
        .expect_err("a string")
        .to_string();
    assert!(
        err.contains("port") && err.contains("a whole number"),
        "{err}"
    );
    let err = ServerConfig::from_toml_str("session_base_license = 1\n")
        .expect_err("not a boolean")
        .to_string();
    assert!(err.contains("true or false"), "{err}");
    let err = ServerConfig::from_toml_str("port = 70000\n")
        .expect_err("out of range")
        .to_string();
    assert!(err.contains("a port number"), "{err}");
    let c = ServerConfig::from_toml_str("session_base_license = false\nadmin_bind = \" \"\n")
        .expect("toml");
    assert_eq!(c.license_mode, LicenseMode::Ip);
    assert_eq!(c.admin_bind, None);
}

use super::*;

/// Loads with the Linux layout, whatever the platform the test runs on.
fn parse(args: &[&str]) -> anyhow::Result<Loaded> {
    let unix = Places {
        windows: false,
        exe_dir: None,
        program_data: None,
    };
    load_in(crate::commands::parse_args(args)?, &unix)
}

#[test]
fn windows_reads_the_ini_beside_the_exe_and_keeps_key_and_logs_in_program_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe_dir = dir.path().join("Program Files").join("dongle-relay");
    std::fs::create_dir_all(&exe_dir).expect("exe dir");
    std::fs::write(exe_dir.join("mxnet2.ini"), "[Option]\nPort=12399\n").expect("ini");
    let program_data = dir.path().join("ProgramData");
    let places = Places {
        windows: true,
        exe_dir: Some(exe_dir.clone()),
        program_data: Some(program_data.clone()),
    };
    let l = load_in(crate::commands::parse_args(&[]).expect("args"), &places).expect("load");
    assert_eq!(
        l.config.port, 12399,
        "the ini beside the executable is read"
    );
    let data = program_data.join("dongle-relay");
    assert_eq!(l.config.key_file, Some(data.join(DEFAULT_KEY_FILE)));
    assert_eq!(
        file_log(&l).map(|log| log.dir),
        Some(data.join("logs")),
        "daily logs default to the data folder"
    );
    assert!(data.join("logs").is_dir(), "the folders are created");
    // What the configuration or the command line says wins.
    std::fs::write(
        exe_dir.join("mxnet2.ini"),
        "[Option]\nKeyFile=own.key\nLogFileFolder=own-logs\n",
    )
    .expect("ini");
    let l = load_in(crate::commands::parse_args(&[]).expect("args"), &places).expect("load");
    assert_eq!(l.config.key_file, Some(exe_dir.join("own.key")));
    assert_eq!(
        file_log(&l).map(|log| log.dir),
        Some(exe_dir.join("own-logs"))
    );
    // A data folder that cannot be created is a clear error naming it.
    let blocked = Places {
        program_data: Some(exe_dir.join("mxnet2.ini")),
        ..places
    };
    std::fs::write(exe_dir.join("mxnet2.ini"), "[Option]\n").expect("ini");
    let err = load_in(crate::commands::parse_args(&[]).expect("args"), &blocked)
        .err()
        .expect("a file is in the way");
    assert!(
        format!("{err:#}").contains("cannot create the data folder"),
        "{err:#}"
    );
}

#[test]
fn config_file_overrides_and_log_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ini = dir.path().join("mxnet2.ini");
    std::fs::write(
        &ini,
        "[Option]\nPort=12345\nLogFileFolder=logs\nLogLevel=2\n",
    )
    .expect("write");
    let path = ini.to_str().expect("utf-8");
    let l = parse(&["--config", path, "--dongle", "none"]).expect("load");
    assert_eq!(l.config.port, 12345);
    assert_eq!(l.config.backend, BackendChoice::None);
    // The command line takes every spelling the file does (`sim` included).
    let l = parse(&["--config", path, "--dongle", "SIM"]).expect("load");
    assert_eq!(l.config.backend, BackendChoice::Simulated);
    assert_eq!(l.config.key_file, Some(dir.path().join(DEFAULT_KEY_FILE)));
    let log = file_log(&l).expect("file log");
    assert_eq!(log.dir, dir.path().join("logs"));
    assert_eq!(
        (log.prefix.as_str(), log.filter.as_str()),
        ("mxnet", "debug")
    );
    let l = parse(&["--config", path, "--port", "1", "--ephemeral-key"]).expect("load");
    assert_eq!((l.config.port, l.config.key_file.clone()), (1, None));
    assert_eq!(l.config.trusted_proxies, TrustedProxies::loopback());
    let l = parse(&[
        "--config",
        path,
        "--trusted-proxy",
        "10.0.0.5,10.1.0.0/16",
        "--trusted-proxy",
        "::1",
    ])
    .expect("load");
    assert_eq!(
        l.config.trusted_proxies.to_string(),
        "10.0.0.5, 10.1.0.0/16, ::1"
    );
    let l = parse(&["--config", path, "--trusted-proxy", "none"]).expect("load");
    assert!(l.config.trusted_proxies.is_empty());
    assert!(parse(&["--config", path, "--trusted-proxy", "relay.lan"]).is_err());
    // A key the server does not know (a vendor key) is named and ignored...
    std::fs::write(&ini, "[Option]\nPrt=1\n").expect("write");
    let l = parse(&["--config", path]).expect("unknown keys do not stop the server");
    assert!(l.config.warnings.iter().any(|w| w.contains("Prt")));
    // ...while a bad value of a known one stops it, naming the key and the file once.
    std::fs::write(&ini, "[Option]\nPort=eighty\n").expect("write");
    let err = parse(&["--config", path]).err().expect("error");
    assert!(format!("{err:#}").contains("Port"), "{err:#}");
    assert_eq!(
        format!("{err:#}").matches("mxnet2.ini").count(),
        1,
        "{err:#}"
    );
}

#[test]
// Long: one checklist of cases on one fixture; split, each would set the fixture up again.
fn operations_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = parse(&["--ephemeral-key"]).expect("defaults");
    assert!(l.admin.is_none() && l.listener.is_none() && l.config.state_db.is_none());

    let token = dir.path().join("admin.token");
    std::fs::write(&token, "0123456789abcdef0123\n").expect("write");
    let token = token.to_str().expect("utf-8");
    let l = parse(&["--admin", "--state-db", "s.db"]).expect("admin");
    let admin = l.admin.expect("admin");
    assert_eq!(admin.addr, "127.0.0.1:12380".parse().expect("addr"));
    assert!(admin.token.is_none(), "loopback without a token is allowed");
    assert_eq!(l.config.state_db, Some(PathBuf::from("s.db")));
    let err = parse(&["--admin", "0.0.0.0:9000"]).err().expect("refused");
    assert!(
        format!("{err:#}").contains("without a bearer token"),
        "{err:#}"
    );
    let l = parse(&["--admin", "0.0.0.0:9000", "--admin-token-file", token]).expect("token");
    let admin = l.admin.expect("admin");
    assert!(admin.token.expect("token").matches("0123456789abcdef0123"));

    // The configuration file's keys, relative to it; flags win.
    let ini = dir.path().join("mxnet2.ini");
    std::fs::write(
        &ini,
        "[Option]\nStateDb=state.db\nAdminBind=127.0.0.1:0\nAdminTokenFile=admin.token\n",
    )
    .expect("write");
    let path = ini.to_str().expect("utf-8");
    let l = parse(&["--config", path]).expect("file");
    assert_eq!(l.config.state_db, Some(dir.path().join("state.db")));
    let admin = l.admin.expect("admin");
    assert_eq!(admin.addr.port(), 0);
    assert!(admin.token.is_some());
    let l = parse(&["--config", path, "--admin", "[::1]:1"]).expect("flag wins");
    assert_eq!(
        l.admin.expect("admin").addr,
        "[::1]:1".parse().expect("addr")
    );

    // The in-process relay-listener: PROXY v2 towards this server by default.
    let cs = "Endpoint=sb://relay.test/;SharedAccessKeyName=listen;SharedAccessKey=k;\
              EntityPath=license";
    let l = parse(&[
        "--relay-connection-string",
        cs,
        "--relay-pin-sha256",
        &"AB".repeat(32),
    ])
    .expect("listener");
    let listener = l.listener.expect("listener");
    assert_eq!(listener.identity.mode, IdentityMode::ProxyV2);
    assert_eq!(ops::relay_name(&listener.access), "relay.test:443/license");
    let file = dir.path().join("listener.toml");
    std::fs::write(
        &file,
        format!("connection_string = \"{cs}\"\ntarget = \"127.0.0.1:1\"\ndefault_site = \"hq\"\n"),
    )
    .expect("write");
    let l = parse(&["--relay-listener", file.to_str().expect("utf-8")]).expect("file");
    assert_eq!(
        l.listener
            .expect("listener")
            .identity
            .default_site
            .as_deref(),
        Some("hq")
    );
    assert!(
        l.config.warnings.iter().any(|w| w.contains("target")),
        "{:?}",
        l.config.warnings
    );

    // --relay-admin needs the in-process listener and an admin token.
    let err = parse(&["--relay-admin", "--admin"])
        .err()
        .expect("no listener");
    assert!(
        format!("{err:#}").contains("in-process relay-listener"),
        "{err:#}"
    );
    let with_listener = ["--relay-connection-string", cs, "--relay-admin", "--admin"];
    let err = parse(&with_listener).err().expect("no token");
    assert!(format!("{err:#}").contains("bearer token"), "{err:#}");
    let l =
        parse(&[&with_listener[..], &["--admin-token-file", token]].concat()).expect("relay admin");
    assert!(l.relay_admin);
}

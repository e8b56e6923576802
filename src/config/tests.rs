use super::*;

fn layers(env: &[(&str, &str)]) -> Layers {
    Layers {
        flags: BTreeMap::new(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        env_files: Vec::new(),
        from_files: BTreeSet::new(),
    }
}

fn root_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![("WATCHER_ROOT", dir.display().to_string())]
}

fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load("marie", &layers(env))
}

#[test]
fn defaults_of_the_old_design() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let c = load(&[("WATCHER_ROOT", &root)]).expect("config");
    let t = &c.tuning;
    assert_eq!(t.max_concurrent, 3);
    assert_eq!(t.task_timeout, Duration::from_secs(600));
    assert_eq!(t.heartbeat_interval, Duration::from_secs(10));
    assert_eq!(t.max_retries, 3);
    assert_eq!(t.retry_backoff, 2.0);
    assert_eq!(t.initial_retry_delay, Duration::from_secs(1));
    assert_eq!(t.breaker_threshold, 5);
    assert_eq!(t.breaker_timeout, Duration::from_secs(60));
    assert_eq!(t.agent_argv, vec!["claude", "-p", "--output-format", "json"]);
    assert_eq!(t.log_level, Level::Info);
    assert_eq!(c.log_format, Format::Json);
    assert_eq!(c.log_target, Target::Auto);
    assert!(c.enable_metrics);
    assert_eq!(c.metrics_port, 9090);
    assert_eq!(c.metrics_listen, None);
    assert_eq!(c.paths.tasks, dir.path().join("tasks"));
    assert_eq!(c.paths.prompts, dir.path().join("prompts"));
}

#[test]
fn bad_values_name_the_variable_and_what_is_expected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    for (var, value, expect) in [
        ("MAX_RETRIES", "abc", "whole number"),
        ("TASK_TIMEOUT", "-5", "seconds from 0.1 to"),
        ("LOG_LEVEL", "LOUD", "DEBUG, INFO"),
        ("MAX_CONCURRENT_TASKS", "0", "from 1 to 1024"),
        ("RETRY_BACKOFF", "0.5", ">= 1"),
        ("ENABLE_METRICS", "perhaps", "true or false"),
        ("CLAUDE_ARGS", "'open", "split like a shell"),
        ("METRICS_PORT", "70000", "TCP port"),
        ("METRICS_LISTEN", "localhost:9090", "ADDR:PORT"),
        ("METRICS_LISTEN", "metrics.sock", "absolute unix socket path"),
        ("LOG_TARGET", "syslog", "auto, journal or stderr"),
    ] {
        let err = load(&[("WATCHER_ROOT", &root), (var, value)]).expect_err(var);
        assert!(err.0.starts_with(&format!("{var}=")), "{err}");
        assert!(err.0.contains(value), "{err}");
        assert!(err.0.contains(expect), "{err}");
        assert!(!err.0.contains('\n'), "one line: {err}");
    }
}

#[test]
fn precedence_flag_env_file_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), "MAX_RETRIES=7\nTASK_TIMEOUT=30\nHEARTBEAT_INTERVAL=4\n")
        .expect("env");
    let mut l = layers(&[("TASK_TIMEOUT", "60"), ("MAX_CONCURRENT_TASKS", "2")]);
    l.env.extend(root_env(dir.path()).into_iter().map(|(k, v)| (k.to_string(), v)));
    l.flags.insert("MAX_CONCURRENT_TASKS", ("9".into(), "--max-concurrent"));
    let c = Config::load("marie", &l).expect("config");
    assert_eq!(c.tuning.max_concurrent, 9);
    assert_eq!(c.tuning.task_timeout, Duration::from_secs(60));
    assert_eq!(c.tuning.max_retries, 7);
    assert_eq!(c.tuning.heartbeat_interval, Duration::from_secs(4));
    let source = |n: &str| c.effective.iter().find(|e| e.name == n).expect(n).source.clone();
    assert_eq!(source("MAX_CONCURRENT_TASKS"), Source::Flag("--max-concurrent"));
    assert_eq!(source("TASK_TIMEOUT"), Source::Environment);
    assert_eq!(source("MAX_RETRIES"), Source::EnvFile(dir.path().join(".env")));
    assert_eq!(source("RETRY_BACKOFF"), Source::Default);
    let report = c.report();
    assert!(report.contains("MAX_RETRIES=7"), "{report}");
    assert!(report.contains("# flag --max-concurrent"), "{report}");
}

#[test]
fn explicit_env_file_must_exist_and_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut l = layers(&[]);
    l.env_files = vec![EnvFileArg::parse(&dir.path().join("missing.env").display().to_string())];
    let err = Config::load("marie", &l).expect_err("missing");
    assert!(err.0.contains("missing.env"), "{err}");
    let bad = dir.path().join("bad.env");
    std::fs::write(&bad, "MAX_RETRIES=3\nthis is not a line\n").expect("w");
    l.env_files = vec![EnvFileArg { path: bad, optional: false }];
    let err = Config::load("marie", &l).expect_err("bad");
    assert!(err.0.contains("bad.env: line 2: not a NAME=value"), "{err}");
    assert!(!err.0.contains("this is not"), "the line is not shown: {err}");
}

#[test]
fn empty_claude_args_means_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let c =
        load(&[("WATCHER_ROOT", &root), ("CLAUDE_ARGS", ""), ("CLAUDE_COMMAND", "/opt/my agent/run --x")])
            .expect("config");
    assert_eq!(c.tuning.agent_argv, vec!["/opt/my", "agent/run", "--x"]);
    let c = load(&[("WATCHER_ROOT", &root), ("CLAUDE_ARGS", ""), ("CLAUDE_COMMAND", "'/opt/my agent/run'")])
        .expect("config");
    assert_eq!(c.tuning.agent_argv, vec!["/opt/my agent/run"]);
}

#[test]
fn worker_names_are_checked() {
    let l = layers(&[("WATCHER_ROOT", "/tmp")]);
    for bad in ["", "../x", "a/b", ".hidden", "x y"] {
        assert!(Config::load(bad, &l).is_err(), "{bad:?}");
    }
    assert!(Config::load("my-worker.2", &l).is_ok());
}

#[test]
fn reload_reports_restart_only_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = dir.path().join("w.env");
    std::fs::write(&env, "MAX_CONCURRENT_TASKS=2\nLOG_FORMAT=json\n").expect("w");
    let mut l = layers(&[]);
    l.env.insert("WATCHER_ROOT".into(), dir.path().display().to_string());
    l.env_files = vec![EnvFileArg { path: env.clone(), optional: false }];
    let c = Config::load("marie", &l).expect("config");
    std::fs::write(&env, "MAX_CONCURRENT_TASKS=5\nLOG_FORMAT=text\n").expect("w");
    let (new, ignored) = c.reload(&l).expect("reload");
    assert_eq!(new.tuning.max_concurrent, 5);
    assert_eq!(ignored, vec!["LOG_FORMAT"]);
}

#[test]
fn named_env_files_rank_below_the_environment_and_reach_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (common, own) = (dir.path().join("watcher.env"), dir.path().join("marie.env"));
    std::fs::write(&common, "MAX_RETRIES=1\nTASK_TIMEOUT=20\nANTHROPIC_API_KEY=k1\n").expect("w");
    std::fs::write(&own, "MAX_RETRIES=2\n").expect("w");
    let mut l = layers(&[("TASK_TIMEOUT", "30"), ("HEARTBEAT_INTERVAL", "5")]);
    l.env.insert("WATCHER_ROOT".into(), dir.path().display().to_string());
    l.env_files = vec![
        EnvFileArg::parse(&common.display().to_string()),
        EnvFileArg::parse(&format!("-{}", own.display())),
        EnvFileArg::parse(&format!("-{}", dir.path().join("absent.env").display())),
    ];
    let c = Config::load("marie", &l).expect("config");
    assert_eq!(c.tuning.max_retries, 2, "the later file wins");
    assert_eq!(c.tuning.task_timeout, Duration::from_secs(30), "the environment beats a named file");
    assert_eq!(c.tuning.heartbeat_interval, Duration::from_secs(5));
    assert_eq!(c.tuning.agent_env.get("ANTHROPIC_API_KEY").map(String::as_str), Some("k1"));
    assert_eq!(c.env_files, vec![common.clone(), own.clone()]);
    std::fs::write(&common, "ANTHROPIC_API_KEY=k2\nTASK_TIMEOUT=25\n").expect("w");
    let (c, _) = c.reload(&l).expect("reload");
    assert_eq!(c.tuning.agent_env.get("ANTHROPIC_API_KEY").map(String::as_str), Some("k2"));
    assert_eq!(c.tuning.task_timeout, Duration::from_secs(30), "still the environment's value");
}

/// Under systemd the environment holds what EnvironmentFile= read from the same files: those
/// variables are the files' own, and a reload follows the files (and drops what they drop).
#[test]
fn what_the_environment_got_from_the_files_follows_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("marie.env");
    std::fs::write(&file, "MAX_RETRIES=4\nMY_KEY=\"a$b\"\nGONE=x\n").expect("w");
    let env: BTreeMap<String, String> = [
        ("WATCHER_ROOT", dir.path().display().to_string()),
        ("MAX_RETRIES", "4".into()),
        ("MY_KEY", "a$b".into()),
        ("GONE", "x".into()),
        ("OWN", "o".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let l = Layers::new(BTreeMap::new(), env, vec![EnvFileArg::parse(&file.display().to_string())]);
    assert_eq!(l.from_files, ["GONE", "MAX_RETRIES", "MY_KEY"].map(String::from).into());
    let c = Config::load("marie", &l).expect("config");
    assert_eq!(c.tuning.max_retries, 4);
    std::fs::write(&file, "MAX_RETRIES=6\nMY_KEY='a$c'\n").expect("w");
    let (c, _) = c.reload(&l).expect("reload");
    assert_eq!(c.tuning.max_retries, 6);
    assert_eq!(c.tuning.agent_env.get("MY_KEY").map(String::as_str), Some("a$c"));
    assert_eq!(c.tuning.agent_unset, vec!["GONE".to_string()]);
    assert!(!c.tuning.agent_env.contains_key("OWN"), "the environment's own is inherited, not set");
}

#[test]
fn root_env_file_fills_in_below_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), "MAX_RETRIES=4\nAPI_KEY=a\nPATH=/evil\n").expect("w");
    let mut l = layers(&[("MAX_RETRIES", "1"), ("PATH", "/usr/bin")]);
    l.env.insert("WATCHER_ROOT".into(), dir.path().display().to_string());
    let c = Config::load("marie", &l).expect("config");
    assert_eq!(c.tuning.max_retries, 1);
    assert_eq!(c.tuning.agent_env.get("API_KEY").map(String::as_str), Some("a"));
    assert!(!c.tuning.agent_env.contains_key("PATH"), "the environment wins over ROOT/.env");
}

#[test]
fn metrics_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let c = load(&[("WATCHER_ROOT", &root), ("METRICS_PORT", "0"), ("METRICS_LISTEN", "/run/ww/%i.sock")])
        .expect("config");
    assert_eq!(c.metrics_port, 0);
    assert_eq!(c.metrics_listen, Some(crate::sys::socket::Addr::Unix("/run/ww/marie.sock".into())));
    let c = load(&[("WATCHER_ROOT", &root), ("METRICS_LISTEN", "[::1]:9101")]).expect("config");
    assert_eq!(c.metrics_listen, Some(crate::sys::socket::Addr::Tcp("[::1]:9101".parse().expect("addr"))));
}

#[test]
fn shared_settings_need_no_worker_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), "MAX_TASK_BYTES=2048\nPIPE_INTAKE=yes\n").expect("env");
    let root = dir.path().display().to_string();
    let c = Config::load_shared(&layers(&[("WATCHER_ROOT", &root)])).expect("config");
    assert_eq!(c.worker, "");
    assert_eq!(c.tuning.max_task_bytes, 2048, "ROOT/.env is read");
    assert!(c.pipe_intake);
    assert_eq!(c.paths.pipes, dir.path().join("pipes"));
    let off = load(&[("WATCHER_ROOT", &root), ("PIPE_INTAKE", "off")]);
    assert!(!off.expect("config").pipe_intake, "the environment ranks above ROOT/.env");
}

#[test]
fn rescan_interval_unset_is_auto_and_explicit_values_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let t = load(&[("WATCHER_ROOT", &root)]).expect("config").tuning;
    assert!(t.rescan_auto);
    assert_eq!(t.rescan_interval, None);
    let t = load(&[("WATCHER_ROOT", &root), ("RESCAN_INTERVAL", "0")]).expect("config").tuning;
    assert!(!t.rescan_auto, "0 is an explicit off");
    assert_eq!(t.rescan_interval, None);
    let t = load(&[("WATCHER_ROOT", &root), ("RESCAN_INTERVAL", "2.5")]).expect("config").tuning;
    assert!(!t.rescan_auto);
    assert_eq!(t.rescan_interval, Some(Duration::from_millis(2500)));
}

#[test]
fn lock_dir_is_optional_and_absolute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    assert_eq!(load(&[("WATCHER_ROOT", &root)]).expect("config").paths.lock, None);
    let c = load(&[("WATCHER_ROOT", &root), ("LOCK_DIR", "/run/ww")]).expect("config");
    assert_eq!(c.paths.lock, Some(PathBuf::from("/run/ww")));
}

/// Every time setting, at and beyond both ends of its range, through the loader of each
/// program that reads it (the workers' and watcherctl's, or the listener's).
#[test]
fn time_settings_are_held_to_their_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let listener_only = ["HEARTBEAT_STALE_AFTER", "ORCHESTRATOR_NOTIFY_TIMEOUT", "LISTENER_BACKFILL"];
    for (name, span) in bounds::SPANS {
        let try_value = |v: &str| -> Result<(), ConfigError> {
            let env = [("WATCHER_ROOT", root.as_str()), (name, v)];
            let worker = load(&env).map(|_| ());
            let listener = listener::ListenerConfig::load(&layers(&env)).map(|_| ());
            if listener_only.contains(name) {
                worker.expect("not a worker's setting");
                listener
            } else if *name == "KILL_GRACE" {
                worker.and(listener)
            } else {
                worker
            }
        };
        let (min, max) = (span.min, span.max);
        for ok in [min, max, (min + max) / 2.0] {
            try_value(&ok.to_string()).unwrap_or_else(|e| panic!("{name}={ok} refused: {e}"));
        }
        let below = if min > 0.0 { min / 10.0 } else { -1.0 };
        for bad in [below.to_string(), (max * 1.01).to_string(), "1e-300".into(), "inf".into(), "nan".into()]
        {
            if bad == "1e-300" && min == 0.0 {
                continue;
            }
            let e = try_value(&bad).expect_err(&format!("{name}={bad} accepted"));
            assert!(e.0.starts_with(&format!("{name}={bad:?} is invalid: expected ")), "{e}");
            assert!(e.0.contains(&span.describe()), "{e}");
            assert!(!e.0.contains('\n'), "one line: {e}");
        }
        assert_eq!(try_value("0").is_ok(), span.off || min == 0.0, "{name}=0");
    }
}

#[test]
fn each_time_setting_states_its_range_in_the_table() {
    for (name, span) in bounds::SPANS {
        let var = vars::lookup(name).unwrap_or_else(|| panic!("{name} is not in the table"));
        assert_eq!(var.expects, span.describe(), "{name}");
    }
    for var in VARS.iter().filter(|v| v.expects.contains("seconds")) {
        assert!(bounds::of(var.name).is_some(), "{} is a time without a range", var.name);
    }
}

#[test]
fn the_spool_backend_comes_through_the_layers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    assert!(load(&[("WATCHER_ROOT", &root)]).expect("config").spool.is_none(), "the folders by default");
    let env = [
        ("WATCHER_ROOT", root.as_str()),
        ("SPOOL", "redis+unix:///run/valkey.sock"),
        ("SPOOL_CONSUMER", "host-b"),
        ("HEARTBEAT_INTERVAL", "2"),
    ];
    let c = load(&env).expect("config");
    let s = c.spool.clone().expect("an engine");
    assert_eq!((s.consumer.as_str(), s.prefix.as_str(), s.lease), ("host-b", "ww", Duration::from_secs(6)));
    assert!(c.report().contains("SPOOL_CONSUMER=host-b"), "{}", c.report());
    // LEASE must outlast a heartbeat, with an engine; the listener holds no lease.
    let mut short = env.to_vec();
    short.push(("LEASE", "1"));
    let e = load(&short).expect_err("a lease shorter than a heartbeat");
    assert!(e.0.starts_with("LEASE=1s must be longer than HEARTBEAT_INTERVAL=2s"), "{e}");
    assert!(listener::ListenerConfig::load(&layers(&short)).expect("listener").spool.is_some());
    let e = load(&[("WATCHER_ROOT", &root), ("SPOOL", "redis://u:pw@h")]).expect_err("a password");
    assert!(e.0.contains("SPOOL_PASSWORD_FILE") && !e.0.contains("pw@"), "{e}");
}

#[test]
fn session_flags_are_claudes_for_claude_and_off_for_other_agents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display().to_string();
    let flags = |env: &[(&str, &str)]| {
        let mut env = env.to_vec();
        env.push(("WATCHER_ROOT", &root));
        let p = load(&env).expect("config").tuning.policy;
        (p.session_flag, p.resume_flag)
    };
    let claude = (Some("--session-id".to_string()), Some("--resume".to_string()));
    assert_eq!(flags(&[]), claude, "claude by default");
    assert_eq!(flags(&[("CLAUDE_COMMAND", "/opt/bin/claude")]), claude);
    assert_eq!(flags(&[("CLAUDE_COMMAND", "my-agent")]), (None, None), "another agent: off");
    let set = flags(&[
        ("CLAUDE_COMMAND", "my-agent"),
        ("AGENT_SESSION_FLAG", "--new"),
        ("AGENT_RESUME_FLAG", "--cont"),
    ]);
    assert_eq!(set, (Some("--new".to_string()), Some("--cont".to_string())));
    let off = flags(&[("AGENT_SESSION_FLAG", ""), ("AGENT_RESUME_FLAG", "")]);
    assert_eq!(off, (None, None), "empty: off, for claude too");
    assert!(load(&[("WATCHER_ROOT", &root), ("AGENT_RESUME_FLAG", "resume")]).is_err(), "not an option");
}

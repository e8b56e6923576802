use std::collections::HashMap;

use super::*;

fn tcp(host: &str, port: u16, tls: bool) -> Address {
    Address::Tcp { host: host.into(), port, tls }
}

#[test]
fn spool_urls() {
    let ok: &[(&str, Address, Option<&str>, i64)] = &[
        ("redis://engine", tcp("engine", 6379, false), None, 0),
        ("redis://engine:6380/2", tcp("engine", 6380, false), None, 2),
        ("redis://ww-worker@10.0.0.5", tcp("10.0.0.5", 6379, false), Some("ww-worker"), 0),
        ("redis://[::1]:7000", tcp("::1", 7000, false), None, 0),
        ("rediss://engine.example.org", tcp("engine.example.org", 6379, true), None, 0),
        ("redis+unix:///run/valkey/valkey.sock", Address::Unix("/run/valkey/valkey.sock".into()), None, 0),
        ("redis+unix:///run/r.sock?db=3", Address::Unix("/run/r.sock".into()), None, 3),
        (
            "redis-sentinel://s1,s2:26380,s3/ww",
            Address::Sentinel {
                nodes: vec![("s1".into(), 26379), ("s2".into(), 26380), ("s3".into(), 26379)],
                service: "ww".into(),
            },
            None,
            0,
        ),
        (
            "redis-sentinel://s1/ww/1",
            Address::Sentinel { nodes: vec![("s1".into(), 26379)], service: "ww".into() },
            None,
            1,
        ),
    ];
    for (url, address, user, db) in ok {
        let want =
            Backend::Redis(Target { address: address.clone(), username: user.map(String::from), db: *db });
        assert_eq!(backend(url).map_err(|e| e.0), Ok(want), "{url}");
    }
    assert_eq!(backend("file").map_err(|e| e.0), Ok(Backend::File));
    assert_eq!(backend("").map_err(|e| e.0), Ok(Backend::File));
}

#[test]
fn bad_spool_urls_name_the_setting() {
    for url in [
        "redis",
        "http://engine",
        "redis://",
        "redis://engine:0",
        "redis://engine:99999",
        "redis://engine/16",
        "redis://engine/x",
        "redis+unix://relative.sock",
        "redis+unix:///s.sock?timeout=3",
        "redis-sentinel://s1,,s3/ww",
        "redis-sentinel://s1",
        "redis-sentinel://s1/ww/1/x",
        "redis://bad user@engine",
    ] {
        let e = backend(url).expect_err(url).0;
        assert!(e.starts_with(&format!("SPOOL={url:?} is invalid: expected file, redis://")), "{e}");
    }
}

#[test]
fn a_url_with_a_password_is_refused_without_repeating_it() {
    for url in ["redis://user:s3cret@engine", "redis://:s3cret@engine/1", "redis-sentinel://u:s3cret@s1/ww"] {
        let e = backend(url).expect_err(url).0;
        assert!(e.contains("SPOOL_PASSWORD_FILE") && e.contains("spool-password"), "{e}");
        assert!(!e.contains("s3cret"), "the message repeats the password: {e}");
    }
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn password_from_a_file_or_a_credential_never_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pass");
    std::fs::write(&file, "hunter2\n").unwrap();
    std::fs::write(dir.path().join(CREDENTIAL), "from-credential").unwrap();
    let f = file.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(
        password(&env(&[("SPOOL_PASSWORD_FILE", f), ("CREDENTIALS_DIRECTORY", d)])).unwrap().as_deref(),
        Some("hunter2")
    );
    assert_eq!(password(&env(&[("CREDENTIALS_DIRECTORY", d)])).unwrap().as_deref(), Some("from-credential"));
    assert_eq!(password(&env(&[])).unwrap(), None);
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(password(&env(&[("CREDENTIALS_DIRECTORY", empty.path().to_str().unwrap())])).unwrap(), None);
    std::fs::write(&file, "\n").unwrap();
    let e = password(&env(&[("SPOOL_PASSWORD_FILE", f)])).unwrap_err().0;
    assert!(e.starts_with("SPOOL_PASSWORD_FILE=") && e.contains("is empty"), "{e}");
    let e = password(&env(&[("SPOOL_PASSWORD_FILE", "/nonexistent/pass")])).unwrap_err().0;
    assert!(e.starts_with("SPOOL_PASSWORD_FILE=\"/nonexistent/pass\" cannot be read"), "{e}");
}

#[test]
fn defaults_and_derived_lease() {
    let hb = Some(Duration::from_secs(10));
    assert_eq!(settings(&env(&[]), "host-a", hb).unwrap(), None);
    let s = settings(&env(&[("SPOOL", "redis+unix:///run/r.sock")]), "host-a", hb).unwrap().unwrap();
    assert_eq!((s.prefix.as_str(), s.consumer.as_str()), ("ww", "host-a"));
    assert_eq!((s.lease, s.result_ttl, s.timeout), (Duration::from_secs(30), RESULT_TTL, TIMEOUT));
    assert!(!format!("{s:?}").contains("password: Some"));
    let s = settings(
        &env(&[
            ("SPOOL", "redis://engine"),
            ("SPOOL_PREFIX", "prod"),
            ("SPOOL_CONSUMER", "b7"),
            ("LEASE", "45"),
            ("RESULT_TTL", "3600"),
            ("SPOOL_TIMEOUT", "0.5"),
        ]),
        "host-a",
        hb,
    )
    .unwrap()
    .unwrap();
    assert_eq!((s.prefix.as_str(), s.consumer.as_str()), ("prod", "b7"));
    assert_eq!(
        (s.lease, s.result_ttl, s.timeout),
        (Duration::from_secs(45), Duration::from_secs(3600), Duration::from_millis(500))
    );
}

#[test]
fn bad_settings_name_the_variable() {
    let hb = Some(Duration::from_secs(10));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("SPOOL_PREFIX", "a{b}")], "SPOOL_PREFIX=\"a{b}\" is invalid"),
        (&[("SPOOL_CONSUMER", "host/a")], "SPOOL_CONSUMER=\"host/a\" is invalid"),
        (&[("LEASE", "abc")], "LEASE=\"abc\" is invalid"),
        (&[("LEASE", "10")], "LEASE=10s must be longer than HEARTBEAT_INTERVAL=10s"),
        (&[("RESULT_TTL", "0")], "RESULT_TTL=\"0\" is invalid"),
        (&[("SPOOL_TIMEOUT", "-1")], "SPOOL_TIMEOUT=\"-1\" is invalid"),
    ];
    for (pairs, want) in cases {
        let mut all = vec![("SPOOL", "redis://engine")];
        all.extend_from_slice(pairs);
        let e = settings(&env(&all), "host-a", hb).unwrap_err().0;
        assert!(e.starts_with(want), "{e}");
    }
    if !cfg!(feature = "redis-tls") {
        let e = settings(&env(&[("SPOOL", "rediss://engine")]), "h", hb).unwrap_err().0;
        assert!(e.contains("redis-tls"), "{e}");
    }
}

//! Env files are read as systemd's EnvironmentFile= reads them (the same file feeds both), and
//! the environment ranks above them: a secret reaches the agent byte for byte.

use std::fs;

use crate::support::ctl::ctl;
use crate::support::util::*;

/// Secrets with what a shell or dotenv would expand or eat: `$`, backticks, backslashes.
const SECRETS: &str = concat!(
    "MY_API_KEY=sk-ab$cd$1x\n",
    "MY_B=\"p@ss$word\"\n",
    "MY_C='a\\b`c`$d ${HOME}'\n",
    "MY_D=\"x\\\\y\\$z\\`\"\n",
    "MY_E=plain\\\\back\\slash\n",
);

/// The values systemd gives these lines (systemd.exec(5), EnvironmentFile=).
const AS_SYSTEMD_READS_THEM: [&str; 5] = [
    "MY_API_KEY=sk-ab$cd$1x\n",
    "MY_B=p@ss$word\n",
    "MY_C=a\\b`c`$d ${HOME}\n",
    "MY_D=x\\y$z`\n",
    "MY_E=plain\\backslash\n",
];

fn agent_env(root: &Root, worker: &str, id: &str) -> String {
    root.submit(worker, id, "env");
    let r = root.wait_result(worker, id);
    assert_eq!(r["status"], "completed", "{r}");
    r["output"].as_str().expect("text output").to_string()
}

#[test]
fn a_secret_in_an_env_file_reaches_the_agent_byte_for_byte() {
    let root = Root::new();
    let file = root.path().join("secrets.env");
    fs::write(&file, SECRETS).expect("env file");
    let mut cmd = command(&root, "secw", &[]);
    cmd.arg(format!("--env-file={}", file.display()));
    let w = Worker::spawn_command(&root, "secw", cmd);
    w.wait_notify("READY=1");
    let out = agent_env(&root, "secw", "s1");
    for line in AS_SYSTEMD_READS_THEM {
        assert!(out.contains(line), "the agent did not get {line:?}:\n{out}");
    }
}

#[test]
fn root_env_file_is_read_the_same_way() {
    let root = Root::new();
    fs::write(root.path().join(".env"), SECRETS).expect("env file");
    let _w = Worker::start(&root, "dotw", &[]);
    let out = agent_env(&root, "dotw", "d1");
    for line in AS_SYSTEMD_READS_THEM {
        assert!(out.contains(line), "the agent did not get {line:?}:\n{out}");
    }
}

#[test]
fn the_environment_wins_over_the_env_file() {
    let root = Root::new();
    let file = root.path().join("w.env");
    fs::write(&file, "MY_API_KEY=from-the-file\nTASK_TIMEOUT=20\nMY_OTHER=only-in-the-file\n").expect("env");
    let env = [("MY_API_KEY", "sk-ab$cd$1x"), ("TASK_TIMEOUT", "30")];
    let mut cmd = command(&root, "envw", &env);
    cmd.arg(format!("--env-file={}", file.display()));
    let w = Worker::spawn_command(&root, "envw", cmd);
    w.wait_notify("READY=1");
    let out = agent_env(&root, "envw", "e1");
    assert!(out.contains("\nMY_API_KEY=sk-ab$cd$1x\n"), "{out}");
    assert!(out.contains("\nMY_OTHER=only-in-the-file\n"), "{out}");
    let report = command(&root, "envw", &env)
        .arg(format!("--env-file={}", file.display()))
        .arg("--check-config")
        .output()
        .expect("check-config");
    let text = String::from_utf8_lossy(&report.stdout);
    let line = text.lines().find(|l| l.starts_with("TASK_TIMEOUT=")).unwrap_or_default();
    assert!(line.starts_with("TASK_TIMEOUT=30 ") && line.ends_with("# environment"), "{text}");
}

/// Under systemd the same file is both EnvironmentFile= and --env-file: what the environment
/// got from it follows the file when SIGHUP reads it again.
#[test]
fn sighup_follows_the_file_for_what_systemd_set_from_it() {
    let root = Root::new();
    let file = root.path().join("w.env");
    fs::write(&file, "MY_API_KEY=\"k$1\"\n").expect("env");
    let mut cmd = command(&root, "hupw", &[("MY_API_KEY", "k$1")]);
    cmd.arg(format!("--env-file={}", file.display()));
    let w = Worker::spawn_command(&root, "hupw", cmd);
    w.wait_notify("READY=1");
    assert!(agent_env(&root, "hupw", "h1").contains("\nMY_API_KEY=k$1\n"));
    fs::write(&file, "MY_API_KEY='k$2'\n").expect("env");
    w.signal(libc::SIGHUP);
    w.wait_notify("RELOADING=1");
    let mut n = 1;
    let out = wait_for("the reloaded key", || {
        n += 1;
        let out = agent_env(&root, "hupw", &format!("h{n}"));
        out.contains("\nMY_API_KEY=k$2\n").then_some(out)
    });
    assert!(!out.contains("k$1"), "{out}");
}

#[test]
fn a_line_systemd_would_ignore_stops_the_worker_naming_the_line() {
    let root = Root::new();
    let file = root.path().join("w.env");
    fs::write(&file, "# keys\nexport MY_API_KEY=sk-secret\n").expect("env");
    let out = command(&root, "badw", &[])
        .arg(format!("--env-file={}", file.display()))
        .arg("--check-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("w.env") && err.contains("line 2") && err.contains("export"), "{err}");
    assert!(!err.contains("sk-secret"), "the secret is in the message: {err}");
}

#[test]
fn watcherctl_reads_a_dollar_in_quotes() {
    let root = Root::new();
    let file = root.path().join("w.env");
    fs::write(&file, "MY_B=\"p@ss$word\"\nMAX_TASK_BYTES=4096\n").expect("env");
    let arg = format!("--env-file={}", file.display());
    ctl(&root, &[&arg, "status", "--json"]).expect(0);
}

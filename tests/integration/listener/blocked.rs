//! Events that cannot be written hold the results back, never lose them: /healthz says 503
//! meanwhile, and once the folder is back every result is announced, once.

use super::*;

#[test]
fn results_wait_while_events_cannot_be_written() {
    let root = Root::new();
    let (l, target) = start(&root, &[]);
    let _m = worker(&root, "marie");
    root.submit("marie", "before", "hello");
    root.wait_events("the first event", |e| e.len() == 1);
    // The events folder replaced by a file: every event write fails, even as root.
    let dir = root.events_dir();
    let aside = root.path().join("events.aside");
    std::fs::rename(&dir, &aside).expect("move the folder aside");
    std::fs::write(&dir, "not a folder").expect("a file in its place");
    root.submit("marie", "during-1", "hello");
    root.submit("marie", "during-2", "fail 1");
    root.wait_result("marie", "during-2");
    let a = wait_for("/healthz to say 503", || Some(target.get("/healthz")).filter(|a| a.status == 503));
    assert!(a.body.contains("cannot be written"), "{}", a.body);
    // Tried again every second, but said once (then at most every minute), not every second.
    let blocked = std::time::Instant::now();
    wait_for("a few retries", || (blocked.elapsed().as_secs_f64() > 3.0).then_some(()));
    assert_eq!(l.log_text().matches("cannot write events").count(), 1, "{}", l.log_text());
    std::fs::remove_file(&dir).expect("remove the file");
    std::fs::rename(&aside, &dir).expect("put the folder back");
    let events = root.wait_events("three events", |e| e.len() >= 3);
    let ids: Vec<&str> = events.iter().filter_map(|e| e["task_id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "{events:#?}");
    for id in ["before", "during-1", "during-2"] {
        assert!(ids.contains(&id), "{id}: {ids:?}");
    }
    wait_for("/healthz to say 200 again", || (target.get("/healthz").status == 200).then_some(()));
    assert!(l.log_text().contains("written again"), "{}", l.log_text());
}

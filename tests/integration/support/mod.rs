//! Helpers of the integration tests; no tests here.

pub mod ctl; // watcherctl run as a script would: output, exit status, a hang failing the test
pub mod engine; // a real redis-server per test, hosts of a fleet on it, the engine read back
pub mod golden; // golden spool trees: a tree normalized, compared with tests/golden/NAME/expected/
pub mod markdown; // just enough Markdown for the docs tests: code spans, lists, links, anchors
pub mod redis_ops; // engines of their own: redis-server on a socket or port, replicas, sentinels; watcherctl with SPOOL
pub mod scrape; // an HTTP client for the metrics endpoints, a reader of the exposition, promtool
pub mod sys; // root, sysctls, mounts and CPU time, each put back by a guard
pub mod util; // a temp spool per test, the worker and listener started, poll-until-deadline waits

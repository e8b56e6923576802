//! A real engine for the backends' tests: the engine layer's test server, and the settings
//! that point at it.

use std::time::Duration;

use crate::engine::redis::settings::Settings;
pub(crate) use crate::engine::redis::testing::Server;

/// Settings for `server`, as host `consumer`, with a `lease`.
pub(crate) fn settings(server: &Server, consumer: &str, lease: Duration) -> Settings {
    Settings {
        target: server.target(),
        password: None,
        prefix: "ww".into(),
        consumer: consumer.into(),
        lease,
        result_ttl: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
    }
}

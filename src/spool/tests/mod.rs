//! The behaviour every backend of an interface shares, written once and run against each:
//! the folders and the memory (and, when it comes, an engine). A backend's own ways (files
//! read as untrusted, a lock, a state file's format) are tested beside it.
//!
//! Each suite is a set of functions generic over a fixture, which plays the other programs
//! (the workers writing results and heartbeats, the listener writing events) and opens the
//! backend anew when a test restarts it; [`suite!`] makes one `#[test]` per function and
//! fixture.

mod control;
mod engine;
mod listener;

use std::time::{Duration, Instant};

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

fn deadline() -> Instant {
    Instant::now() + PATIENCE
}

/// `suite!(module_of_tests, Fixture::new; name, name, …)`: one test per name, in a module
/// named after the fixture.
macro_rules! suite {
    ($module:ident, $fixture:expr; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut $fixture);
                }
            )*
        }
    };
}
pub(crate) use suite;

/// `engine_suite!(module, Fixture::start; name, …)`: like [`suite!`], for a fixture on a real
/// engine: `start` gives `None` (the test says SKIP) where no server can run.
macro_rules! engine_suite {
    ($module:ident, $start:expr; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    let Some(mut f) = $start() else { return };
                    super::$name(&mut f);
                }
            )*
        }
    };
}
pub(crate) use engine_suite;

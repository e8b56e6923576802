//! The docs test (`cargo test --test integration docs`): the documentation cannot drift from
//! the code.

mod commands; // the commands the README and the guides show are real
pub mod guides; // the README and docs/ link to the reference and name only what exists
mod man; // man pages, the catalog and the packaged env file against their sources, both ways

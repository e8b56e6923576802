//! The machine under the worker misbehaving: its filesystem, inotify, the clock, the journal.

mod clock; // steps of the wall clock neither hold a task back nor end it
mod diskfull; // the spool's filesystem full, read-only or unwritable: nothing lost, resumes by itself
mod inotify; // a queue overflow, a queue folder deleted, the watch limit reached
mod logging; // the journal or stderr, and stderr again when the journal cannot be reached
mod netfs; // network filesystems: the timer rescan, two hosts sharing one spool

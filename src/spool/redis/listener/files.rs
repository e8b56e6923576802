//! LISTENER_FILES: the listener on an engine also keeps the folders' files, for orchestrators
//! that read files and as the lasting archive of results (they leave the engine after
//! RESULT_TTL): each result as `results/W/<id>.json`, each event in `triggers/orchestrator/`,
//! written durably (a synced temp file renamed into place) as the folders' listener writes
//! events. Written before the commit that acknowledges them: after a crash they are written
//! again under the same names, replacing themselves.

use crate::spool::error::Error;
use crate::spool::layout::{record_name, Layout};
use crate::spool::listener::{Loudness, Note, Outgoing};
use crate::sys::durable::Batch;

pub(super) struct Files {
    layout: Layout,
    results: Batch<()>,
}

impl Files {
    pub(super) fn new(layout: Layout) -> Files {
        Files { layout, results: Batch::recreating() }
    }

    /// Stages a result's archive file.
    pub(super) fn result(&mut self, worker: &str, id: &str, bytes: Vec<u8>) {
        self.results.add(&self.layout.results(worker), &record_name(id), bytes, ());
    }

    /// Writes the staged results; what failed is said (the result stays in the engine until
    /// RESULT_TTL).
    pub(super) fn flush(&mut self) -> Vec<Note> {
        let failed = self.results.commit().into_iter().filter_map(|(_, r)| r.err()).next();
        failed
            .map(|e| Note {
                loudness: Loudness::Retried,
                message: "cannot archive results in RESULT_DIR (they stay in the engine until RESULT_TTL)",
                fields: vec![("FOLDER", self.layout.results.display().to_string()), ("ERROR", e.to_string())],
            })
            .into_iter()
            .collect()
    }

    /// Writes event files; the outcome of each.
    pub(super) fn events(&mut self, events: &[Outgoing]) -> Vec<Result<(), Error>> {
        let dir = self.layout.events();
        let mut batch = Batch::recreating();
        for (i, e) in events.iter().enumerate() {
            batch.add(&dir, &record_name(&e.id), e.json.clone(), i);
        }
        let mut out: Vec<Result<(), Error>> = events.iter().map(|_| Ok(())).collect();
        for (i, outcome) in batch.commit() {
            if let (Err(e), Some(slot)) = (outcome, out.get_mut(i)) {
                *slot = Err(Error::new("cannot write events in", dir.display(), e));
            }
        }
        out
    }

    pub(super) fn event_at(&self, id: &str) -> String {
        self.layout.event(id).display().to_string()
    }
}

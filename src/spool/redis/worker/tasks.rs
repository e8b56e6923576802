//! The tasks this host holds: each delivered entry with its task as the engine stored it, read
//! back for the loop ([`Tasks::load`]), which of them are ending (an ending op staged: no
//! longer renewed), and the second entry of a task already held under another one, kept
//! back until the first is let go (the loop runs one attempt of a task at a time).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use crate::engine::redis::ops::Held;
use crate::engine::redis::reply::Task as Delivered;
use crate::format::task::{Invalid, Task, STATE_KEY};
use crate::spool::{Claim, EntryId, Loaded, Rejected};

/// A task as the engine handed it over.
#[derive(Clone, Debug)]
pub(super) struct Stored {
    pub(super) id: String,
    pub(super) doc: Vec<u8>,
    pub(super) state: Option<Vec<u8>>,
    /// Reclaims counted by the engine since the state was last saved.
    pub(super) reclaims: u32,
    pub(super) queued_at_ms: i64,
}

impl Stored {
    pub(super) fn new(id: &str, t: &Delivered) -> Stored {
        Stored {
            id: id.to_owned(),
            doc: t.doc.clone(),
            state: t.state.clone(),
            reclaims: t.reclaims,
            queued_at_ms: t.queued_at_ms,
        }
    }

    /// The task's bytes as a task file would have them: the document with the state under
    /// `_watcher`, the engine's reclaim count added to it.
    fn bytes(&self) -> Vec<u8> {
        let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&self.doc) else {
            return self.doc.clone();
        };
        let mut state = match self.state.as_deref().map(serde_json::from_slice::<Value>) {
            Some(Ok(Value::Object(s))) => s,
            Some(_) => return self.doc.clone(),
            None => match doc.remove(STATE_KEY) {
                Some(Value::Object(s)) => s,
                _ => serde_json::Map::new(),
            },
        };
        if self.reclaims > 0 {
            let before = state.get("reclaims").and_then(Value::as_u64).unwrap_or(0);
            state.insert("reclaims".into(), Value::from(before + u64::from(self.reclaims)));
        }
        if !state.is_empty() {
            doc.insert(STATE_KEY.into(), Value::Object(state));
        }
        serde_json::to_vec(&Value::Object(doc)).unwrap_or_else(|_| self.doc.clone())
    }
}

/// The claim of an entry of task `id`.
pub(super) fn claim(entry: &str, id: &str) -> Claim {
    Claim { key: EntryId::from(entry), source: EntryId::from(id), file: None }
}

/// The engine's names of a claim: its task's id and its entry.
pub(super) fn held(claim: &Claim) -> Held {
    Held { id: claim.source.lossy().into_owned(), entry: claim.key.lossy().into_owned() }
}

#[derive(Default)]
pub(super) struct Tasks {
    by_entry: HashMap<EntryId, Stored>,
    /// Entries with an ending op staged or in flight.
    ending: HashSet<EntryId>,
    /// A second entry of a task held under another one, by task id.
    deferred: HashMap<String, (EntryId, Stored)>,
    /// Entries of tasks withdrawn to be cancelled: deleted, so never renewed.
    withdrawn: HashSet<EntryId>,
}

impl Tasks {
    /// Holds a delivered entry; `false` when its task is held under another entry already
    /// (then it waits until that one is let go).
    pub(super) fn hold(&mut self, entry: &str, stored: Stored) -> bool {
        let key = EntryId::from(entry);
        if self.by_entry.contains_key(&key) {
            return false;
        }
        if self.by_entry.values().any(|s| s.id == stored.id) {
            self.deferred.insert(stored.id.clone(), (key, stored));
            return false;
        }
        self.by_entry.insert(key, stored);
        true
    }

    /// Holds a task withdrawn from the queue to be cancelled (its entry deleted).
    pub(super) fn hold_withdrawn(&mut self, entry: &str, stored: Stored) -> bool {
        let held = self.hold(entry, stored);
        if held {
            self.withdrawn.insert(EntryId::from(entry));
        }
        held
    }

    /// The entry task `id` is held under.
    pub(super) fn entry_of(&self, id: &str) -> Option<EntryId> {
        self.by_entry.iter().find(|(_, s)| s.id == id).map(|(e, _)| e.clone())
    }

    pub(super) fn holds(&self, entry: &EntryId) -> bool {
        self.by_entry.contains_key(entry) || self.deferred.values().any(|(e, _)| e == entry)
    }

    /// Whether `entry` is held and handed out (not deferred).
    pub(super) fn holds_entry(&self, entry: &EntryId) -> bool {
        self.by_entry.contains_key(entry)
    }

    /// Whether an entry of task `id` is held (so the engine checked its result when it was
    /// delivered).
    pub(super) fn holds_task(&self, id: &str) -> bool {
        self.by_entry.values().any(|s| s.id == id)
    }

    /// An ending op for `entry` was staged: it is not renewed any more.
    pub(super) fn ending(&mut self, entry: &EntryId) {
        self.ending.insert(entry.clone());
    }

    /// An ending op failed and waits to be tried again: the entry is still ours to renew.
    pub(super) fn not_ending(&mut self, entry: &EntryId) {
        self.ending.remove(entry);
    }

    /// Lets `entry` go; returns the claim of its task's deferred entry, now to hand out.
    pub(super) fn release(&mut self, entry: &EntryId) -> Option<Claim> {
        self.ending.remove(entry);
        self.withdrawn.remove(entry);
        let stored = self.by_entry.remove(entry)?;
        let (next, s) = self.deferred.remove(&stored.id)?;
        let c = claim(&next.lossy(), &s.id);
        self.by_entry.insert(next, s);
        Some(c)
    }

    /// Every entry held and not ending: what a renewal covers.
    pub(super) fn renewable(&self) -> Vec<String> {
        let held = self.by_entry.keys().filter(|e| !self.ending.contains(*e) && !self.withdrawn.contains(*e));
        held.chain(self.deferred.values().map(|(e, _)| e)).map(|e| e.lossy().into_owned()).collect()
    }

    /// Forgets an entry the engine says is gone; returns whether it was one the loop runs.
    pub(super) fn forget(&mut self, entry: &EntryId) -> bool {
        if let Some(id) = self.deferred.iter().find(|(_, (e, _))| e == entry).map(|(id, _)| id.clone()) {
            self.deferred.remove(&id);
            return false;
        }
        self.by_entry.contains_key(entry) && !self.ending.contains(entry)
    }

    /// A held task read back and validated.
    #[allow(clippy::result_large_err)]
    pub(super) fn load(&self, claim: &Claim, max_bytes: u64, worker: &str) -> Result<Loaded, Rejected> {
        let Some(s) = self.by_entry.get(&claim.key) else {
            let why = Invalid::Unreadable(format!("entry {} is not held by this host", claim.key));
            return Err(rejected(why, &claim.source.lossy(), b""));
        };
        let size = s.doc.len() as u64;
        if size > max_bytes {
            return Err(rejected(Invalid::TooLarge { size, max: max_bytes }, &s.id, b""));
        }
        let bytes = s.bytes();
        match Task::parse(&bytes, &s.id, worker) {
            Ok(task) => {
                let ms = u64::try_from(s.queued_at_ms).unwrap_or(0);
                Ok(Loaded { task, queued_at: UNIX_EPOCH + Duration::from_millis(ms) })
            }
            Err(why) => Err(rejected(why, &s.id, &s.doc)),
        }
    }
}

/// The rejection of what is not a valid task; the engine keeps the document, so no original
/// is kept beside the dead letter.
fn rejected(why: Invalid, id: &str, bytes: &[u8]) -> Rejected {
    let doc = serde_json::from_slice::<Value>(bytes).ok().filter(Value::is_object);
    let preview = doc.is_none().then(|| {
        let cut = &bytes[..bytes.len().min(4096)];
        String::from_utf8_lossy(cut).into_owned()
    });
    Rejected { why, fallback_id: Some(id.to_owned()), doc, preview, keep_original: false, unfinished: None }
}

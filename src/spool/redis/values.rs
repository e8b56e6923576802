//! Reading the replies of plain commands (`XINFO`, `XRANGE`, `GET`, …), whichever protocol
//! shape they come in (RESP2 arrays, RESP3 maps): a shape that does not fit is `None`, never
//! a guess.

use redis::Value;

/// Text of a string reply.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Bytes of a string reply; `None` for a nil.
pub(crate) fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

/// The items of an array (or of a map, flattened to key, value, …).
pub(crate) fn items(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a.clone()),
        Value::Map(m) => Some(m.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect()),
        _ => None,
    }
}

/// The value of `name` in a flat `k1, v1, k2, v2, …` reply.
pub(crate) fn field(pairs: &[Value], name: &str) -> Option<Value> {
    pairs.chunks(2).find(|kv| text(&kv[0]).as_deref() == Some(name)).and_then(|kv| kv.get(1).cloned())
}

/// `XINFO GROUPS`: the `last-delivered-id` of `group`.
pub(crate) fn last_delivered(groups: &Value, group: &str) -> Option<String> {
    items(groups)?.iter().filter_map(items).find_map(|g| {
        (field(&g, "name").and_then(|n| text(&n)).as_deref() == Some(group))
            .then(|| field(&g, "last-delivered-id").and_then(|v| text(&v)))
            .flatten()
    })
}

/// One stream entry: its id and its fields.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StreamEntry {
    pub(crate) id: String,
    pub(crate) fields: Vec<Value>,
}

impl StreamEntry {
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        field(&self.fields, name).and_then(|v| text(&v))
    }

    /// The milliseconds part of its id: the engine's time when it was added.
    pub(crate) fn ms(&self) -> i64 {
        self.id.split('-').next().and_then(|m| m.parse().ok()).unwrap_or(0)
    }
}

/// The entries of an `XRANGE` reply.
pub(crate) fn entries(v: &Value) -> Option<Vec<StreamEntry>> {
    items(v)?
        .iter()
        .map(|e| {
            let e = items(e)?;
            Some(StreamEntry { id: text(e.first()?)?, fields: items(e.get(1)?).unwrap_or_default() })
        })
        .collect()
}

/// The entries of an `XREAD`/`XREADGROUP` reply of one stream (none for a nil reply).
pub(crate) fn read_entries(v: &Value) -> Option<Vec<StreamEntry>> {
    if matches!(v, Value::Nil) {
        return Some(Vec::new());
    }
    let streams = items(v)?;
    // RESP2: [[name, entries]]; RESP3: {name: entries}, flattened to [name, entries].
    let entries_of = match streams.first()? {
        Value::Array(pair) => pair.get(1)?.clone(),
        _ => streams.get(1)?.clone(),
    };
    entries(&entries_of)
}

//! The input rule of the audit log: an audit event, its metadata included.

use super::fields::{action, optional_text, purpose, storable};
use super::{Rule, invalid};
use credo_ports::AuditEvent;
use credo_ports::audit::{MAX_METADATA_BYTES, MAX_METADATA_DEPTH};
use serde_json::{Map, Value};

/// An audit event: `occurred_at` storable; a valid action; optional texts; a valid purpose if
/// any; metadata nested at most [`MAX_METADATA_DEPTH`] levels (the object itself is level 1),
/// at most [`MAX_METADATA_BYTES`] as compact JSON, and no NUL in any key or string.
pub(crate) fn audit_event(e: &AuditEvent) -> Rule {
    storable("occurred_at", e.occurred_at)?;
    action(&e.action)?;
    optional_text("actor", e.actor.as_deref())?;
    if let Some(p) = &e.purpose {
        purpose(p)?;
    }
    optional_text("decision", e.decision.as_deref())?;
    optional_text("reason", e.reason.as_deref())?;
    optional_text("request_id", e.request_id.as_deref())?;
    // Depth first: the checks below recurse, and only through an object this shallow.
    for v in e.metadata.values() {
        if nests_deeper_than(v, MAX_METADATA_DEPTH - 1) {
            return invalid("metadata", "nested too deep");
        }
    }
    let size = serde_json::to_vec(&e.metadata).map_or(usize::MAX, |json| json.len());
    if size > MAX_METADATA_BYTES {
        return invalid("metadata", format!("{size} bytes as JSON"));
    }
    if object_has_nul(&e.metadata) {
        return invalid("metadata", "NUL character");
    }
    Ok(())
}

/// True when `v` is more than `levels` arrays or objects deep, counting itself (a scalar is 0
/// deep). Recurses no further than `levels + 1` calls.
pub(super) fn nests_deeper_than(v: &Value, levels: usize) -> bool {
    let children: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return false,
    };
    if levels == 0 {
        return true;
    }
    children
        .into_iter()
        .any(|child| nests_deeper_than(child, levels - 1))
}

fn object_has_nul(o: &Map<String, Value>) -> bool {
    o.iter().any(|(k, v)| k.contains('\0') || value_has_nul(v))
}

fn value_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(value_has_nul),
        Value::Object(o) => object_has_nul(o),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

//! The rules of single fields: free text, storable instants, consent purposes, audit actions
//! and page requests.

use super::{Rule, invalid};
use credo_ports::page::MAX_PAGE_SIZE;
use credo_ports::validate::{MAX_PURPOSE_LEN, MAX_TEXT_LEN};
use credo_ports::{PageRequest, Timestamp};

/// Longest audit action, in bytes, as documented on `credo_ports::validate::action`.
const MAX_ACTION_LEN: usize = 128;

/// A required free-text field: not empty or blank (only whitespace), at most
/// [`MAX_TEXT_LEN`] bytes, and no control character (NUL included) anywhere.
pub(crate) fn text(field: &'static str, value: &str) -> Rule {
    if value.trim().is_empty() {
        return invalid(field, "empty or only whitespace");
    }
    if value.len() > MAX_TEXT_LEN {
        return invalid(
            field,
            format!("{} bytes, more than {MAX_TEXT_LEN}", value.len()),
        );
    }
    for c in value.chars() {
        if c.is_control() {
            return invalid(field, format!("control character {c:?}"));
        }
    }
    Ok(())
}

/// An optional free-text field: absent is fine; present, the rules of [`text`] (a blank value
/// is refused: absent is spelled `None`).
pub(crate) fn optional_text(field: &'static str, value: Option<&str>) -> Rule {
    match value {
        None => Ok(()),
        Some(v) => text(field, v),
    }
}

/// A timestamp that is to be stored: inside `Timestamp::MIN ..= Timestamp::MAX` (years 0001
/// to 9999, the documented storable range).
pub(crate) fn storable(field: &'static str, t: Timestamp) -> Rule {
    if t < Timestamp::MIN || t > Timestamp::MAX {
        return invalid(field, "outside the storable range 0001..=9999");
    }
    Ok(())
}

/// A consent purpose: 1 to [`MAX_PURPOSE_LEN`] bytes, a lower-case ASCII letter first, then
/// only `a-z`, `0-9`, `_`, `.`, `:` and `-`.
pub(crate) fn purpose(value: &str) -> Rule {
    if value.is_empty() || value.len() > MAX_PURPOSE_LEN {
        return invalid("purpose", format!("must be 1..={MAX_PURPOSE_LEN} bytes"));
    }
    let first = value.chars().next().expect("not empty");
    if !first.is_ascii_lowercase() {
        return invalid("purpose", "must start with a-z");
    }
    for c in value.chars() {
        let allowed = c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c);
        if !allowed {
            return invalid("purpose", format!("character {c:?} not allowed"));
        }
    }
    Ok(())
}

/// An audit action: at most 128 bytes, at least two words separated by dots, each word a
/// lower-case ASCII letter followed by `a-z`, `0-9` or `_`.
pub(crate) fn action(value: &str) -> Rule {
    let bad = || invalid("action", "must be dot-separated lower-case words, e.g. a.b");
    if value.is_empty() || value.len() > MAX_ACTION_LEN || !value.contains('.') {
        return bad();
    }
    for word in value.split('.') {
        let mut chars = word.chars();
        match chars.next() {
            Some(c) if c.is_ascii_lowercase() => {}
            _ => return bad(),
        }
        for c in chars {
            if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return bad();
            }
        }
    }
    Ok(())
}

/// A page request: 1 to [`MAX_PAGE_SIZE`] items (larger is refused, never capped).
pub(crate) fn page(page: &PageRequest) -> Rule {
    if page.limit == 0 || page.limit > MAX_PAGE_SIZE {
        return invalid("limit", format!("must be 1..={MAX_PAGE_SIZE}"));
    }
    Ok(())
}

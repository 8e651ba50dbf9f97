//! W3C trace context (`traceparent`) carried from the call that records an audit event, through
//! the outbox row and the Kafka message headers, to the consumer that materializes it.
//!
//! The context is task-scoped: a service (or its request layer) runs a request inside
//! [`in_trace`], and every event recorded in that task takes [`current`] when it is encoded
//! ([`crate::EncodedEvent::encode`]). Only the wire form is assumed, so a service that uses
//! OpenTelemetry passes its own span's context in and reads the consumer's back out.
//!
//! ```
//! use credo_ports::trace::{self, TraceParent};
//!
//! let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
//! assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(tp.sampled());
//! let seen = futures_util::FutureExt::now_or_never(trace::in_trace(tp, async { trace::current() }));
//! assert_eq!(seen, Some(Some(tp)));
//! assert_eq!(trace::current(), None);
//! ```

use std::fmt;
use std::future::Future;

/// Kafka header (and HTTP header) that carries the W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Kafka header with the trace id alone, for log searches that do not parse `traceparent`.
pub const TRACE_ID_HEADER: &str = "trace_id";
/// Kafka header with the time the event entered the outbox, in microseconds since the Unix
/// epoch: the consumer measures enqueue → materialized from it.
pub const ENQUEUED_AT_HEADER: &str = "enqueued_at_us";

/// A W3C `traceparent`: trace id, the id of the span that made the call, and trace flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// A context from its parts; `None` when an id is all zeros (invalid in W3C).
    #[must_use]
    pub fn new(trace_id: [u8; 16], parent_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && parent_id != [0; 8]).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace, sampled, with random ids.
    #[must_use]
    pub fn new_root() -> Self {
        let t = *uuid::Uuid::new_v4().as_bytes();
        Self {
            trace_id: t,
            parent_id: random_span_id(),
            flags: 1,
        }
    }

    /// The context of a new span in the same trace (same trace id and flags, new parent id).
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            parent_id: random_span_id(),
            ..*self
        }
    }

    /// Parses a `traceparent` header value as W3C Trace Context level 1 reads it: version
    /// `00` is exactly `00-<32 hex>-<16 hex>-<2 hex>`; a higher version may append fields
    /// after a `-`; version `ff`, upper-case hex and all-zero ids are refused. `None` for
    /// anything else: a bad header starts no trace and fails nothing.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 55 {
            return None;
        }
        let version = hex_bytes::<1>(&b[0..2])?[0];
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        Self::new(
            hex_bytes(&b[3..35])?,
            hex_bytes(&b[36..52])?,
            hex_bytes::<1>(&b[53..55])?[0],
        )
    }

    /// The trace id in lower-case hex (32 characters).
    #[must_use]
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The parent (calling span) id in lower-case hex (16 characters).
    #[must_use]
    pub fn parent_id(&self) -> String {
        hex(&self.parent_id)
    }

    /// Whether the caller sampled the trace (flag bit 0).
    #[must_use]
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

impl fmt::Display for TraceParent {
    /// The header value, version `00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.parent_id(),
            self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

fn random_span_id() -> [u8; 8] {
    loop {
        let b = uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap();
        if b != [0; 8] {
            return b;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `N` bytes from `2N` lower-case hex digits.
fn hex_bytes<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// Runs `f` with `tp` as the [`current`] trace context of the task.
pub async fn in_trace<F: Future>(tp: TraceParent, f: F) -> F::Output {
    CURRENT.scope(tp, f).await
}

/// The trace context of the running task, if it runs inside [`in_trace`].
#[must_use]
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|tp| *tp).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn display_then_parse_is_identity(t in any::<[u8; 16]>(), p in any::<[u8; 8]>(), f in any::<u8>()) {
            match TraceParent::new(t, p, f) {
                Some(tp) => prop_assert_eq!(TraceParent::parse(&tp.to_string()), Some(tp)),
                None => prop_assert!(t == [0; 16] || p == [0; 8]),
            }
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            if let Some(tp) = TraceParent::parse(&s) {
                prop_assert_eq!(&s[3..52], &tp.to_string()[3..52]);
            }
        }
    }

    #[test]
    fn parse_refuses_what_w3c_refuses() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(TraceParent::parse(good).is_some());
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may append fields; the first four are read.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what";
        assert_eq!(
            TraceParent::parse(v1).map(|t| t.to_string()),
            Some(good.to_string())
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.parent_id(), root.parent_id());
        assert!(child.sampled());
    }

    #[test]
    fn headers_written_by_the_relay_are_read_back_by_the_consumer() {
        let event = crate::AuditEvent::new(
            crate::TenantId::new(),
            crate::Timestamp::from_micros(1),
            crate::AuditCategory::Security,
            "auth.login",
        );
        let tp = TraceParent::new_root();
        let mut encoded = futures_util::FutureExt::now_or_never(in_trace(tp, async {
            crate::EncodedEvent::encode(&event)
        }))
        .unwrap();
        assert_eq!(
            encoded.traceparent,
            Some(tp),
            "encode takes the task's context"
        );
        encoded.enqueued_at = Some(crate::Timestamp::from_micros(-5));
        let message = crate::SourceMessage {
            partition: 0,
            offset: 0,
            key: None,
            headers: encoded
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_string(), Some(v.into_bytes())))
                .collect(),
            payload: None,
            timestamp: None,
        };
        assert_eq!(message.traceparent(), Some(tp));
        assert_eq!(message.enqueued_at(), encoded.enqueued_at);
        let bad = crate::SourceMessage {
            headers: vec![
                (TRACEPARENT_HEADER.into(), Some(b"00-zz".to_vec())),
                (ENQUEUED_AT_HEADER.into(), Some(vec![0xff])),
            ],
            ..message
        };
        assert_eq!((bad.traceparent(), bad.enqueued_at()), (None, None));
    }

    #[tokio::test]
    async fn current_is_scoped_to_the_task() {
        let tp = TraceParent::new_root();
        assert_eq!(current(), None);
        let (inside, spawned) = in_trace(tp, async {
            let spawned = tokio::spawn(async { current() }).await.unwrap();
            (current(), spawned)
        })
        .await;
        assert_eq!(inside, Some(tp));
        assert_eq!(spawned, None, "a spawned task does not inherit the context");
        assert_eq!(current(), None);
    }
}

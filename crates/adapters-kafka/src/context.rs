//! [`BrokerErrors`]: the client context that remembers why the brokers could not be reached.

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use std::time::Instant;

/// The client context of every client of the adapter (the source's consumer wraps it in its own):
/// keeps the last error librdkafka reported about its brokers (a refused TLS handshake, a
/// failed authentication, a refused connection), with the configuration's secrets scrubbed,
/// and logs it. librdkafka reports these only here: a publish that then times out says just
/// "Message timed out", so [`BrokerErrors::explain`] adds the reason.
#[derive(Clone, Default)]
pub(crate) struct BrokerErrors {
    last: Arc<parking_lot::Mutex<Option<(Instant, String)>>>,
    secrets: Arc<Vec<String>>,
}

impl BrokerErrors {
    /// A context whose texts never hold any of `secrets`.
    pub(crate) fn new(secrets: Vec<String>) -> Self {
        Self {
            last: Arc::default(),
            secrets: Arc::new(secrets),
        }
    }

    /// `what`, followed by the last broker error and its age when there is one, marked `TLS`
    /// when OpenSSL reported it (librdkafka says "SSL").
    pub(crate) fn explain(&self, what: String) -> String {
        match &*self.last.lock() {
            Some((at, why)) => format!(
                "{what}; the last broker error{}, {:.1} s ago: {why}",
                if why.contains("SSL") { " (TLS)" } else { "" },
                at.elapsed().as_secs_f64()
            ),
            None => what,
        }
    }

    /// Notes an error (what [`ClientContext::error`] does, callable by the tests). "All
    /// brokers are down" follows every broker's own error and says less: it does not replace
    /// one.
    pub(crate) fn note(&self, error: &KafkaError, reason: &str) {
        let reason = credo_ports::redact::scrub(reason, &self.secrets);
        tracing::warn!(error = %error, reason = %reason, "kafka: client error");
        let summary = error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown);
        let mut last = self.last.lock();
        if !summary || last.is_none() {
            *last = Some((Instant::now(), reason));
        }
    }

    /// A broker or transport error while `doing` something, as [`crate::kafka_err`] words it,
    /// followed by the last broker error ([`explain`](Self::explain)).
    pub(crate) fn unavailable(&self, doing: &str, e: KafkaError) -> credo_ports::StoreError {
        credo_ports::StoreError::Unavailable(credo_ports::Cause::with_source(
            self.explain(format!("kafka: {doing}: {e}")),
            e,
        ))
    }
}

impl ClientContext for BrokerErrors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.note(&error, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_explains_a_failure_without_its_secrets() {
        let c = BrokerErrors::new(vec!["hunter2".into()]);
        assert_eq!(c.explain("timed out".into()), "timed out");
        let e = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        c.note(&e, "ssl://b:9093/bootstrap: SSL handshake failed");
        c.note(
            &e,
            "sasl://b:9093: authentication failed for password hunter2",
        );
        let down = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        c.note(&down, "1/1 brokers are down");
        let text = c.explain("timed out".into());
        assert!(
            text.starts_with("timed out; the last broker error, 0.0 s ago: "),
            "{text}"
        );
        assert!(
            text.ends_with("authentication failed for password ***"),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
        // An OpenSSL error is marked TLS.
        c.note(
            &e,
            "ssl://b:9093/bootstrap: SSL routines::certificate verify failed",
        );
        let text = c.explain("timed out".into());
        assert!(
            text.starts_with("timed out; the last broker error (TLS), 0.0 s ago: ssl://"),
            "{text}"
        );
        // Alone, "all brokers down" is still a reason.
        let c = BrokerErrors::default();
        c.note(&down, "1/1 brokers are down");
        assert!(c.explain("x".into()).ends_with("1/1 brokers are down"));
    }
}

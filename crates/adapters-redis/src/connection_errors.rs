//! [`ConnectionErrors`]: why the pool cannot reach Redis, for the errors of the calls that fail
//! meanwhile.
//!
//! While fred reconnects in the background (a handshake refused after a certificate rotation,
//! a wrong password after a rotation, a server down), the calls only time out: "Request timed
//! out" says nothing of why. fred reports the reason of each failed connection on the
//! client's error channel; this keeps the last one, scrubbed of the URL's secrets, logs it when
//! it changes, and adds it with its age to the stores' `Unavailable` errors (as the Kafka
//! adapter's `BrokerErrors` does for librdkafka) until a client connects again.

use credo_ports::redact::Secrets;
use credo_ports::{Cause, StoreError};
use fred::clients::Pool;
use fred::prelude::*;
use std::sync::Arc;
use std::time::Instant;

/// The last connection error of a pool (see the module's documentation).
#[derive(Clone, Default)]
pub(crate) struct ConnectionErrors {
    last: Arc<parking_lot::Mutex<Option<(Instant, String)>>>,
    secrets: Secrets,
}

impl ConnectionErrors {
    /// Listens to the error channel of every client of `pool` (each listener ends with its
    /// client); `url` (redacted) names the server in TLS refusals.
    pub(crate) fn listen(pool: &Pool, url: String, secrets: Secrets) -> Self {
        let errors = Self {
            last: Arc::default(),
            secrets,
        };
        for client in pool.clients() {
            let (mut failed, mut connected) = (client.error_rx(), client.reconnect_rx());
            let (errors, url) = (errors.clone(), url.clone());
            tokio::spawn(async move {
                use tokio::sync::broadcast::error::RecvError;
                loop {
                    tokio::select! {
                        e = failed.recv() => match e {
                            Ok((e, _)) => errors.note(&e, &url),
                            Err(RecvError::Lagged(_)) => {}
                            Err(RecvError::Closed) => break,
                        },
                        c = connected.recv() => match c {
                            // Connected again: the last error explains nothing any more.
                            Ok(_) => errors.clear(),
                            Err(RecvError::Lagged(_)) => {}
                            Err(RecvError::Closed) => break,
                        },
                    }
                }
            });
        }
        errors
    }

    fn clear(&self) {
        if self.last.lock().take().is_some() {
            tracing::info!("redis: connected again");
        }
    }

    /// Keeps `e` as the last connection error; logs it when its text is new.
    fn note(&self, e: &fred::error::Error, url: &str) {
        let text = if crate::is_tls_refusal(e) {
            crate::tls_refusal_text(e, url)
        } else {
            format!("redis: {e}")
        };
        let text = self.secrets.scrub(&text);
        let mut last = self.last.lock();
        if last.as_ref().is_none_or(|(_, before)| *before != text) {
            tracing::warn!(error = %text, "redis: connection failed; the pool keeps reconnecting");
        }
        *last = Some((Instant::now(), text));
    }

    /// `e` as [`crate::map_err`] maps it, an `Unavailable` followed by the last connection
    /// error and its age when there is one.
    pub(crate) fn map(&self, e: fred::error::Error) -> StoreError {
        match crate::map_err(e.clone()) {
            StoreError::Unavailable(cause) => match &*self.last.lock() {
                Some((at, why)) => StoreError::Unavailable(Cause::with_source(
                    format!(
                        "{}; the last connection error, {:.1} s ago: {why}",
                        cause.message(),
                        at.elapsed().as_secs_f64()
                    ),
                    e,
                )),
                None => StoreError::Unavailable(cause),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::error::{Error, ErrorKind};

    #[test]
    fn the_last_connection_error_explains_a_failed_call_until_connected_again() {
        let errors = ConnectionErrors {
            last: Arc::default(),
            secrets: Secrets::new(vec!["hunter2".into()]),
        };
        let timeout = || Error::new(ErrorKind::Timeout, "Request timed out.");
        assert_eq!(
            errors.map(timeout()).to_string(),
            "backend unavailable: redis: Timeout Error: Request timed out."
        );
        errors.note(
            &Error::new(ErrorKind::Auth, "WRONGPASS for redis://u:hunter2@h"),
            "redis://u:***@h",
        );
        let text = errors.map(timeout()).to_string();
        assert!(
            text.contains("; the last connection error, 0.0 s ago: redis: "),
            "{text}"
        );
        assert!(text.contains("WRONGPASS for redis://u:***@h"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        // Not for what is not the connection's fault.
        let corrupt = errors.map(Error::new(ErrorKind::Parse, "bad"));
        assert!(matches!(corrupt, StoreError::Corrupt(_)), "{corrupt:?}");
        assert!(!corrupt.to_string().contains("connection error"));
        errors.clear();
        assert!(
            !errors
                .map(timeout())
                .to_string()
                .contains("connection error")
        );
    }
}

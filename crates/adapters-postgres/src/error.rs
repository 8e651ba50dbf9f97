use credo_ports::{Cause, StoreError};

/// Maps a driver error into the [`StoreError`] every backend shares.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let msg = db.message().to_string();
            match code.as_str() {
                "23505" => StoreError::Conflict(format!(
                    "unique constraint {} violated",
                    db.constraint().unwrap_or("?")
                )),
                // data exceptions (bad encoding, out-of-range values): the input, not the server
                c if c.starts_with("22") => StoreError::invalid("value", msg),
                // connection, resources, operator intervention (incl. statement_timeout),
                // serialization and deadlock failures: retry later
                c if c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57")
                    || c == "40001"
                    || c == "40P01" =>
                {
                    StoreError::Unavailable(Cause::with_source(format!("postgres {c}: {msg}"), e))
                }
                c => StoreError::Unavailable(Cause::with_source(
                    format!("postgres error {c}: {msg}"),
                    e,
                )),
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => {
            StoreError::Corrupt(Cause::with_source(e.to_string(), e))
        }
        sqlx::Error::PoolTimedOut => StoreError::Unavailable(Cause::with_source(
            "postgres: no pooled connection within the acquire timeout",
            e,
        )),
        // A refused TLS handshake (certificate not trusted, not valid for the host name, client
        // certificate missing or refused) reaches us as an I/O error: say that it was TLS.
        sqlx::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>()) =>
        {
            StoreError::Unavailable(Cause::with_source(format!("postgres: TLS: {io}"), e))
        }
        _ => StoreError::Unavailable(Cause::with_source(format!("postgres: {e}"), e)),
    }
}

/// Maps a JSON decoding failure of a stored value.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A server error with a given SQLSTATE, as the driver hands it over.
    #[derive(Debug)]
    struct Server(&'static str);

    impl std::fmt::Display for Server {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "server error {}", self.0)
        }
    }

    impl std::error::Error for Server {}

    impl sqlx::error::DatabaseError for Server {
        fn message(&self) -> &str {
            "the server says no"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.0.into())
        }
        fn constraint(&self) -> Option<&str> {
            Some("users_email_key")
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn mapped(code: &'static str) -> StoreError {
        map_err(sqlx::Error::Database(Box::new(Server(code))))
    }

    /// Every SQLSTATE class the adapter distinguishes lands on the kind a caller acts on: a
    /// duplicate is a conflict naming its constraint, bad data is the caller's input, and
    /// anything transient (connection, resources, operator intervention such as
    /// `statement_timeout`, serialization failure, deadlock) is worth a retry.
    #[test]
    fn server_errors_map_to_actionable_kinds() {
        match mapped("23505") {
            StoreError::Conflict(why) => assert!(why.contains("users_email_key"), "{why}"),
            other => panic!("23505: {other:?}"),
        }
        for code in ["22001", "22P02", "22003"] {
            match mapped(code) {
                StoreError::InvalidInput { field, reason } => {
                    assert_eq!(field, "value");
                    assert_eq!(reason, "the server says no");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        for code in ["08006", "53300", "57014", "57P01", "40001", "40P01"] {
            match mapped(code) {
                StoreError::Unavailable(why) => {
                    assert!(why.starts_with(&format!("postgres {code}:")), "{why}")
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        for code in ["42P01", "XX000", "40002"] {
            match mapped(code) {
                StoreError::Unavailable(why) => {
                    assert!(why.starts_with(&format!("postgres error {code}:")), "{why}")
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    /// A refused TLS handshake, which sqlx hands over as an I/O error, says TLS; any other I/O
    /// error does not.
    #[test]
    fn a_refused_tls_handshake_says_tls() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        match map_err(sqlx::Error::Io(refused)) {
            StoreError::Unavailable(why) => assert_eq!(
                why.to_string(),
                "postgres: TLS: invalid peer certificate: UnknownIssuer"
            ),
            other => panic!("{other:?}"),
        }
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        match map_err(sqlx::Error::Io(reset)) {
            StoreError::Unavailable(why) => assert!(!why.contains("TLS"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// A value the adapter cannot read back is corrupt; an empty pool is a retry.
    #[test]
    fn client_errors_map_to_actionable_kinds() {
        let decode = sqlx::Error::Decode("bad bytes".into());
        assert!(matches!(map_err(decode), StoreError::Corrupt(_)));
        let missing = sqlx::Error::ColumnNotFound("status".into());
        assert!(matches!(map_err(missing), StoreError::Corrupt(_)));
        match map_err(sqlx::Error::PoolTimedOut) {
            StoreError::Unavailable(why) => assert!(why.contains("acquire timeout"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            map_err(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        assert!(
            matches!(corrupt("metadata", "eof"), StoreError::Corrupt(w) if w == "metadata: eof")
        );
    }
}

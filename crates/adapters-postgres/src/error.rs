use credo_ports::StoreError;

/// Maps a driver error into the [`StoreError`] every backend shares.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
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
                    StoreError::Unavailable(format!("postgres {c}: {msg}"))
                }
                c => StoreError::Unavailable(format!("postgres error {c}: {msg}")),
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        sqlx::Error::PoolTimedOut => StoreError::Unavailable(
            "postgres: no pooled connection within the acquire timeout".into(),
        ),
        other => StoreError::Unavailable(format!("postgres: {other}")),
    }
}

/// Maps a JSON decoding failure of a stored value.
pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

//! A service wired by the facade: `cargo run -p credo-storage --example service`.
//!
//! With no configuration it runs on the in-memory default and needs no server. Set
//! `CREDO_CONFIG_FILE` and/or `CREDO_*` variables (see `StorageConfig::from_env`) to move to
//! PostgreSQL, Redis and Kafka; build with `--features postgres,redis,kafka` for those.
//! Listens on `CREDO_HTTP_ADDR` (default `127.0.0.1:8080`); Ctrl-C or SIGTERM shuts down
//! gracefully (relay and consumer finish their batches within the configured bound).

mod http;

use credo_storage::{Storage, StorageConfig, SystemClock};
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = StorageConfig::from_env()?;
    let metrics = http::exporter().install_recorder()?;
    let storage = Storage::connect(&config).await?;
    let app = Arc::new(http::App {
        readiness: storage.readiness(),
        started: Instant::now(),
        metrics: Some(metrics),
        clock: Arc::new(SystemClock),
    });
    let addr = std::env::var("CREDO_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "credo-storage example service on http://{} ({:?})",
        listener.local_addr()?,
        config.backends
    );
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let report = storage.shutdown().await;
    eprintln!("shut down: {report:?}");
    Ok(())
}

/// Ctrl-C, or SIGTERM (what orchestrators send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! A service wired by the facade: `cargo run -p credo-storage --example service`.
//!
//! With no configuration it runs on the in-memory default and needs no server. Set
//! `CREDO_CONFIG_FILE` and/or `CREDO_*` variables (see `StorageConfig::from_env`) to move to
//! PostgreSQL, Redis and Kafka; build with `--features postgres,redis,kafka` for those.
//! Listens on `CREDO_HTTP_ADDR` (default `127.0.0.1:8080`); Ctrl-C or SIGTERM shuts down
//! gracefully (relay and consumer finish their batches within the configured bound). Logs
//! and spans go to stderr, filtered by `RUST_LOG` (default `info`; e.g.
//! `RUST_LOG=info,credo.store=off` drops the per-call spans' context).

mod http;

use credo_storage::{Storage, StorageConfig, SystemClock};
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
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
    tracing::info!(
        addr = %listener.local_addr()?,
        backends = ?config.backends,
        "credo-storage example service listening"
    );
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let report = storage.shutdown().await;
    tracing::info!(?report, "shut down");
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

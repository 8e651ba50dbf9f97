//! The log lines a piece of code writes, for tests of what an operator reads.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Captures every `tracing` event at `level` or above emitted on this thread while it lives
/// (a thread-local subscriber: run the test on a `current_thread` runtime so that every event
/// of the code under test is emitted here).
///
/// ```
/// let logs = credo_testkit::CapturedLogs::start(tracing::Level::INFO);
/// tracing::info!(updated = 2, "done");
/// assert!(logs.text().contains("updated=2"));
/// ```
pub struct CapturedLogs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl CapturedLogs {
    /// Starts capturing on the current thread.
    #[must_use = "capturing stops when the returned value is dropped"]
    pub fn start(level: tracing::Level) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        Self { buf, _guard }
    }

    /// Everything captured so far, one line per event.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

//! The log lines a piece of code writes, for tests of what an operator reads.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};
use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// Captures every `tracing` event at `level` or above emitted on this thread while it lives
/// (run the test on a `current_thread` runtime so that every event of the code under test is
/// emitted here).
///
/// One process-wide subscriber, installed on first use, writes each event to the capture of
/// the thread that emitted it. Thread-local subscribers (`set_default`) are not used: with
/// several in one test binary, tracing's cached callsite interest can leave one of them
/// without an event it should have seen.
///
/// ```
/// let logs = credo_testkit::CapturedLogs::start(tracing::Level::INFO);
/// tracing::info!(updated = 2, "done");
/// tracing::debug!("below the level");
/// assert!(logs.text().contains("updated=2"));
/// assert!(!logs.text().contains("below the level"));
/// ```
pub struct CapturedLogs {
    buf: Arc<Mutex<Vec<u8>>>,
    previous: Option<Capture>,
}

#[derive(Clone)]
struct Capture {
    level: tracing::Level,
    buf: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

impl CapturedLogs {
    /// Starts capturing on the current thread (a capture started inside another one hides it
    /// until it ends).
    ///
    /// # Panics
    /// When the process already has another global `tracing` subscriber.
    #[must_use = "capturing stops when the returned value is dropped"]
    pub fn start(level: tracing::Level) -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(ToCapture)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("CapturedLogs needs to be the process's tracing subscriber");
        });
        let buf = Arc::new(Mutex::new(Vec::new()));
        let previous = CAPTURE.with(|c| {
            c.borrow_mut().replace(Capture {
                level,
                buf: buf.clone(),
            })
        });
        Self { buf, previous }
    }

    /// Everything captured so far, one line per event.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

impl Drop for CapturedLogs {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CAPTURE.with(|c| *c.borrow_mut() = previous);
    }
}

/// Writes to the emitting thread's capture, or nowhere.
struct ToCapture;

impl<'a> MakeWriter<'a> for ToCapture {
    type Writer = Sink;

    fn make_writer(&'a self) -> Sink {
        Sink(None)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Sink {
        Sink(CAPTURE.with(|c| {
            c.borrow()
                .as_ref()
                .filter(|capture| *meta.level() <= capture.level)
                .map(|capture| capture.buf.clone())
        }))
    }
}

struct Sink(Option<Arc<Mutex<Vec<u8>>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(buf) = &self.0 {
            buf.lock().unwrap().extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

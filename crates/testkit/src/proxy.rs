use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards connections on 127.0.0.1:[`port`](Proxy::port) to an upstream port. [`cut`]
/// closes every connection and refuses new ones until [`restore`].
///
/// [`cut`]: Proxy::cut
/// [`restore`]: Proxy::restore
pub struct Proxy {
    port: u16,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Serves `listener`, forwarding to 127.0.0.1:`upstream`.
    #[must_use = "the proxy stops when the returned value is dropped"]
    pub fn start(listener: TcpListener, upstream: u16) -> Proxy {
        let port = listener.local_addr().expect("bound listener").port();
        let (cut, is_cut) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut is_cut = is_cut.clone();
                if *is_cut.borrow() {
                    continue; // dropped: closed at once
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    // Without this, Nagle and delayed ACKs add 40 ms to small requests.
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = is_cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Proxy { port, cut, task }
    }

    /// The port clients connect to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A tansu broker process of a test's own (memory storage), listening on a free port and
/// advertising its [`Proxy`]'s, so every client connection, the ones metadata points to
/// included, goes through the proxy. Killed on drop.
pub struct PrivateTansu {
    child: Child,
    /// The proxy in front of the broker.
    pub proxy: Proxy,
}

impl PrivateTansu {
    /// Starts the broker from `CREDO_TEST_TANSU_BIN` (exported by `cargo xtask services env`),
    /// or `None` (skipped) when that is not set.
    #[must_use = "the broker is stopped when the returned value is dropped"]
    pub async fn start() -> Option<PrivateTansu> {
        let bin = crate::required("CREDO_TEST_TANSU_BIN")?;
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_port = proxy_listener.local_addr().unwrap().port();
        let port = crate::free_port();
        let child = spawn_tansu(&bin, port, &format!("127.0.0.1:{proxy_port}")).await;
        let proxy = Proxy::start(proxy_listener, port);
        Some(PrivateTansu { child, proxy })
    }

    /// `bootstrap.servers` for clients: the proxy's address.
    #[must_use]
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port())
    }
}

/// Starts the tansu broker `bin` (memory storage) on 127.0.0.1:`port`, advertising
/// `advertised` (`host:port`), and waits until it accepts connections.
///
/// # Panics
/// When it cannot start or does not listen within 20 s.
pub(crate) async fn spawn_tansu(bin: &str, port: u16, advertised: &str) -> Child {
    let child = Command::new(bin)
        .args(["broker", "--listener-url"])
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://{advertised}"))
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A Kafka listener speaking TLS: a TLS-terminating front in this process before a tansu
//! broker of the test's own (tansu has no TLS listener of its own), whose advertised address is
//! the front's, so every connection a client makes, the ones metadata points to included, is a
//! TLS connection that the client must verify.

use crate::{ClientAuth, TestPki};
use std::process::Child;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

/// A tansu broker behind a TLS front on `localhost:`[`port`](TlsTansu::port), with the
/// server certificate of a [`TestPki`] (valid for `localhost` only). Both stop on drop.
pub struct TlsTansu {
    child: Child,
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsTansu {
    /// Starts the broker from `CREDO_TEST_TANSU_BIN` (exported by `cargo xtask services env`)
    /// and the front, or `None` (skipped; a panic under `CREDO_TEST_REQUIRE=all`) when that is
    /// not set. With [`ClientAuth::Required`], a client without a certificate signed by the
    /// PKI's CA is refused in the handshake.
    ///
    /// # Panics
    /// When the broker does not listen within 20 s, or the PKI's files cannot be read.
    #[must_use = "the broker is stopped when the returned value is dropped"]
    pub async fn start(pki: &TestPki, auth: ClientAuth) -> Option<TlsTansu> {
        let bin = crate::required("CREDO_TEST_TANSU_BIN")?;
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = front.local_addr().unwrap().port();
        let upstream = crate::free_port();
        let advertised = format!("{}:{port}", crate::tls::SERVER_NAME);
        let child = crate::proxy::spawn_tansu(&bin, upstream, &advertised).await;
        let acceptor = TlsAcceptor::from(Arc::new(server_config(pki, auth)));
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = front.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = inbound.set_nodelay(true);
                    // A refused handshake just closes the connection, as a broker does.
                    let Ok(mut tls) = acceptor.accept(inbound).await else {
                        return;
                    };
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut outbound).await;
                });
            }
        });
        Some(TlsTansu { child, port, task })
    }

    /// The TLS port (on 127.0.0.1; the broker advertises it as `localhost`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `bootstrap.servers` naming `host` (`localhost` is the certificate's name, `127.0.0.1`
    /// a wrong one).
    #[must_use]
    pub fn brokers(&self, host: &str) -> String {
        format!("{host}:{}", self.port)
    }
}

impl Drop for TlsTansu {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_config(pki: &TestPki, auth: ClientAuth) -> ServerConfig {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match auth {
        ClientAuth::No => builder.with_no_client_auth(),
        ClientAuth::Required => {
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(&pki.ca_cert).unwrap() {
                roots.add(ca.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(certs, key).unwrap()
}

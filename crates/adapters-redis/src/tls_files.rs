//! TLS files read again when they change: the CA bundle (`tls_ca_file`) and the client
//! certificate and key (`tls_cert_file`, `tls_key_file`), so that a certificate rotated by the
//! platform (cert-manager, Vault) reaches the next connection without a restart, as
//! PostgreSQL's `sslrootcert`/`sslcert`/`sslkey` do.
//!
//! Every handshake looks at the files' metadata (a `stat` each); when it changed they are
//! loaded again. A load that fails (a file half-written, a certificate without its new key yet)
//! keeps the last good material, with a warning naming the file; the next change is tried
//! again. Files that are wrong at start are an invalid setting, as before.

use credo_ports::{StoreError, StoreResult};
use fred::rustls::client::ResolvesClientCert;
use fred::rustls::client::WebPkiServerVerifier;
use fred::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use fred::rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use fred::rustls::pki_types::pem::PemObject;
use fred::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use fred::rustls::sign::CertifiedKey;
use fred::rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// What identifies one version of a file: replaced (a rename: new inode), rewritten (new time)
/// or cut (new length). `None`: the file cannot be read now.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// Material loaded from `paths`, loaded again when one of them changes.
struct Reloading<T> {
    paths: Vec<PathBuf>,
    load: Box<dyn Fn() -> StoreResult<T> + Send + Sync>,
    state: parking_lot::Mutex<(Vec<Stamp>, Arc<T>)>,
}

impl<T> Reloading<T> {
    /// Loads once (an error is the setting's); later changes are loaded by [`Self::current`].
    fn new(
        paths: Vec<PathBuf>,
        load: impl Fn() -> StoreResult<T> + Send + Sync + 'static,
    ) -> StoreResult<Self> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let first = load()?;
        Ok(Self {
            paths,
            load: Box::new(load),
            state: parking_lot::Mutex::new((stamps, Arc::new(first))),
        })
    }

    /// The material of the files as they are now, or the last good one.
    fn current(&self) -> Arc<T> {
        let stamps: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
        let mut state = self.state.lock();
        if stamps != state.0 {
            state.0 = stamps;
            match (self.load)() {
                Ok(fresh) => {
                    tracing::info!(files = ?self.paths, "redis: TLS files changed; new connections use them");
                    state.1 = Arc::new(fresh);
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "redis: the changed TLS files cannot be used; new connections keep the last good ones"
                ),
            }
        }
        state.1.clone()
    }
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

/// The certificates of a PEM file; none, or one that does not parse, is an invalid `field`.
pub(crate) fn certificates(
    field: &'static str,
    path: &Path,
) -> StoreResult<Vec<CertificateDer<'static>>> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::invalid(field, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(StoreError::invalid(
            field,
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Ok(certs)
}

fn read(field: &'static str, path: &Path) -> StoreResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| StoreError::invalid(field, format!("{}: {e}", path.display())))
}

/// The server verifier of the CA bundle in `path` (rustls' WebPKI verifier: chain and host
/// name), rebuilt when the file changes.
#[derive(Debug)]
pub(crate) struct CaFile {
    chains: Reloading<Arc<WebPkiServerVerifier>>,
    /// The provider's signature algorithms, which check the handshake's signatures whatever the
    /// roots (as the WebPKI verifier itself does): those checks need not look at the file.
    signatures: WebPkiSupportedAlgorithms,
}

impl CaFile {
    pub(crate) fn new(path: &Path, provider: Arc<CryptoProvider>) -> StoreResult<Self> {
        let file = path.to_path_buf();
        let signatures = provider.signature_verification_algorithms;
        let load = move || {
            let mut roots = RootCertStore::empty();
            for cert in certificates("tls_ca_file", &file)? {
                roots.add(cert).map_err(|e| {
                    StoreError::invalid("tls_ca_file", format!("{}: {e}", file.display()))
                })?;
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| StoreError::invalid("tls_ca_file", format!("{}: {e}", file.display())))
        };
        Ok(Self {
            chains: Reloading::new(vec![path.to_path_buf()], load)?,
            signatures,
        })
    }
}

impl ServerCertVerifier for CaFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, fred::rustls::Error> {
        self.chains.current().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, fred::rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.signatures)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, fred::rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.signatures)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_schemes()
    }
}

/// The client certificate chain and key of two PEM files, loaded again when either changes
/// (a certificate whose key does not match yet keeps the last good pair).
#[derive(Debug)]
pub(crate) struct ClientCertFiles(Reloading<CertifiedKey>);

impl ClientCertFiles {
    pub(crate) fn new(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> StoreResult<Self> {
        let (cert_file, key_file) = (cert.to_path_buf(), key.to_path_buf());
        let load = move || {
            let chain = certificates("tls_cert_file", &cert_file)?;
            let pem = read("tls_key_file", &key_file)?;
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                StoreError::invalid("tls_key_file", format!("{}: {e}", key_file.display()))
            })?;
            CertifiedKey::from_der(chain, key, &provider)
                .map_err(|e| StoreError::invalid("tls_key_file", e.to_string()))
        };
        Ok(Self(Reloading::new(
            vec![cert.to_path_buf(), key.to_path_buf()],
            load,
        )?))
    }
}

impl ResolvesClientCert for ClientCertFiles {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        fred::rustls::ClientConfig::builder()
            .crypto_provider()
            .clone()
    }

    /// `to` replaced whole by a copy of `from`, as a platform rotates a mounted file.
    fn replace(from: &Path, to: &Path) {
        credo_testkit::replace_file(to, std::fs::read(from).unwrap());
    }

    /// A certificate replaced before its key (two files cannot change at once) is not used
    /// with the old key: the last good pair stays until the key follows, and a file cut short
    /// does not replace it either.
    #[test]
    fn a_client_pair_changes_only_when_both_files_match() {
        let old = credo_testkit::TempPki::new("credo-redis-reload-old", "c");
        let new = credo_testkit::TempPki::new("credo-redis-reload-new", "c");
        let dir = std::env::temp_dir().join(credo_testkit::unique_name("credo_redis_reload"));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("client.pem"), dir.join("client.key"));
        replace(&old.pki.client_cert, &cert);
        replace(&old.pki.client_key, &key);
        let files = ClientCertFiles::new(&cert, &key, provider()).unwrap();
        let served = |f: &ClientCertFiles| f.resolve(&[], &[]).unwrap().cert[0].clone();
        let first = served(&files);
        assert_eq!(first, certificates("c", &old.pki.client_cert).unwrap()[0]);

        replace(&new.pki.client_cert, &cert);
        assert_eq!(
            served(&files),
            first,
            "a certificate without its key was used"
        );
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nMIIE").unwrap();
        assert_eq!(served(&files), first, "a key cut short was used");
        replace(&new.pki.client_key, &key);
        assert_eq!(
            served(&files),
            certificates("c", &new.pki.client_cert).unwrap()[0]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A CA file that is empty or removed keeps the last good verifier; a valid one replaces it.
    #[test]
    fn a_ca_file_broken_on_the_way_keeps_the_last_good_one() {
        let old = credo_testkit::TempPki::new("credo-redis-reload-ca", "c");
        let dir = std::env::temp_dir().join(credo_testkit::unique_name("credo_redis_reload"));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        replace(&old.pki.ca_cert, &ca);
        let file = CaFile::new(&ca, provider()).unwrap();
        let before = file.chains.current();
        std::fs::write(&ca, "").unwrap();
        assert!(
            Arc::ptr_eq(&file.chains.current(), &before),
            "an empty file was used"
        );
        std::fs::remove_file(&ca).unwrap();
        assert!(
            Arc::ptr_eq(&file.chains.current(), &before),
            "a removed file was used"
        );
        replace(&old.pki.other_ca_cert, &ca);
        assert!(
            !Arc::ptr_eq(&file.chains.current(), &before),
            "a valid new file was not used"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! A throw-away public key infrastructure for the TLS tests, generated with `rcgen` on every
//! run (nothing is downloaded or kept): a CA, a server certificate it signed for the host name
//! `localhost` only (so connecting to `127.0.0.1` is a wrong host name), a client certificate
//! it signed (mutual TLS), and a second, unrelated CA that nobody trusts.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// PEM files of one throw-away PKI, in a directory of the caller's.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The CA certificate that signed the server and client certificates.
    pub ca_cert: PathBuf,
    /// The server certificate: subject alternative name `localhost` only (no IP address).
    pub server_cert: PathBuf,
    /// Its private key (mode 0600).
    pub server_key: PathBuf,
    /// A CA that signed nothing of ours: trusting it alone must refuse the server.
    pub other_ca_cert: PathBuf,
    /// A client certificate signed by the CA, common name [`TestPki::client_name`].
    pub client_cert: PathBuf,
    /// Its private key (mode 0600).
    pub client_key: PathBuf,
    /// The client certificate's common name (PostgreSQL's `cert` authentication maps it to
    /// the role of the same name).
    pub client_name: String,
}

/// The only host name the server certificate is valid for.
pub const SERVER_NAME: &str = "localhost";

impl TestPki {
    /// Generates the CA, the server and client certificates and the untrusted CA into `dir`
    /// (created if missing). `client_name` is the client certificate's common name.
    ///
    /// # Panics
    /// When a key cannot be generated or a file cannot be written (a broken test machine).
    #[must_use]
    pub fn generate(dir: &Path, client_name: &str) -> TestPki {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let ca = new_ca("credo-storage test CA");
        let other = new_ca("credo-storage untrusted test CA");

        let mut server = CertificateParams::new(vec![SERVER_NAME.to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAME);
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca).unwrap();

        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, client_name);
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &ca).unwrap();

        let pki = TestPki {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            other_ca_cert: dir.join("other-ca.crt"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            client_name: client_name.to_string(),
        };
        write(&pki.ca_cert, &ca.pem(), 0o644);
        write(&pki.other_ca_cert, &other.pem(), 0o644);
        write(&pki.server_cert, &server_cert.pem(), 0o644);
        write(&pki.server_key, &server_key.serialize_pem(), 0o600);
        write(&pki.client_cert, &client_cert.pem(), 0o644);
        write(&pki.client_key, &client_key.serialize_pem(), 0o600);
        pki
    }
}

/// A [`TestPki`] in a directory of its own under the system's temporary directory, removed
/// when this is dropped.
#[derive(Debug)]
pub struct TempPki {
    /// The PKI's files.
    pub pki: TestPki,
    dir: PathBuf,
}

impl TempPki {
    /// Generates a [`TestPki`] (client certificate common name `client_name`) into a new
    /// directory named after `prefix`.
    #[must_use]
    pub fn new(prefix: &str, client_name: &str) -> TempPki {
        let dir = std::env::temp_dir().join(crate::unique_name(prefix));
        let pki = TestPki::generate(&dir, client_name);
        TempPki { pki, dir }
    }
}

impl Drop for TempPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed CA that may sign certificates.
fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn write(path: &Path, pem: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, pem).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

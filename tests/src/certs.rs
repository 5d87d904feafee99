//! Test certificates made with rcgen: a CA that signs server and client certificates (valid
//! for localhost and 127.0.0.1, or expired), and a directory of them for the TLS suites.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};

/// A certificate authority that signs test certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// Writes `<name>.crt` and `<name>.key` for `cn`, valid for localhost and 127.0.0.1
    /// (expired when `expired`).
    pub fn issue(&self, dir: &Path, name: &str, cn: &str, expired: bool) -> (PathBuf, PathBuf) {
        let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            p.not_before = date_time_ymd(2020, 1, 1);
            p.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// Writes the CA's certificate (PEM) to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).unwrap();
    }
}

/// A directory with `ca.crt`, `server.*`, `client.*`, `expired.*` (all signed by [`Certs::ca`])
/// and `rogue.*` (signed by another CA).
pub struct Certs {
    /// The directory.
    pub dir: tempfile::TempDir,
    /// The CA of `ca.crt`, to issue more.
    pub ca: Ca,
}

impl Default for Certs {
    fn default() -> Self {
        Self::new()
    }
}

impl Certs {
    /// Makes the CA and the certificates.
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Vigil test CA");
        ca.write(&dir.path().join("ca.crt"));
        ca.issue(dir.path(), "server", "vigil-server", false);
        ca.issue(dir.path(), "client", "vigil-client", false);
        ca.issue(dir.path(), "expired", "vigil-expired", true);
        Ca::new("Rogue CA").issue(dir.path(), "rogue", "vigil-rogue", false);
        Certs { dir, ca }
    }

    /// The path of file `name` in the directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Node flags serving TLS on `tls_port` with these files.
    pub fn node_flags(&self, tls_port: u16) -> Vec<String> {
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            self.path("server.crt"),
            "--tls-key-file".into(),
            self.path("server.key"),
            "--tls-ca-cert-file".into(),
            self.path("ca.crt"),
        ]
    }

    /// The TLS certificate keys of a node's or a sentinel's file (the server certificate).
    pub fn config_keys(&self) -> String {
        format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_ca_cert_file = \"{}\"\n",
            self.path("server.crt"),
            self.path("server.key"),
            self.path("ca.crt")
        )
    }
}

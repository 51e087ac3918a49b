//! Test certificates: a private CA made with rcgen, and server
//! certificates it signs for `127.0.0.1` and `localhost`, written as PEM
//! files. Nothing is fetched; every test makes its own.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

/// A certificate authority for tests.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate, as a PEM file.
    pub certificate: PathBuf,
}

/// A server certificate and its key, as PEM files.
pub struct ServerCertificate {
    /// The certificate (then the CA's, as a chain).
    pub certificate: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// The certificate's DER, to compare with what a client is shown.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/NAME-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Cairn test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let certificate = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&certificate, issuer.pem()).unwrap();
        TestCa {
            issuer,
            certificate,
        }
    }

    /// A server certificate for `127.0.0.1` and `localhost` with the given
    /// serial number, written to `dir/NAME.crt` and `dir/NAME.key`.
    pub fn server_certificate(&self, dir: &Path, name: &str, serial: u64) -> ServerCertificate {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("cairn test server {name}"));
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let files = ServerCertificate {
            certificate: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            der: certificate.der().to_vec(),
        };
        std::fs::write(
            &files.certificate,
            format!("{}{}", certificate.pem(), self.issuer.pem()),
        )
        .unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

//! [`CaCertificate`]: a certificate authority the client trusts for
//! `https://` endpoints on top of the public roots (Mozilla's, compiled in
//! through `webpki-roots`) — how a client trusts a server whose
//! certificate a private CA signed.

use std::path::PathBuf;

use crate::error::{ClientError, Result};

/// One or more CA certificates in PEM form (a bundle may hold several),
/// trusted in addition to the public roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaCertificate {
    /// A PEM file, read when the client is built.
    File(PathBuf),
    /// PEM text.
    Pem(Vec<u8>),
}

impl CaCertificate {
    /// The certificates, ready for the HTTP client; an error names the file
    /// and says what is wrong with it.
    pub(crate) fn certificates(&self) -> Result<Vec<reqwest::Certificate>> {
        let (pem, origin) = match self {
            CaCertificate::File(path) => {
                let pem = std::fs::read(path).map_err(|error| {
                    ClientError::InvalidOptions(format!(
                        "cannot read the CA certificate file {}: {error}",
                        path.display()
                    ))
                })?;
                (pem, format!("the CA certificate file {}", path.display()))
            }
            CaCertificate::Pem(pem) => (pem.clone(), "the CA certificate".to_string()),
        };
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            ClientError::InvalidOptions(format!("{origin} is not valid PEM: {error}"))
        })?;
        if certificates.is_empty() {
            return Err(ClientError::InvalidOptions(format!(
                "{origin} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        Ok(certificates)
    }
}

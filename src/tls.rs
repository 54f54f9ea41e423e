//! What every outbound TLS client trusts: Mozilla's roots, bundled (the
//! `FROM scratch` image has no CA store), plus the private CAs of a PEM
//! file an operator names (`NOTIFY_CA_FILE`, a feed's `ca_file`). The
//! notifier, the dashboard and the feed poller connect with ureq; the
//! WebSocket feed client with rustls itself, through tokio-tungstenite.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use ureq::tls::{Certificate, RootCerts};

/// The bundled roots and `extra`, for ureq.
pub(crate) fn root_certs(extra: &[Certificate<'static>]) -> RootCerts {
    let bundled = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned());
    RootCerts::from(bundled.chain(extra.iter().cloned()))
}

/// The certificates of a PEM file.
pub(crate) fn parse_pem_certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, String> {
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => certificates.push(certificate),
            Ok(_) => {}
            Err(error) => return Err(format!("not a PEM certificate file: {error}")),
        }
    }
    if certificates.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certificates)
}

/// A rustls client config trusting the bundled roots and `extra`, with
/// ring named as its crypto provider: rustls panics at the first connect
/// when it has to choose between two providers by itself.
pub(crate) fn rustls_client(
    extra: &[Certificate<'static>],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    for (index, certificate) in extra.iter().enumerate() {
        roots
            .add(CertificateDer::from(certificate.der().to_vec()))
            .map_err(|error| format!("certificate {} is not a usable CA: {error}", index + 1))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let error = parse_pem_certificates(b"just text\n").unwrap_err();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }

    #[test]
    fn the_bundled_roots_make_a_client_config() {
        assert!(rustls_client(&[]).is_ok());
    }
}

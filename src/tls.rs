//! What every outbound TLS client trusts: Mozilla's roots, bundled (the
//! `FROM scratch` image has no CA store), plus the private CAs of a PEM
//! file an operator names (`NOTIFY_CA_FILE`, a feed's `ca_file`). The
//! notifier and the dashboard connect with ureq.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let error = parse_pem_certificates(b"just text\n").unwrap_err();
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }
}

//! `--ca-file` trust: its certificates are trusted beside the system's, and a certificate that is itself in the
//! file is accepted as the server's own even when it says `CA:TRUE` (what `openssl req -x509` makes by default),
//! as Go, OpenSSL (curl) and so docker and skopeo do. webpki refuses such a certificate as an end entity
//! (`CaUsedAsEndEntity`); this verifier wraps the usual one and, on that refusal only, still checks that the
//! certificate is valid now and names the host.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};

/// The system's roots and `--ca-file`'s, plus `--ca-file`'s certificates accepted as the server's own.
#[derive(Debug)]
pub(crate) struct CaFileVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    own: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl CaFileVerifier {
    pub fn new(
        own: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(
            own.clone(),
            provider.clone(),
        )?;
        Ok(CaFileVerifier {
            inner: Arc::new(inner),
            own,
            provider,
        })
    }

    /// A certificate of `--ca-file` presented as the server's own: valid now (webpki checks the validity period
    /// before the basic constraints, so `CaUsedAsEndEntity` means the period was fine), for `name`.
    fn accept_own(
        &self,
        end_entity: &CertificateDer<'_>,
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), TlsError> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let mut roots = RootCertStore::empty();
        roots.add(end_entity.clone().into_owned())?;
        match verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            &[],
            now,
            self.provider.signature_verification_algorithms.all,
        ) {
            Ok(()) => {}
            Err(TlsError::InvalidCertificate(CertificateError::Other(o)))
                if o.to_string().contains("CaUsedAsEndEntity") => {}
            Err(e) => return Err(e),
        }
        verify_server_name(&parsed, name)
    }
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(e) if self.own.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                match self.accept_own(end_entity, server_name, now) {
                    Ok(()) => Ok(ServerCertVerified::assertion()),
                    // The name or period's own error says more than the platform verifier's.
                    Err(own) => Err(match own {
                        TlsError::InvalidCertificate(CertificateError::Other(_)) => e,
                        own => own,
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client TLS configuration trusting the system's roots and `own` (see [`CaFileVerifier`]), offering HTTP/2
/// and HTTP/1.1 as reqwest's own configuration does.
pub(crate) fn ca_file_config(
    own: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = CaFileVerifier::new(own, provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS settings `Http::verified_tls` makes, on either kind of reqwest client builder.
pub(crate) trait TlsBuilder: Sized {
    fn accept_invalid(self) -> Self;
    fn preconfigured(self, config: rustls::ClientConfig) -> Self;
}

impl TlsBuilder for reqwest::blocking::ClientBuilder {
    fn accept_invalid(self) -> Self {
        self.danger_accept_invalid_certs(true)
    }
    fn preconfigured(self, config: rustls::ClientConfig) -> Self {
        self.tls_backend_preconfigured(config)
    }
}

impl TlsBuilder for reqwest::ClientBuilder {
    fn accept_invalid(self) -> Self {
        self.danger_accept_invalid_certs(true)
    }
    fn preconfigured(self, config: rustls::ClientConfig) -> Self {
        self.tls_backend_preconfigured(config)
    }
}

/// The certificates of a PEM bundle (checked readable in `Http::new`).
pub(crate) fn pem_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(|c| c.ok())
        .collect()
}

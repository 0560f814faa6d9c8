//! The AWS SDK configuration of every function, built once at init and shared by its clients.
//!
//! Two things make the SDK's default start slow in a cold start, and both are done differently
//! here (`bench/cold-start.sh` measures init; BENCHMARKS.md has the figures):
//!
//! - **TLS roots.** By default each SDK client (and the credentials chain's IMDS client) builds
//!   its own HTTPS connector at construction, with a root store parsed from the platform's
//!   certificates, read first from the bundle and every file of `/etc/ssl/certs`. Here one HTTPS
//!   client is shared through the `SdkConfig`, and it trusts the five roots of Amazon Trust
//!   Services, embedded in the binary: every AWS service endpoint chains to them (S3, the last,
//!   since 2022), and they are what Amazon Trust Services recommends to a custom trust store.
//!   The functions call AWS only (the webhooks go through `reqwest` with its own roots), so no
//!   other root is needed; certificates are verified as before.
//! - **Credentials and region.** The default chains build every provider they might need
//!   (profile files, web identity, ECS, an IMDS client) before the first request. Lambda
//!   always puts the function's credentials and region in the environment, the first place
//!   those chains look: when they are there, only the environment providers are built. They
//!   are still read lazily, at the first request, as the chain would.

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::{BehaviorVersion, SdkConfig};
// The SDK's HTTP client type, which every service crate re-exports.
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

/// Amazon Root CA 1 to 4 and Starfield Services Root Certificate Authority - G2, in PEM.
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("amazon-trust-services.pem");

/// The configuration every client of a function is built from: region, credentials, endpoint
/// (`AWS_ENDPOINT_URL`, e.g. moto's), retries, as `aws_config::load_from_env` reads them, with
/// the one HTTPS client of [`https_client`].
pub async fn sdk_config() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    // The SDK reads these variables itself; they are the runtime's, not the template's, so
    // `config::var` does not note them.
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
        loader = loader.region(EnvironmentVariableRegionProvider::new());
    }
    loader.load().await
}

/// One HTTPS client (rustls with aws-lc, as the SDK's default) for all the SDK clients of the
/// process, trusting [`AMAZON_TRUST_SERVICES_ROOTS`] only. Plain `http://` endpoints (moto in
/// tests and benchmarks) go through it too.
pub fn https_client() -> SharedHttpClient {
    let trust_store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes());
    let tls_context = TlsContext::builder().with_trust_store(trust_store).build();
    let builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(
        tls::rustls_provider::CryptoMode::AwsLc,
    ));
    match tls_context {
        Ok(context) => builder.tls_context(context).build_https(),
        // Building a context only gathers its settings: it cannot fail today. Should it ever,
        // the default context (the platform's roots) still verifies AWS's certificates.
        Err(_) => builder.build_https(),
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    use super::*;

    fn roots() -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the embedded roots are valid PEM")
    }

    #[test]
    fn the_embedded_roots_are_the_five_of_amazon_trust_services_in_mozillas_root_store() {
        let roots = roots();
        assert_eq!(roots.len(), 5);
        for root in &roots {
            // The same parse as the SDK's (`RootCertStore::add`), which panics on a bad one.
            let anchor = webpki::anchor_from_trusted_cert(root).expect("a usable trust anchor");
            let in_mozilla = webpki_roots::TLS_SERVER_ROOTS.iter().any(|mozilla| {
                mozilla.subject == anchor.subject
                    && mozilla.subject_public_key_info == anchor.subject_public_key_info
            });
            assert!(
                in_mozilla,
                "{:?} is not a root of Mozilla's store",
                anchor.subject
            );
        }
        let amazon = webpki_roots::TLS_SERVER_ROOTS
            .iter()
            .filter(|mozilla| {
                let subject = String::from_utf8_lossy(&mozilla.subject);
                subject.contains("Amazon Root CA")
                    || subject.contains("Starfield Services Root Certificate Authority - G2")
            })
            .count();
        assert_eq!(
            amazon, 5,
            "Mozilla's store has other Amazon roots: add them"
        );
    }

    #[tokio::test]
    async fn every_client_is_built_with_the_shared_https_client() {
        let aws = sdk_config().await;
        assert!(aws.http_client().is_some());
        // Building a client builds its HTTPS connector with the roots (a bad PEM would panic).
        let _ = aws_sdk_dynamodb::Client::new(&aws);
    }
}

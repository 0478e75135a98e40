//! A throw-away CA and server certificate per run, and the rustls configuration serving them.
//!
//! What Node accepts (protocol doc §1): an EC P-256 CA with `CA:TRUE`, a leaf with
//! `SAN IP:127.0.0.1, DNS:localhost` (Node checks the IP SAN when the URL host is an IP) and
//! `EKU serverAuth`; the server presents leaf + CA. The CA's PEM goes to `DIR/ca.pem` for
//! `NODE_EXTRA_CA_CERTS`. Its private key never leaves this process.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Tls {
    pub ca_pem: String,
    pub config: Arc<ServerConfig>,
}

pub fn generate() -> Result<Tls, String> {
    fn err(what: &'static str) -> impl Fn(rcgen::Error) -> String {
        move |e| format!("{what}: {e}")
    }

    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("colibri-bwserver throw-away CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca_params);
    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err("CA certificate"))?;
    let ca_pem = ca_cert.pem();
    let ca_der = ca_cert.der().clone();
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params = CertificateParams::default();
    leaf_params.distinguished_name = name("127.0.0.1");
    leaf_params.subject_alt_names = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::DnsName("localhost".try_into().map_err(err("SAN"))?),
    ];
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    validity(&mut leaf_params);
    let leaf_key = KeyPair::generate().map_err(err("server key"))?;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(err("server certificate"))?;

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone(), ca_der];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    Ok(Tls { ca_pem, config: Arc::new(config) })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Fixed and generous: the certificates live for one test run, and a skewed clock in a CI
/// container must not make them "not yet valid".
fn validity(params: &mut CertificateParams) {
    params.not_before = date_time_ymd(2000, 1, 1);
    params.not_after = date_time_ymd(2099, 12, 31);
}

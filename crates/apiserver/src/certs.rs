//! The cluster's certificates and the admin kubeconfig.
//!
//! On first start a cluster CA is generated under `<data-dir>/server/tls/`; it signs the
//! serving certificate (renewed at every start, so new addresses are covered) and the
//! admin client certificate (`system:admin`, group `system:masters`) written into the
//! kubeconfig. Clients authenticate with certificates signed by this CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("tls setup failed: {0}")]
    Tls(String),
}

/// PEM material of the cluster.
#[derive(Clone)]
pub struct ClusterCerts {
    pub ca_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    pub dir: PathBuf,
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write { path: path.to_path_buf(), source };
    std::fs::write(path, contents).map_err(err)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Read { path: path.to_path_buf(), source })
}

fn name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

fn validity(params: &mut CertificateParams, years: i32) {
    let now = jiff::Timestamp::now();
    let start =
        time::OffsetDateTime::from_unix_timestamp(now.as_second() - 3600).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    params.not_before = start;
    params.not_after = start + time::Duration::days(365 * i64::from(years));
}

impl ClusterCerts {
    /// Loads or creates the CA and admin certificate, and issues a fresh serving
    /// certificate for `hosts` (DNS names and IP addresses).
    pub fn ensure(data_dir: &Path, hosts: &[String]) -> Result<ClusterCerts, CertError> {
        let dir = data_dir.join("server").join("tls");
        std::fs::create_dir_all(&dir).map_err(|source| CertError::Write { path: dir.clone(), source })?;
        let (ca_cert, ca_key) = (dir.join("cluster-ca.crt"), dir.join("cluster-ca.key"));
        if !ca_cert.exists() || !ca_key.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name = name("rkube-cluster-ca", None);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages =
                vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
            validity(&mut params, 10);
            let cert = params.self_signed(&key)?;
            write(&ca_key, &key.serialize_pem(), true)?;
            write(&ca_cert, &cert.pem(), false)?;
        }
        let ca_pem = read(&ca_cert)?;
        let ca_key = KeyPair::from_pem(&read(&ca_key)?)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;

        let (admin_cert, admin_key) = (dir.join("client-admin.crt"), dir.join("client-admin.key"));
        if !admin_cert.exists() || !admin_key.exists() {
            let (cert, key) = issue_client(&issuer, "system:admin", Some("system:masters"))?;
            write(&admin_key, &key, true)?;
            write(&admin_cert, &cert, false)?;
        }

        let (serving_cert_pem, serving_key_pem) = issue_serving(&issuer, "rkube-apiserver", hosts)?;
        write(&dir.join("serving.key"), &serving_key_pem, true)?;
        write(&dir.join("serving.crt"), &serving_cert_pem, false)?;

        Ok(ClusterCerts {
            ca_pem,
            serving_cert_pem,
            serving_key_pem,
            admin_cert_pem: read(&admin_cert)?,
            admin_key_pem: read(&admin_key)?,
            dir,
        })
    }

    /// Issues a client certificate for `user` in `group`, signed by the cluster CA.
    pub fn issue_client(&self, user: &str, group: Option<&str>) -> Result<(String, String), CertError> {
        let ca_key = KeyPair::from_pem(&read(&self.dir.join("cluster-ca.key"))?)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, ca_key)?;
        issue_client(&issuer, user, group)
    }

    /// Issues a serving certificate named `cn` for `hosts` (a kubelet's, for its API).
    pub fn issue_serving(&self, cn: &str, hosts: &[String]) -> Result<(String, String), CertError> {
        let ca_key = KeyPair::from_pem(&read(&self.dir.join("cluster-ca.key"))?)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, ca_key)?;
        issue_serving(&issuer, cn, hosts)
    }

    /// The rustls configuration: our serving certificate, and optional client
    /// certificates verified against the cluster CA.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let tls = |e: &dyn std::fmt::Display| CertError::Tls(e.to_string());
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(self.serving_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_slice(self.serving_key_pem.as_bytes()).map_err(|e| tls(&e))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| tls(&e))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| tls(&e))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// A kubeconfig for the admin user against `server` (an https URL).
    pub fn admin_kubeconfig(&self, server: &str) -> String {
        kubeconfig(&self.ca_pem, server, &self.admin_cert_pem, &self.admin_key_pem)
    }
}

fn kubeconfig(ca_pem: &str, server: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\npreferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        server,
        b64(cert_pem),
        b64(key_pem)
    )
}

fn issue_serving(issuer: &Issuer<'_, KeyPair>, cn: &str, hosts: &[String]) -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    let mut sans: Vec<SanType> = Vec::new();
    for h in hosts {
        match h.parse::<IpAddr>() {
            Ok(ip) => sans.push(SanType::IpAddress(ip)),
            Err(_) => sans.push(SanType::DnsName(h.clone().try_into()?)),
        }
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans;
    params.distinguished_name = name(cn, None);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    validity(&mut params, 1);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue_client(issuer: &Issuer<'_, KeyPair>, user: &str, group: Option<&str>) -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(user, group);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    validity(&mut params, 1);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a file readable only by its owner, creating parent folders.
pub fn write_private(path: &Path, contents: &str) -> Result<(), CertError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| CertError::Write { path: parent.to_path_buf(), source })?;
    }
    // Write then rename so a reader never sees a half-written kubeconfig.
    let tmp = path.with_extension("tmp");
    write(&tmp, contents, true)?;
    std::fs::rename(&tmp, path).map_err(|source| CertError::Write { path: path.to_path_buf(), source })
}

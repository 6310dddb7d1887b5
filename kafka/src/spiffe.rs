//! Kafka over mTLS with SPIFFE X.509 SVIDs: the certificate (its identity in a
//! `spiffe://` URI SAN), its key and the trust bundle, read from the files a SPIFFE
//! helper keeps fresh (spiffe-helper's `cert_dir`: `svid.pem`, `svid_key.pem`,
//! `svid_bundle.pem`). librdkafka does the TLS; this module points it at the files
//! and checks, before a process connects, that its own SVID names an identity its role
//! may play (`[kafka.spiffe]` lists them), so a node started with another's SVID, or
//! the job with an agent's, stops with the reason instead of running as someone else.
//!
//! The broker side (or a TLS proxy in front of it) accepts only clients whose chain
//! ends in the trust bundle: one trust domain, one bundle. What a node may *say* is
//! checked by the job on every message (`keys.fleet_secret`): Kafka does not tell a
//! consumer who produced a message.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// `[kafka.spiffe]`: where the SVID files are and which SPIFFE IDs may play which role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpiffeConfig {
    /// The directory of the SVID files; empty: no SPIFFE (librdkafka's own `ssl.*`
    /// options in `[kafka.options]` still apply).
    pub dir: String,
    /// The X.509 SVID (PEM; the leaf first, then any intermediates).
    pub cert: String,
    /// Its private key (PEM).
    pub key: String,
    /// The trust bundle: the CA certificates of the trust domain (PEM).
    pub bundle: String,
    /// SPIFFE IDs that may run the stream job.
    pub job_ids: Vec<String>,
    /// SPIFFE IDs that may run a node agent; `{node}` stands for its node id.
    pub agent_ids: Vec<String>,
}

impl Default for SpiffeConfig {
    fn default() -> Self {
        SpiffeConfig {
            dir: String::new(),
            cert: "svid.pem".into(),
            key: "svid_key.pem".into(),
            bundle: "svid_bundle.pem".into(),
            job_ids: vec!["spiffe://x0tta6bl4.local/job".into()],
            agent_ids: vec!["spiffe://x0tta6bl4.local/agent/{node}".into()],
        }
    }
}

/// The part a process plays, which decides the SPIFFE IDs it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role<'a> {
    /// The stream job.
    Job,
    /// The agent of one node.
    Agent {
        /// Its node id.
        node: &'a str,
    },
}

/// Why a process's SVID cannot be used.
#[derive(Debug, Error)]
pub enum SpiffeError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The certificate is not an X.509 SVID (not PEM, not X.509, no single `spiffe://` URI SAN).
    #[error("{path}: not an X.509 SVID: {why}")]
    NotSvid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The SVID names an identity this role may not play.
    #[error("SVID {id} may not act as {role}; [kafka.spiffe] allows {allowed:?}")]
    WrongIdentity {
        /// The SPIFFE ID in the SVID.
        id: String,
        /// The role, in words.
        role: String,
        /// The IDs the configuration allows for it.
        allowed: Vec<String>,
    },
}

impl SpiffeConfig {
    /// Whether SVID files are configured.
    pub fn enabled(&self) -> bool {
        !self.dir.is_empty()
    }

    fn path(&self, file: &str) -> PathBuf {
        Path::new(&self.dir).join(file)
    }

    /// The librdkafka options that make a client present the SVID and trust the bundle.
    pub fn client_options(&self) -> Vec<(&'static str, String)> {
        if !self.enabled() {
            return vec![];
        }
        let path = |f: &str| self.path(f).to_string_lossy().into_owned();
        vec![
            ("security.protocol", "ssl".into()),
            ("ssl.certificate.location", path(&self.cert)),
            ("ssl.key.location", path(&self.key)),
            ("ssl.ca.location", path(&self.bundle)),
        ]
    }

    /// The SPIFFE ID of this process's SVID, once checked against what `role` may be.
    /// `Ok(None)` when SPIFFE is not configured.
    pub fn check_identity(&self, role: Role<'_>) -> Result<Option<String>, SpiffeError> {
        if !self.enabled() {
            return Ok(None);
        }
        let path = self.path(&self.cert);
        let pem = std::fs::read(&path).map_err(|source| SpiffeError::Read { path: path.clone(), source })?;
        let id = svid_id(&pem).map_err(|why| SpiffeError::NotSvid { path, why })?;
        let (name, allowed): (String, Vec<String>) = match role {
            Role::Job => ("the stream job".into(), self.job_ids.clone()),
            Role::Agent { node } => {
                (format!("the agent of {node}"), self.agent_ids.iter().map(|p| p.replace("{node}", node)).collect())
            }
        };
        if allowed.contains(&id) {
            Ok(Some(id))
        } else {
            Err(SpiffeError::WrongIdentity { id, role: name, allowed })
        }
    }

    /// Resolves once the SVID, its key or the bundle changed on disk (checked every
    /// `every`); never when SPIFFE is off. librdkafka reads them only when a client is
    /// created, so a process that sees this stops cleanly (the job after a last
    /// checkpoint, an agent after flushing) and exits with [`EXIT_SVID_ROTATED`] for its
    /// supervisor to restart it on the new files: nothing is lost. (Rebuilding every
    /// client in place would need the consumer groups rejoined mid-run; a restart is
    /// the path already proven lossless.)
    pub async fn rotated(&self, every: std::time::Duration) {
        if !self.enabled() {
            return std::future::pending().await;
        }
        let files = [self.path(&self.cert), self.path(&self.key), self.path(&self.bundle)];
        let look = || files.iter().map(|f| std::fs::read(f).ok()).collect::<Vec<_>>();
        let first = look();
        loop {
            tokio::time::sleep(every).await;
            let now = look();
            // A helper writes the files one after the other: take them once they settle.
            if now != first && now.iter().all(Option::is_some) {
                tokio::time::sleep(every.min(std::time::Duration::from_secs(1))).await;
                if look() == now {
                    return;
                }
            }
        }
    }
}

/// id-ce-subjectAltName (RFC 5280).
const SUBJECT_ALT_NAME: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.29.17");

/// The exit status of a process that stopped to take up a rotated SVID (EX_TEMPFAIL):
/// its supervisor (systemd `Restart=always`, Kubernetes) starts it again.
pub const EXIT_SVID_ROTATED: i32 = 75;

/// How often `run` and the agent look for rotated SVID files.
pub const SVID_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The SPIFFE ID of an X.509 SVID (PEM, leaf first): its one URI SAN, which must be a
/// well-formed `spiffe://trust-domain/path` (the X509-SVID specification).
pub fn svid_id(pem: &[u8]) -> Result<String, String> {
    use x509_cert::der::DecodePem;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let text = std::str::from_utf8(pem).map_err(|_| "not PEM text".to_string())?;
    let first = text
        .find("-----BEGIN CERTIFICATE-----")
        .and_then(|start| {
            let end = text[start..].find("-----END CERTIFICATE-----")? + start + "-----END CERTIFICATE-----".len();
            Some(&text[start..end])
        })
        .ok_or("no certificate in it")?;
    let cert = x509_cert::Certificate::from_pem(first).map_err(|e| format!("not X.509: {e}"))?;
    let san = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == SUBJECT_ALT_NAME)
        .ok_or("no subject alternative name")?;
    let names = <SubjectAltName as x509_cert::der::Decode>::from_der(san.extn_value.as_bytes())
        .map_err(|e| format!("subject alternative name: {e}"))?;
    let uris: Vec<String> = names
        .0
        .iter()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [one] if is_spiffe_id(one) => Ok(one.clone()),
        [one] => Err(format!("URI SAN {one:?} is not a SPIFFE ID")),
        [] => Err("no URI SAN".into()),
        many => Err(format!("{} URI SANs (an SVID has exactly one)", many.len())),
    }
}

/// `spiffe://` + a trust domain of lowercase letters, digits, `.`, `-`, `_` + a path of
/// non-empty segments (or none).
fn is_spiffe_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("spiffe://") else { return false };
    let (domain, path) = rest.split_once('/').map_or((rest, None), |(d, p)| (d, Some(p)));
    let domain_ok = !domain.is_empty()
        && domain.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let path_ok = path.is_none_or(|p| {
        p.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['?', '#', '%']))
    });
    domain_ok && path_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_are_checked_for_form() {
        for ok in ["spiffe://x0.local/job", "spiffe://x0.local/agent/n1", "spiffe://td"] {
            assert!(is_spiffe_id(ok), "{ok}");
        }
        for bad in ["https://x0.local/job", "spiffe://X0/job", "spiffe:///job", "spiffe://td/a//b", "spiffe://td/"] {
            assert!(!is_spiffe_id(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_rotated_svid_is_noticed_once_its_files_settle() {
        let dir = tempfile::tempdir().unwrap();
        let c = SpiffeConfig { dir: dir.path().to_string_lossy().into_owned(), ..SpiffeConfig::default() };
        for f in [&c.cert, &c.key, &c.bundle] {
            std::fs::write(dir.path().join(f), "old").unwrap();
        }
        let every = std::time::Duration::from_millis(20);
        let watch = tokio::spawn({
            let c = c.clone();
            async move { c.rotated(every).await }
        });
        tokio::time::sleep(every * 5).await;
        assert!(!watch.is_finished(), "nothing changed yet");
        std::fs::write(dir.path().join(&c.cert), "new").unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), watch).await.expect("noticed").unwrap();
    }

    #[test]
    fn roles_take_the_node_into_their_ids() {
        let c = SpiffeConfig::default();
        assert_eq!(c.client_options(), vec![], "off unless a directory is set");
        assert_eq!(c.check_identity(Role::Job).unwrap(), None);
        let c = SpiffeConfig { dir: "/nonexistent".into(), ..SpiffeConfig::default() };
        assert!(matches!(c.check_identity(Role::Job), Err(SpiffeError::Read { .. })));
        assert_eq!(c.client_options()[1], ("ssl.certificate.location", "/nonexistent/svid.pem".to_string()));
    }
}

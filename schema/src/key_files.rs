//! Key files: 32 bytes, hex, one line. The job holds the command signing key and the
//! fleet secret; every agent the verifying key and its own node key (derived from the
//! fleet secret); a third-party producer its own message key.

use crate::{FleetSecret, MessageKey, SigningKey, VerifyingKey};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a key file could not be read or written (the operator's to fix; retrying
/// without changing the file does not help).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or created.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold 32 hex-encoded bytes.
    #[error("{path}: {why}")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its contents.
        why: String,
    },
}

fn read_32(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io { path: path.into(), source })?;
    let malformed = |why: String| KeyFileError::Malformed { path: path.into(), why };
    let bytes = hex::decode(text.trim()).map_err(|e| malformed(format!("not hex: {e}")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| malformed(format!("must hold 32 bytes, has {}", bytes.len())))
}

/// Reads the job's signing key.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    Ok(SigningKey::from_bytes(&read_32(path)?))
}

/// Reads the verifying key agents check commands against.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    VerifyingKey::from_bytes(&read_32(path)?)
        .map_err(|e| KeyFileError::Malformed { path: path.into(), why: format!("not an ed25519 public key: {e}") })
}

/// Reads the fleet secret the job derives node keys from.
pub fn read_fleet_secret(path: &Path) -> Result<FleetSecret, KeyFileError> {
    Ok(FleetSecret::from_bytes(read_32(path)?))
}

/// Reads a node's (or a producer's) message key.
pub fn read_message_key(path: &Path) -> Result<MessageKey, KeyFileError> {
    Ok(MessageKey::from_bytes(read_32(path)?))
}

/// Writes a secret key file (mode 0600); an existing one is never overwritten.
fn write_secret(path: &Path, bytes: [u8; 32]) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.into(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    writeln!(f, "{}", hex::encode(bytes)).map_err(io)
}

/// Writes a fresh fleet secret to `path` (mode 0600, never overwritten).
pub fn generate_fleet_secret(path: &Path) -> Result<FleetSecret, KeyFileError> {
    let secret = FleetSecret::generate();
    write_secret(path, secret.to_bytes())?;
    Ok(secret)
}

/// Writes a node's or a producer's message key to `path` (mode 0600, never overwritten).
pub fn write_message_key(path: &Path, key: &MessageKey) -> Result<(), KeyFileError> {
    write_secret(path, key.to_bytes())
}

/// Writes a fresh pair as `signing.key` (mode 0600, never overwritten) and
/// `verifying.key` into `dir`; returns their paths.
pub fn generate_key_files(dir: &Path) -> Result<(PathBuf, PathBuf), KeyFileError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyFileError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key = crate::generate_signing_key();
    let (sk, vk) = (dir.join("signing.key"), dir.join("verifying.key"));
    write_secret(&sk, key.to_bytes())?;
    std::fs::write(&vk, format!("{}\n", hex::encode(key.verifying_key().to_bytes()))).map_err(io(&vk))?;
    Ok((sk, vk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_read_back_as_a_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, vk) = generate_key_files(dir.path()).unwrap();
        let (sk, vk) = (read_signing_key(&sk).unwrap(), read_verifying_key(&vk).unwrap());
        assert_eq!(sk.verifying_key(), vk);
        assert!(generate_key_files(dir.path()).is_err(), "an existing signing key is never overwritten");
    }

    #[test]
    fn a_node_key_written_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = generate_fleet_secret(&dir.path().join("fleet.key")).unwrap();
        assert_eq!(read_fleet_secret(&dir.path().join("fleet.key")).unwrap(), fleet);
        let f = dir.path().join("nodes/n1.key");
        write_message_key(&f, &fleet.node_key("n1")).unwrap();
        assert_eq!(read_message_key(&f).unwrap(), fleet.node_key("n1"));
        assert!(write_message_key(&f, &fleet.node_key("n2")).is_err());
        assert!(generate_fleet_secret(&dir.path().join("fleet.key")).is_err());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_short_key_says_how_long_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "abcd\n").unwrap();
        let e = read_verifying_key(&f).unwrap_err().to_string();
        assert!(e.contains("has 2"), "{e}");
    }
}

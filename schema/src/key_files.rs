//! ed25519 key files: 32 bytes, hex, one line. The job holds the signing key, every
//! agent the verifying key.

use crate::{SigningKey, VerifyingKey};
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
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&sk).map_err(io(&sk))?;
    writeln!(f, "{}", hex::encode(key.to_bytes())).map_err(io(&sk))?;
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
    fn a_short_key_says_how_long_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "abcd\n").unwrap();
        let e = read_verifying_key(&f).unwrap_err().to_string();
        assert!(e.contains("has 2"), "{e}");
    }
}

//! ed25519 key files: 32 bytes, hex, one line.

use anyhow::{bail, Context, Result};
use std::path::Path;
use x0_schema::{SigningKey, VerifyingKey};

fn read_32(path: &Path) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?;
    let bytes = hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
    match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(b) => Ok(b),
        Err(_) => bail!("{} must hold 32 bytes, has {}", path.display(), bytes.len()),
    }
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&read_32(path)?))
}

pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey> {
    VerifyingKey::from_bytes(&read_32(path)?)
        .with_context(|| format!("{} is not an ed25519 public key", path.display()))
}

/// Writes `signing.key` (mode 0600) and `verifying.key` into `dir`.
pub fn generate(dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let key = x0_schema::generate_signing_key();
    let (sk, vk) = (dir.join("signing.key"), dir.join("verifying.key"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&sk)
        .with_context(|| format!("creating {}", sk.display()))?;
    writeln!(f, "{}", hex::encode(key.to_bytes()))?;
    std::fs::write(&vk, format!("{}\n", hex::encode(key.verifying_key().to_bytes())))?;
    Ok((sk, vk))
}

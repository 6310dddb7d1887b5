//! Replacing a file so that a crash leaves the old contents or the new, never a torn
//! file: the agent's actuator journal and the stream job's checkpoint both need it.

use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `path` afresh through `write` (buffered): into `<path>.tmp`, flushed and
/// fsynced, renamed over `path`, and the directory fsynced so the rename survives a
/// crash too. Creates the directory if missing. Returns the bytes written.
pub fn replace_file_durably(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    write(&mut w)?;
    w.flush()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.json");
        assert_eq!(super::replace_file_durably(&path, |w| std::io::Write::write_all(w, b"first, longer")).unwrap(), 13);
        assert_eq!(super::replace_file_durably(&path, |w| std::io::Write::write_all(w, b"second")).unwrap(), 6);
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }
}

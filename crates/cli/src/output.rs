//! Writing result files atomically: a partial file never looks like a result.

use std::path::{Path, PathBuf};

use crate::error::CliError;

/// Writes `bytes` to `path` through a temporary file in the same folder, `fsync` and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let error = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    // Synced before the rename: once the journal says "done", the file is whole on disk.
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()
    });
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error(source));
    }
    std::fs::rename(&temporary, path).map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        error(source)
    })
}

/// `stem-N.ext` below `out`.
pub fn result_path(out: &Path, stem: &Path, index: u8, extension: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(format!("-{index}.{extension}"));
    out.join(name)
}

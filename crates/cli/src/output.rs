//! Writing result files atomically: a partial file never looks like a result.

use std::path::{Path, PathBuf};

use crate::error::CliError;

/// Writes `bytes` to `path` whole or not at all ([`backdrop_core::files::write_atomically`]):
/// once the journal says "done", the file is whole on disk.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let error = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    backdrop_core::files::write_atomically(path, bytes).map_err(error)
}

/// `stem-N.ext` below `out`.
pub fn result_path(out: &Path, stem: &Path, index: u8, extension: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(format!("-{index}.{extension}"));
    out.join(name)
}

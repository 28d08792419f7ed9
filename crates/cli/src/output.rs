//! Writing result files atomically: a partial file never looks like a result.

use std::path::{Path, PathBuf};

use crate::error::CliError;

/// Writes `bytes` to `path` whole or not at all ([`backdrop_core::__private::write_atomically`]):
/// once the journal says "done", the file is whole on disk.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let error = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    backdrop_core::__private::write_atomically(path, bytes).map_err(error)
}

/// `stem-N.ext` below `out`.
pub fn result_path(out: &Path, stem: &Path, index: u8, extension: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(format!("-{index}.{extension}"));
    out.join(name)
}

/// `text` as one file name that stays in its folder: letters, digits, `-`, `_` and `.` kept,
/// every other character (`/`, `\\`, spaces, controls) replaced by `_`, no leading dot, at
/// most 100 characters; `task` when nothing is left.
pub fn safe_file_stem(text: &str) -> PathBuf {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.is_empty() {
        PathBuf::from("task")
    } else {
        PathBuf::from(cleaned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_from_ids_never_leave_their_folder() {
        for (id, stem) in [
            ("TASK_1", "TASK_1"),
            ("../../escaped", "_.._escaped"),
            ("..", "task"),
            ("/etc/passwd", "_etc_passwd"),
            ("a\\b c\n", "a_b_c_"),
            ("", "task"),
            (".hidden", "hidden"),
        ] {
            assert_eq!(safe_file_stem(id), PathBuf::from(stem), "{id:?}");
            assert_eq!(safe_file_stem(id).components().count(), 1, "{id:?}");
        }
        assert_eq!(safe_file_stem(&"x".repeat(300)).as_os_str().len(), 100);
    }
}

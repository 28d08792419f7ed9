//! Writing files so that a reader never sees half of one: the results, the CLI's journal, the C
//! ABI's downloads all go through [`write_atomically`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes`, whole or not at all: a hidden temporary file next to it (unique
/// to the process and the call, so concurrent writers never share one), `fsync`, a rename over
/// `path`, then `fsync` of the folder so that the rename survives a power cut. The folder must
/// exist. A failed write leaves no temporary file behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut temporary = std::ffi::OsString::from(".");
    temporary.push(name);
    temporary.push(format!(
        ".{}-{}.part",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let temporary = folder.join(temporary);
    let result = File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result?;
    // The rename is durable once the folder is; not every platform can sync a folder.
    if let Ok(folder) = File::open(&folder) {
        let _ = folder.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("backdrop-files-{}", std::process::id()));
        let path = dir.join("sub").join("out.jpg");
        assert!(
            write_atomically(&path, b"x").is_err(),
            "the folder must exist"
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.jpg")]);
        // A folder in the way: an error, and no temporary file.
        let blocked = dir.join("sub");
        assert!(write_atomically(&blocked, b"x").is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write_atomically(Path::new("/"), b"x").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

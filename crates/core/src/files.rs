//! Writing files so that a reader never sees half of one: the results, the CLI's journal, the C
//! ABI's downloads all go through [`write_atomically`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes`, whole or not at all: a new hidden temporary file next to it
/// (created exclusively under an unpredictable name, so it is never an existing file or a
/// symbolic link planted there), `fsync`, a rename over `path`, then `fsync` of the folder so
/// that the rename survives a power cut. The folder must exist. A failed write leaves no
/// temporary file behind; a folder that cannot be synced is an error (except on platforms
/// where folders cannot be synced at all).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically_with(path, |file| file.write_all(bytes))
}

/// Like [`write_atomically`], the content written by `write` to a buffered writer: a large file
/// never has to be held in memory whole.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let (temporary, file) = create_temporary(&folder, name)?;
    let result = (|| {
        let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, &file);
        write(&mut buffered)?;
        buffered.flush()?;
        drop(buffered);
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    drop(file);
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result?;
    sync_folder(&folder)
}

/// A new file `.<name>.<random>.part` in `folder`, created exclusively (`O_CREAT|O_EXCL`: an
/// existing file or symbolic link of that name is never opened); a few names are tried.
fn create_temporary(folder: &Path, name: &std::ffi::OsStr) -> std::io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..8 {
        let mut temporary = std::ffi::OsString::from(".");
        temporary.push(name);
        temporary.push(format!(".{:016x}.part", rand::random::<u64>()));
        let temporary = folder.join(temporary);
        match File::options()
            .write(true)
            .create_new(true)
            .open(&temporary)
        {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file could be created")))
}

/// Makes a rename in `folder` durable. Platforms that cannot sync a folder say so with
/// "unsupported" or "invalid input" (or refuse to open one): that is not an error.
pub fn sync_folder(folder: &Path) -> std::io::Result<()> {
    let handle = match File::open(folder) {
        Ok(handle) => handle,
        // Windows opens no folder as a file.
        Err(_) if cfg!(windows) => return Ok(()),
        Err(error) => return Err(error),
    };
    match handle.sync_all() {
        Ok(()) => Ok(()),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::InvalidInput
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
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

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_never_written_through() {
        let dir = std::env::temp_dir().join(format!("backdrop-links-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim.txt");
        std::fs::write(&victim, b"keep me").unwrap();
        // The names of temporary files cannot be guessed: links planted at every name an older
        // version would have used (process id and a counter) are never followed.
        for n in 0..64 {
            let _ = std::os::unix::fs::symlink(
                &victim,
                dir.join(format!(".out.jpg.{}-{n}.part", std::process::id())),
            );
        }
        let out = dir.join("out.jpg");
        write_atomically(&out, b"result").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(&out).unwrap(), b"result");
        // The result itself a link: the link is replaced, its target untouched.
        let linked = dir.join("linked.jpg");
        std::os::unix::fs::symlink(&victim, &linked).unwrap();
        write_atomically(&linked, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(!std::fs::symlink_metadata(&linked).unwrap().is_symlink());
        std::fs::remove_dir_all(dir).unwrap();
    }
}

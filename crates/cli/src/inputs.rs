//! Turning the command line's INPUT arguments into a list of inputs with output names.
//!
//! Folders are searched (recursively) for `*.png`; only paths are listed here, files are read
//! when their turn comes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// One thing to generate backgrounds for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// What it is.
    pub source: InputSource,
    /// Output path without the `-N.jpg` suffix, relative to the output folder.
    pub output_stem: PathBuf,
}

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// A PNG file, uploaded as `image_file`.
    File(PathBuf),
    /// An image URL, sent as `image_url`.
    Url(String),
}

impl Input {
    /// How the input is shown to people.
    pub fn label(&self) -> String {
        match &self.source {
            InputSource::File(path) => path.display().to_string(),
            InputSource::Url(url) => url.split('?').next().unwrap_or(url).to_owned(),
        }
    }
}

/// Expands the arguments into inputs, in order, each with a unique output stem.
pub fn expand(arguments: &[String]) -> Result<Vec<Input>, CliError> {
    let mut inputs = Vec::new();
    for argument in arguments {
        if is_url(argument) {
            inputs.push(Input {
                output_stem: PathBuf::from(url_stem(argument)),
                source: InputSource::Url(argument.clone()),
            });
            continue;
        }
        let path = PathBuf::from(argument);
        let metadata = std::fs::metadata(&path).map_err(|source| CliError::Input {
            input: argument.clone(),
            reason: match url_scheme(argument) {
                Some(scheme) => format!(
                    "a URL with the scheme {scheme:?} cannot be used: only http(s) URLs are sent (as image_url) — give an http(s) URL, a PNG file or a folder"
                ),
                None => format!(
                    "cannot read it ({source}); give a PNG file, a folder or an http(s) URL"
                ),
            },
        })?;
        if metadata.is_dir() {
            let mut found = Vec::new();
            find_pngs(&path, &mut found).map_err(|source| CliError::Input {
                input: argument.clone(),
                reason: format!("cannot list the folder ({source})"),
            })?;
            found.sort();
            if found.is_empty() {
                return Err(CliError::Input {
                    input: argument.clone(),
                    reason: "the folder holds no .png file (searched with its subfolders); give a folder of PNG files, a PNG file or an http(s) URL".into(),
                });
            }
            for file in found {
                let relative = file.strip_prefix(&path).unwrap_or(&file).with_extension("");
                inputs.push(Input {
                    source: InputSource::File(file),
                    output_stem: relative,
                });
            }
        } else {
            let stem = path
                .file_stem()
                .map(PathBuf::from)
                .unwrap_or_else(|| "image".into());
            inputs.push(Input {
                source: InputSource::File(path),
                output_stem: stem,
            });
        }
    }
    make_stems_unique(&mut inputs);
    Ok(inputs)
}

fn is_url(argument: &str) -> bool {
    let lower = argument.get(..8).unwrap_or(argument).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// The scheme of an argument that looks like a URL (`ftp://…`, `file:///…`), lower-cased.
fn url_scheme(argument: &str) -> Option<String> {
    let (scheme, _) = argument.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

fn url_stem(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let stem = last.strip_suffix(".png").unwrap_or(last);
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.contains("://") || clean.chars().all(|c| c == '.') {
        "url".to_owned()
    } else {
        clean
    }
}

fn find_pngs(folder: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            find_pngs(&path, found)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            found.push(path);
        }
    }
    Ok(())
}

/// Two inputs never write the same files: later duplicates get `~2`, `~3`, ….
fn make_stems_unique(inputs: &mut [Input]) {
    let mut taken = HashSet::new();
    for input in inputs {
        let mut candidate = input.output_stem.clone();
        let mut n = 2;
        while !taken.insert(candidate.clone()) {
            let mut name = input.output_stem.as_os_str().to_owned();
            name.push(format!("~{n}"));
            candidate = PathBuf::from(name);
            n += 1;
        }
        input.output_stem = candidate;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_readable_stems() {
        assert_eq!(url_stem("https://x.test/a/mug.png?sig=1"), "mug");
        assert_eq!(url_stem("https://x.test/"), "x.test");
        assert_eq!(url_stem("https://x.test/a b.png"), "a_b");
    }

    #[test]
    fn folders_are_searched_and_stems_kept_unique() {
        let dir = std::env::temp_dir().join(format!("backdrop-inputs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.png"), b"x").unwrap();
        std::fs::write(dir.join("sub/b.PNG"), b"x").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        let file = dir.join("a.png").display().to_string();
        let inputs = expand(&[dir.display().to_string(), file]).unwrap();
        let stems: Vec<_> = inputs.iter().map(|i| i.output_stem.clone()).collect();
        assert_eq!(
            stems,
            vec![
                PathBuf::from("a"),
                PathBuf::from("sub/b"),
                PathBuf::from("a~2")
            ]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn other_url_schemes_are_named() {
        let err = expand(&["ftp://x.test/a.png".into()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("the scheme \"ftp\" cannot be used"),
            "{err}"
        );
        assert_eq!(url_scheme("file:///etc/x.png").as_deref(), Some("file"));
        assert_eq!(url_scheme("./a://b.png"), None);
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let err = expand(&["/no/such/file.png".into()]).unwrap_err();
        assert!(err.to_string().contains("/no/such/file.png"), "{err}");
    }
}

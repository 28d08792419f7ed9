//! What every example starts from: a client of the real service when `PICWISH_API_KEY` is set,
//! else of a local emulator started in this process (no key, no network, no credits), and a
//! folder for the results.

use std::path::{Path, PathBuf};

use backdrop_core::{Client, ClientConfig};
use backdrop_emulator::{Emulator, EmulatorConfig};

/// How many times faster than real time the emulator runs, so that the examples end in seconds.
const EMULATOR_TIME_SCALE: f64 = 10.0;

/// A client, and the emulator it talks to when there is no key (keep it alive as long as the
/// client is used).
pub async fn client() -> backdrop_core::Result<(Client, Option<Emulator>)> {
    if std::env::var_os(backdrop_core::ENV_API_KEY).is_some() {
        eprintln!("using the real service: every task costs credits");
        return Ok((Client::from_env()?, None));
    }
    let emulator = Emulator::start(EmulatorConfig {
        time_scale: EMULATOR_TIME_SCALE,
        ..EmulatorConfig::default()
    })
    .await
    .map_err(|source| backdrop_core::Error::Io {
        action: "start the emulator on",
        path: PathBuf::from("127.0.0.1"),
        source,
    })?;
    eprintln!(
        "PICWISH_API_KEY is not set: using a local emulator at {} (stand-in images, no credits)",
        emulator.base_url()
    );
    let config = ClientConfig::builder(emulator.api_key())
        .base_url(emulator.base_url())
        .time_scale(EMULATOR_TIME_SCALE)
        .build()?;
    Ok((Client::new(config)?, Some(emulator)))
}

/// The product photos the repository's tests use.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Writes one generated image as `{out}/{stem}-{n}.{ext}` (whole or not at all) and returns
/// the path.
pub fn save(
    out: &Path,
    stem: &str,
    image: &backdrop_core::GeneratedImage,
) -> backdrop_core::Result<PathBuf> {
    let path = out.join(format!(
        "{stem}-{}.{}",
        image.index,
        image.format.extension()
    ));
    let io = |source| backdrop_core::Error::Io {
        action: "write",
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(out).map_err(io)?;
    image.save(&path).map_err(io)?;
    Ok(path)
}

//! One product photo, one prompt: create the task, wait for it while showing its progress,
//! save the images.
//!
//! ```sh
//! cargo run -p backdrop-core --example generate_one [PNG] [PROMPT]
//! ```
//!
//! Without `PICWISH_API_KEY` it runs against a local emulator; with it, against the real
//! service (3 credits). The images land in `backdrop-examples/`.

mod common;

use std::path::PathBuf;

use backdrop_core::{BatchSize, GenerateRequest, WaitControl, WaitOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let image = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| common::fixtures().join("bottle.png"));
    let prompt = args
        .next()
        .unwrap_or_else(|| "a marble countertop in soft morning light".to_owned());

    let (client, _emulator) = common::client().await?;
    // The builder refuses what the service would (a blank prompt, a prompt and a scene type).
    let request = GenerateRequest::builder()
        .image_path(&image)
        .prompt(prompt)
        .batch_size(BatchSize::One)
        .build()?;

    // The whole PNG is checked before anything is sent: a bad file costs nothing.
    let generation = client
        .generate(&request, WaitOptions::default(), |task| {
            let progress = task
                .progress
                .map(|p| format!(" {p:.0} %"))
                .unwrap_or_default();
            eprintln!("  {}{progress}", task.state);
            WaitControl::Continue
        })
        .await?;

    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".to_owned());
    for image in &generation.images {
        let path = common::save("backdrop-examples".as_ref(), &stem, image)?;
        println!("{}", path.display());
    }
    eprintln!(
        "task {}: {} image(s), {} credits, {:.1} s",
        generation.task.task_id,
        generation.images.len(),
        generation.credits,
        generation.elapsed.as_secs_f64()
    );
    Ok(())
}

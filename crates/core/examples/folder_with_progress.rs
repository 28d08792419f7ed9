//! Every PNG of a folder, several at once under one rate limit, with a line per state change
//! and a failure that does not stop the others.
//!
//! ```sh
//! cargo run -p backdrop-core --example folder_with_progress [FOLDER] [PROMPT]
//! ```
//!
//! One client serves every task: its scheduler keeps all of them within the key's QPS, so
//! running many at once is safe. Without `PICWISH_API_KEY` it runs against a local emulator.

mod common;

use std::path::{Path, PathBuf};

use backdrop_core::{
    BatchSize, Client, GenerateRequest, Generation, Recovery, TaskState, WaitControl, WaitOptions,
};
use futures_util::StreamExt;

/// Inputs in flight at once.
const CONCURRENCY: usize = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let folder = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(common::fixtures);
    let prompt = args
        .next()
        .unwrap_or_else(|| "a wooden table by a sunny window".to_owned());

    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&folder)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        })
        .collect();
    inputs.sort();
    eprintln!("{} PNG(s) in {}", inputs.len(), folder.display());

    let (client, _emulator) = common::client().await?;
    let outcomes: Vec<(PathBuf, backdrop_core::Result<Generation>)> =
        futures_util::stream::iter(inputs)
            .map(|path| {
                let (client, prompt) = (&client, prompt.as_str());
                async move {
                    let outcome = generate(client, &path, prompt).await;
                    (path, outcome)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;

    let mut failed = 0;
    for (path, outcome) in &outcomes {
        match outcome {
            Ok(generation) => {
                let stem = stem(path);
                for image in &generation.images {
                    common::save("backdrop-examples".as_ref(), &stem, image)?;
                }
                println!(
                    "ok   {}: {} image(s), {} credits",
                    path.display(),
                    generation.images.len(),
                    generation.credits
                );
            }
            Err(error) => {
                failed += 1;
                // `recovery` says what to do: retry, resume the task by id, ask, or give up.
                let advice = match error.recovery() {
                    Recovery::Retry => "safe to run again",
                    Recovery::Resume => "a task exists: resume it by its id",
                    Recovery::Unconfirmed => {
                        "a create may have been charged: check before retrying"
                    }
                    Recovery::ResultsLost => "charged, results lost",
                    Recovery::Permanent => "fix the input",
                };
                println!("FAIL {}: {error} ({advice})", path.display());
            }
        }
    }
    eprintln!("{} done, {failed} failed", outcomes.len());
    Ok(())
}

/// One input: its progress on stderr, one line per state change.
async fn generate(client: &Client, path: &Path, prompt: &str) -> backdrop_core::Result<Generation> {
    let request = GenerateRequest::builder()
        .image_path(path)
        .prompt(prompt)
        .batch_size(BatchSize::One)
        .build()?;
    let name = stem(path);
    let mut last: Option<TaskState> = None;
    client
        .generate(&request, WaitOptions::default(), |task| {
            if last != Some(task.state) {
                last = Some(task.state);
                eprintln!("  {name}: {}", task.state);
            }
            WaitControl::Continue
        })
        .await
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".to_owned())
}

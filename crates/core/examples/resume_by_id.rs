//! Picking a task up again by its id: after a crash, a timeout or a restart, the task runs on at
//! the service and its results stay downloadable for an hour. Never create it again — that is
//! a second charge.
//!
//! ```sh
//! cargo run -p backdrop-core --example resume_by_id [TASK_ID]
//! ```
//!
//! With a task id, it waits for that task and saves its images (the id must belong to the
//! service the client talks to). Without one, it creates a task, stops waiting at once (as an
//! interrupted program would), then resumes it by id from a brand-new client. Without
//! `PICWISH_API_KEY` it runs against a local emulator.

mod common;

use backdrop_core::{BatchSize, Client, Error, GenerateRequest, WaitControl, WaitOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, _emulator) = common::client().await?;
    let task_id = match std::env::args().nth(1) {
        Some(id) => id,
        None => create_and_walk_away(&client).await?,
    };

    // A new client knows nothing of the task but its id: as after a restart.
    let client = Client::new(client.config().clone())?;
    let task = client.wait_for_task(&task_id).await?;
    for image in client.download_results(&task).await? {
        let path = common::save("backdrop-examples".as_ref(), &task_id, &image)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Creates a task and stops waiting for it at its first answer; returns its id.
async fn create_and_walk_away(client: &Client) -> Result<String, Box<dyn std::error::Error>> {
    let request = GenerateRequest::builder()
        .image_path(common::fixtures().join("mug.png"))
        .prompt("a kitchen shelf with plants")
        .batch_size(BatchSize::One)
        .build()?;
    let task_id = client.create_task(&request).await?;
    eprintln!("created task {task_id}");
    let interrupted = client
        .wait_for_task_with(&task_id, WaitOptions::default(), |_| WaitControl::Cancel)
        .await;
    match interrupted {
        // The error carries the id, and says the task goes on: `Recovery::Resume`.
        Err(Error::Cancelled { task_id }) => {
            eprintln!("stopped waiting; resuming {task_id} by id");
            Ok(task_id)
        }
        Err(error) => Err(error.into()),
        Ok(task) => Ok(task.task_id),
    }
}

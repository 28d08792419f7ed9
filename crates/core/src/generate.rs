//! The whole flow in one call: create, wait, download.

use std::time::Duration;

use tokio::time::Instant;

use crate::client::Client;
use crate::error::Result;
use crate::request::GenerateRequest;
use crate::response::TaskInfo;
use crate::result::GeneratedImage;
use crate::wait::{WaitControl, WaitOptions};

/// A finished generation: the task as last reported, its images and what it cost.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The task as the last poll reported it.
    pub task: TaskInfo,
    /// The generated images, in index order.
    pub images: Vec<GeneratedImage>,
    /// Credits the task cost, by the spec's price list.
    pub credits: u32,
    /// From sending the create to having every image.
    pub elapsed: Duration,
}

impl Client {
    /// Creates a task, waits for it with `options` (calling `observe` on every poll) and
    /// downloads its images.
    ///
    /// On an error after the task was created, the error carries the task id where it matters
    /// for resuming ([`Error::Timeout`](crate::Error::Timeout),
    /// [`Error::Cancelled`](crate::Error::Cancelled)); use [`Client::create_task`],
    /// [`Client::wait_for_task_with`] and [`Client::download_results`] to keep the id at every
    /// step.
    pub async fn generate(
        &self,
        request: &GenerateRequest,
        options: WaitOptions,
        observe: impl FnMut(&TaskInfo) -> WaitControl + Send,
    ) -> Result<Generation> {
        let started = Instant::now();
        let task_id = self.create_task(request).await?;
        let task = self.wait_for_task_with(&task_id, options, observe).await?;
        let images = self.download_results(&task).await?;
        Ok(Generation {
            credits: task.credits_charged(),
            task,
            images,
            elapsed: started.elapsed(),
        })
    }
}

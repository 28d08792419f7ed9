//! `backdrop status`: one query of a task, and its results downloaded on request.

use crate::args::StatusArgs;
use crate::error::CliError;
use crate::output;
use crate::service::Service;

/// Runs `backdrop status`.
pub async fn run(args: &StatusArgs) -> Result<(), CliError> {
    let key = Service::check(&args.service)?;
    if key.is_none() && args.service.base_url.is_none() {
        return Err(CliError::Api(backdrop_core::Error::Config(
            "status needs the service that ran the task: set PICWISH_API_KEY (and PICWISH_BASE_URL for another server)".into(),
        )));
    }
    let service = Service::connect(&args.service, key, None).await?;
    let task = service.client.get_task(&args.task_id).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&task).unwrap_or_default()
        );
    } else {
        println!("task      {}", task.task_id);
        println!("state     {}", task.state);
        if let Some(progress) = task.progress {
            println!("progress  {progress:.0}%");
        }
        for (label, value) in [
            ("created", &task.created_at),
            ("processed", &task.processed_at),
            ("completed", &task.completed_at),
            ("detail", &task.state_detail),
        ] {
            if let Some(value) = value {
                println!("{label:<9} {value}");
            }
        }
        if let Some(ms) = task.time_elapsed {
            println!("elapsed   {:.1} s", ms / 1000.0);
        }
        for (index, field) in task.result_fields() {
            let shown = if field.len() > 120 {
                "(inline image data)"
            } else {
                field
            };
            println!("image_{index}   {shown}");
        }
        println!("credits   {}", task.credits_charged());
    }
    if let Some(out) = &args.out {
        // Named after the id typed here, made safe for a file name: the service's answer never
        // chooses where files go.
        let stem = output::safe_file_stem(&args.task_id);
        for image in service.client.download_results(&task).await? {
            let path = output::result_path(out, &stem, image.index, image.format.extension());
            output::write_atomically(&path, &image.bytes)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

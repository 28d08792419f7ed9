//! `backdrop generate --dry-run`: every input checked as a run would check it (the whole file),
//! looked up in the output folder's journal by the ledger's own rules, and the most the run would
//! cost — with nothing sent, nothing started and nothing written.

use std::time::Instant;

use backdrop_core::ledger::{
    Entry, InputKey, Ledger, MemoryStore, Owner, Plan, Policy, Refusal, Stage,
};
use backdrop_core::validate::{self, InspectFileError, PixelRules};
use serde::Serialize;

use crate::args::GenerateArgs;
use crate::error::{CliError, EXIT_OK};
use crate::generate::{counted_credits, key_of, request_of};
use crate::inputs::{self, InputSource};
use crate::journal;
use crate::service::Service;

/// What a run would do with one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A create would be sent.
    Send,
    /// A create would be sent again although an earlier one may already be charged
    /// (`--retry-unconfirmed`).
    SendAgainUnconfirmed,
    /// A create would be sent again for a task whose results were lost (`--regenerate-expired`).
    SendAgainExpired,
    /// Its task would be resumed by id: nothing new is charged.
    Resume,
    /// Its outputs exist: skipped.
    AlreadyDone,
    /// Refused locally (a rule of the service): nothing would be sent.
    RefusedLocally,
    /// Not sent: an earlier create may have been charged (`--retry-unconfirmed` to send it).
    NotSentUnconfirmed,
    /// Not sent: its results were lost after it was charged (`--regenerate-expired`).
    NotSentExpired,
    /// Not sent: it failed before and would fail the same way.
    NotSentFailedBefore,
}

/// One input's line.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedInput {
    /// The input as given.
    pub input: String,
    /// What a run would do.
    pub action: Action,
    /// The most it would cost.
    pub credits: u32,
    /// Why, for inputs not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// Every input, in order.
    pub inputs: Vec<PlannedInput>,
    /// Creates that would be sent (first creates and, apart, creates sent again).
    pub would_send: usize,
    /// The most the run would cost: the price of every create it would send (3 credits per
    /// image of the batch), those sent again included.
    pub max_credits: u64,
    /// Of those, creates sent again for inputs an earlier create may already have been charged
    /// for (`--retry-unconfirmed`) or whose results were lost (`--regenerate-expired`).
    pub sent_again: Vec<String>,
    /// Tasks that would be resumed (no new charge).
    pub resumed: usize,
    /// Inputs already done.
    pub already_done: usize,
    /// Inputs refused locally.
    pub refused_locally: usize,
    /// Inputs not sent by the ledger's rules (unconfirmed, results lost, failed before).
    pub not_sent: usize,
    /// The credit cap, when given: what the folder's journal counts already, and how many of
    /// the creates would fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit_cap: Option<CapPlan>,
    /// Seconds the checks took.
    pub seconds: f64,
}

/// What a credit cap would let through.
#[derive(Debug, Clone, Serialize)]
pub struct CapPlan {
    /// `--max-credits`.
    pub limit: u64,
    /// Credits the folder's journal counts already.
    pub counted: u64,
    /// Creates that fit under the cap, in order; the rest would be "not started".
    pub creates_within: usize,
}

/// Runs the dry run and prints it; the exit code.
pub async fn run(args: &GenerateArgs) -> Result<u8, CliError> {
    let plan = plan(args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        );
    } else {
        print!("{}", table(&plan));
    }
    Ok(EXIT_OK)
}

async fn plan(args: &GenerateArgs) -> Result<DryRun, CliError> {
    let started = Instant::now();
    let inputs = inputs::expand(&args.inputs)?;
    crate::generate::request_for(
        args,
        backdrop_core::GenerateRequest::builder().image_path("probe.png"),
    )?
    .build()?;
    let key = Service::check(&args.service)?;
    let (identity, stand_in) = Service::planned_identity(&args.service, key.as_deref())?;
    // The journal as it stands, read without its lock, into a store of its own: nothing is
    // written.
    let entries = journal::read_entries(&args.out)?.unwrap_or_default();
    let store = MemoryStore::new();
    for (key, entry) in &entries {
        if let Some(key) = InputKey::parse(key) {
            let _ = backdrop_core::ledger::LedgerStore::insert(&store, &key, entry).await;
        }
    }
    let ledger = Ledger::new(
        store,
        identity,
        Policy {
            retry_unconfirmed: args.retry_unconfirmed,
            regenerate_expired: args.regenerate_expired,
            ..Policy::exclusive()
        },
    )
    .with_stand_in(stand_in);
    let owner = Owner::exclusive("dry run");
    let rules = PixelRules {
        allow_opaque: args.allow_opaque,
        ..PixelRules::default()
    };
    let mut planned = Vec::new();
    for input in &inputs {
        let label = input.label();
        let refused = |reason: String| PlannedInput {
            input: label.clone(),
            action: Action::RefusedLocally,
            credits: 0,
            reason: Some(reason),
        };
        let request = match request_of(args, input) {
            Ok(request) => request,
            Err(failure) => {
                planned.push(refused(failure.message));
                continue;
            }
        };
        // The whole file, as the create would check it.
        if let InputSource::File(path) = &input.source {
            let checked = path.clone();
            let verdict =
                tokio::task::spawn_blocking(move || validate::check_png_file(&checked, rules))
                    .await
                    .map_err(|e| CliError::Journal(format!("the check stopped: {e}")))?;
            match verdict {
                Ok(_) => {}
                Err(InspectFileError::Invalid(rule)) => {
                    planned.push(refused(backdrop_core::Error::Invalid(rule).to_string()));
                    continue;
                }
                Err(InspectFileError::Io(error)) => {
                    planned.push(refused(format!("cannot read {}: {error}", path.display())));
                    continue;
                }
            }
        }
        let key = match key_of(input, &request).await {
            Ok(key) => key,
            Err(failure) => {
                planned.push(refused(failure.message));
                continue;
            }
        };
        let (plan, found) = ledger
            .plan(&key, &owner, |entry| outputs_exist(args, entry))
            .await
            .map_err(|e| CliError::Journal(e.to_string()))?;
        let cost = request.batch_size().credits();
        let earlier = found.as_ref().map(|entry| entry.stage);
        let (action, credits, reason) = match plan {
            Plan::Create if earlier == Some(Stage::Unconfirmed) || earlier == Some(Stage::Sending) => {
                (Action::SendAgainUnconfirmed, cost, Some("an earlier create may already be charged".into()))
            }
            Plan::Create if earlier == Some(Stage::Expired) => {
                (Action::SendAgainExpired, cost, Some("its earlier task was charged and its results lost".into()))
            }
            Plan::Create => (Action::Send, cost, None),
            Plan::Resume => (Action::Resume, 0, None),
            Plan::Done | Plan::Busy => (Action::AlreadyDone, 0, None),
            Plan::Refused(Refusal::Unconfirmed) => (
                Action::NotSentUnconfirmed,
                0,
                Some("an earlier create may have been charged; --retry-unconfirmed sends it again".into()),
            ),
            Plan::Refused(Refusal::ResultsLost) => (
                Action::NotSentExpired,
                0,
                Some("its task was charged and its results lost; --regenerate-expired generates it again".into()),
            ),
            Plan::Refused(_) => (
                Action::NotSentFailedBefore,
                0,
                found.and_then(|entry| entry.failure).map(|failure| failure.message),
            ),
        };
        planned.push(PlannedInput {
            input: label,
            action,
            credits,
            reason,
        });
    }
    let count = |action: Action| planned.iter().filter(|p| p.action == action).count();
    let sending: Vec<&PlannedInput> = planned.iter().filter(|p| p.credits > 0).collect();
    let credit_cap = args.max_credits.map(|limit| {
        let counted = counted_credits(&entries);
        let mut total = counted;
        let creates_within = sending
            .iter()
            .take_while(|p| {
                total += u64::from(p.credits);
                total <= limit
            })
            .count();
        CapPlan {
            limit,
            counted,
            creates_within,
        }
    });
    Ok(DryRun {
        would_send: sending.len(),
        max_credits: sending.iter().map(|p| u64::from(p.credits)).sum(),
        sent_again: sending
            .iter()
            .filter(|p| {
                matches!(
                    p.action,
                    Action::SendAgainUnconfirmed | Action::SendAgainExpired
                )
            })
            .map(|p| p.input.clone())
            .collect(),
        resumed: count(Action::Resume),
        already_done: count(Action::AlreadyDone),
        refused_locally: count(Action::RefusedLocally),
        not_sent: count(Action::NotSentUnconfirmed)
            + count(Action::NotSentExpired)
            + count(Action::NotSentFailedBefore),
        credit_cap,
        inputs: planned,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn outputs_exist(args: &GenerateArgs, entry: &Entry) -> bool {
    !entry.outputs.is_empty() && entry.outputs.iter().all(|o| args.out.join(o).is_file())
}

/// The plan for people.
fn table(plan: &DryRun) -> String {
    let mut out = String::from("dry run: nothing was sent\n");
    for input in &plan.inputs {
        let what = match input.action {
            Action::Send => "send",
            Action::SendAgainUnconfirmed | Action::SendAgainExpired => "SEND AGAIN",
            Action::Resume => "resume",
            Action::AlreadyDone => "done",
            Action::RefusedLocally => "refused",
            Action::NotSentUnconfirmed | Action::NotSentExpired | Action::NotSentFailedBefore => {
                "not sent"
            }
        };
        out.push_str(&format!("{what:<10} {}", input.input));
        if input.credits > 0 {
            out.push_str(&format!("  (at most {} credits)", input.credits));
        }
        out.push('\n');
        if let Some(reason) = &input.reason {
            out.push_str(&format!("           {reason}\n"));
        }
    }
    out.push_str(&format!(
        "{} inputs: {} creates would be sent, at most {} credits; {} resumed, {} already done, {} refused locally, {} not sent\n",
        plan.inputs.len(),
        plan.would_send,
        plan.max_credits,
        plan.resumed,
        plan.already_done,
        plan.refused_locally,
        plan.not_sent
    ));
    if !plan.sent_again.is_empty() {
        out.push_str(&format!(
            "of those, {} sent again although they may already be charged: {}\n",
            plan.sent_again.len(),
            plan.sent_again.join(", ")
        ));
    }
    if let Some(cap) = &plan.credit_cap {
        out.push_str(&format!(
            "credit cap {}: the folder counts {} already; {} of the {} creates fit, the rest would be not started\n",
            cap.limit, cap.counted, cap.creates_within, plan.would_send
        ));
    }
    out
}

//! What the CLI tells a user to do about a failure: core decides the remedy
//! ([`backdrop_core::remedy`]), this module gives it the CLI's words (its flags, its commands).

use backdrop_core::ledger::Failure;
use backdrop_core::remedy::{Actions, Fix, remedy};

/// The CLI's words for what a user can do ([`backdrop_core::remedy`] holds the meaning).
pub(crate) const ACTIONS: Actions<'static> = Actions {
    try_again: "run the same command again",
    resume: "run the same command again to resume it",
    retry_unconfirmed: "run again with --retry-unconfirmed to create it again",
    regenerate_expired: "run with --regenerate-expired",
    change_prompt: "change the prompt (--prompt), then run again",
    change_image: "replace the image (or change the prompt), then run again",
    check_key: "check the API key (PICWISH_API_KEY or --api-key-file), then run again",
    change_input: "change the image or the options, then run again",
};

/// `message` followed by what to do about `failure`, in the CLI's words.
pub(crate) fn with_remedy(message: &str, failure: &Failure, task_id: Option<&str>) -> String {
    let fix = Fix::of(
        failure.task_state.map(backdrop_core::TaskState::from_code),
        failure.http_status,
    );
    let remedy = remedy(
        failure.recovery,
        fix,
        failure.credits_spent,
        task_id.or(failure.task_id.as_deref()),
        &ACTIONS,
    );
    format!("{message}; {remedy}")
}

//! What a user can do about a failure, written once: the meaning comes from [`Recovery`] and
//! the task state's [`Fix`]; each adapter gives only its own words for the actions ([`Actions`]:
//! the CLI's flags, the Lambda's metadata).

use crate::error::Recovery;
use crate::state::TaskState;

/// What has to change before an input that failed for good can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// The prompt (state -17).
    Prompt,
    /// The image or the prompt: the content was judged prohibited (states -10, -16).
    Content,
    /// The image itself (states -7, -14, -5; a local rule).
    Image,
    /// The image's URL (state -3: the service could not download it).
    ImageUrl,
    /// The API key (HTTP 401).
    Key,
    /// Something of the input or its options (anything else that fails the same way again).
    Input,
    /// The image breaks a rule of the service, found before anything was sent.
    ImageRule,
    /// The options break a rule of the service, found before anything was sent.
    OptionsRule,
}

impl Fix {
    /// The fix for a failure of state `state` or HTTP status `http_status`.
    pub fn of(state: Option<TaskState>, http_status: Option<u16>) -> Fix {
        match (state, http_status) {
            (Some(TaskState::InvalidPrompt), _) => Fix::Prompt,
            (Some(TaskState::InternalReviewRejected | TaskState::ThirdPartyReviewRejected), _) => {
                Fix::Content
            }
            (
                Some(
                    TaskState::InvalidImageFile
                    | TaskState::ImageContentRejected
                    | TaskState::ImageUrlTooLarge,
                ),
                _,
            ) => Fix::Image,
            (Some(TaskState::ImageUrlDownloadFailed), _) => Fix::ImageUrl,
            (_, Some(401)) => Fix::Key,
            _ => Fix::Input,
        }
    }
}

/// An adapter's words for the actions a remedy names, each a phrase that completes "…: PHRASE".
#[derive(Debug, Clone, Copy)]
pub struct Actions<'a> {
    /// How the same input is tried again (nothing was charged).
    pub try_again: &'a str,
    /// How a recorded task is resumed by its id.
    pub resume: &'a str,
    /// How the user asks to create again what may already be charged.
    pub retry_unconfirmed: &'a str,
    /// How the user asks to generate again what was charged and lost.
    pub regenerate_expired: &'a str,
    /// How the prompt is changed.
    pub change_prompt: &'a str,
    /// How the image is replaced.
    pub change_image: &'a str,
    /// How the key is checked.
    pub check_key: &'a str,
    /// How the input or its options are changed.
    pub change_input: &'a str,
}

/// What to do about a failure of `recovery` (with the task state and HTTP status it had, and
/// whether credits were or may have been spent), in `actions`' words: one sentence, lower case
/// first, no final stop. `task` names the task ("task T1") when there is one.
pub fn remedy(
    recovery: Recovery,
    fix: Fix,
    charged: bool,
    task: Option<&str>,
    actions: &Actions<'_>,
) -> String {
    let task = task.map_or_else(|| "the task".to_owned(), |id| format!("task {id}"));
    let spent = match (fix, charged) {
        (Fix::ImageRule | Fix::OptionsRule, _) => "nothing was sent",
        (_, true) => "credits were (or may have been) spent",
        (_, false) => "nothing was charged",
    };
    match recovery {
        Recovery::Retry => format!("{spent}: {}", actions.try_again),
        Recovery::Resume => format!(
            "{task} is kept and nothing is charged twice: {}",
            actions.resume
        ),
        Recovery::Unconfirmed => format!(
            "the service may have accepted the create and charged it, and the API cannot tell: \
             it is not created again unless you ask — {} (it may then be charged twice)",
            actions.retry_unconfirmed
        ),
        Recovery::ResultsLost => format!(
            "{task} was charged (or may have been) and its results are gone: to generate it \
             again (charged again), {}",
            actions.regenerate_expired
        ),
        Recovery::Permanent => {
            let what = match fix {
                Fix::Prompt => actions.change_prompt.to_owned(),
                Fix::Content => format!(
                    "the content was judged prohibited: {}",
                    actions.change_image
                ),
                Fix::Image | Fix::ImageRule => format!(
                    "the image does not meet the requirements (a transparent PNG of {}–{} px, at \
                     most {} MiB, with only the product): {}",
                    crate::spec::MIN_IMAGE_SIDE,
                    crate::spec::MAX_IMAGE_SIDE,
                    crate::spec::MAX_IMAGE_FILE_BYTES / (1024 * 1024),
                    actions.change_image
                ),
                Fix::ImageUrl => format!(
                    "the service could not download the image from its URL: make it reachable, or {}",
                    actions.change_image
                ),
                Fix::Key => actions.check_key.to_owned(),
                Fix::Input => format!(
                    "the same input would fail the same way: {}",
                    actions.change_input
                ),
                Fix::OptionsRule => format!(
                    "the options break a rule of the service: {}",
                    actions.change_input
                ),
            };
            format!("{what}; {spent}")
        }
    }
}

/// `text` with its first letter in upper case (a remedy as a sentence of its own).
pub fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).chain(['.']).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: Actions<'static> = Actions {
        try_again: "run again",
        resume: "run again to resume it",
        retry_unconfirmed: "run with --retry-unconfirmed",
        regenerate_expired: "run with --regenerate-expired",
        change_prompt: "change --prompt",
        change_image: "use another image",
        check_key: "check PICWISH_API_KEY",
        change_input: "change the image or the options",
    };

    #[test]
    fn every_recovery_says_what_to_do_in_the_adapters_words() {
        let say = |recovery, fix, charged| remedy(recovery, fix, charged, Some("T1"), &WORDS);
        assert!(say(Recovery::Unconfirmed, Fix::Input, true).contains("--retry-unconfirmed"));
        assert!(say(Recovery::ResultsLost, Fix::Input, true).contains("task T1 was charged"));
        assert!(say(Recovery::Resume, Fix::Input, false).contains("resume it"));
        assert!(say(Recovery::Retry, Fix::Input, false).starts_with("nothing was charged"));
        assert!(
            say(Recovery::Permanent, Fix::Key, true)
                .ends_with("credits were (or may have been) spent")
        );
        let prompt = say(
            Recovery::Permanent,
            Fix::of(Some(TaskState::InvalidPrompt), None),
            false,
        );
        assert!(prompt.contains("change --prompt"), "{prompt}");
        let image = say(
            Recovery::Permanent,
            Fix::of(Some(TaskState::InvalidImageFile), None),
            false,
        );
        assert!(
            image.contains("256–4096 px") && image.contains("20 MiB"),
            "{image}"
        );
        assert_eq!(Fix::of(None, Some(401)), Fix::Key);
        assert_eq!(
            Fix::of(Some(TaskState::ThirdPartyReviewRejected), None),
            Fix::Content
        );
        assert_eq!(sentence("nothing was charged"), "Nothing was charged.");
    }
}

//! Tasks: a generation task's id and the last state the library saw of it.

#![allow(unsafe_code)] // exports #[no_mangle] functions

use std::ffi::{CString, c_char};

use backdrop_core::{StateClass, TaskInfo, TaskState};

use crate::error::Fault;
use crate::handle::{Castable, OwnershipBox, c_string, free_box, to_box_ptr, try_ref};
use crate::result::backdrop_result;
use crate::result::backdrop_result::{
    BACKDROP_ERR_RESULT_MISSING, BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE,
    BACKDROP_ERR_TASK_NOT_SUCCEEDED,
};

/// A background generation task at the service: its id and the last state seen of it.
///
/// Made by `backdrop_client_create_task` or, to resume after a restart, by
/// `backdrop_task_from_id`. Owned by the caller, who frees it with `backdrop_task_free`.
/// `backdrop_client_poll` and `backdrop_client_wait` update it in place, so one task must not be
/// used by two threads at once while one of them polls or waits; reading it from several threads
/// is fine otherwise.
pub struct backdrop_task {
    _private: [u8; 0],
}

impl Castable for backdrop_task {
    type Ownership = OwnershipBox;
    type RustType = TaskData;
}

/// What a `backdrop_task` holds.
#[derive(Debug, Clone)]
pub(crate) struct TaskData {
    id: String,
    c_id: CString,
    info: Option<TaskInfo>,
}

impl TaskData {
    /// A task known by its id only (never polled).
    pub(crate) fn new(id: &str) -> TaskData {
        TaskData {
            id: id.to_owned(),
            c_id: c_string(id),
            info: None,
        }
    }

    /// A task as one poll reported it.
    pub(crate) fn polled(id: &str, info: TaskInfo) -> TaskData {
        TaskData {
            info: Some(info),
            ..TaskData::new(id)
        }
    }

    /// The task id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Records a poll's answer.
    pub(crate) fn update(&mut self, info: TaskInfo) {
        self.info = Some(info);
    }

    /// Result `number`: the field `data.image_<number>` and its number (`image_1` is number 1,
    /// as in the spec, in core and in the CLI's file names).
    pub(crate) fn result_field(&self, number: usize) -> Result<(u8, &str), Fault> {
        let info = match &self.info {
            Some(info) if info.class() == StateClass::Succeeded => info,
            other => {
                let state = other.as_ref().map(|info| info.state);
                let seen = state.map_or_else(
                    || "it has not been polled yet".to_owned(),
                    |state| format!("its last state is {state}"),
                );
                return Err(Fault::new(
                    BACKDROP_ERR_TASK_NOT_SUCCEEDED,
                    format!(
                        "task {} has not succeeded ({seen}); wait for it with backdrop_client_wait before downloading",
                        self.id
                    ),
                )
                .with_task_id(&self.id));
            }
        };
        let fields = info.result_fields();
        let count = fields.len();
        if count == 0 {
            return Err(Fault::new(
                BACKDROP_ERR_RESULT_MISSING,
                format!("task {} succeeded but reported no result image", self.id),
            )
            .with_task_id(&self.id));
        }
        let present = fields
            .iter()
            .map(|(n, _)| format!("image_{n}"))
            .collect::<Vec<_>>()
            .join(" and ");
        if let Some(found) = fields.iter().position(|(n, _)| usize::from(*n) == number) {
            return Ok(fields[found]);
        }
        let failure = if (1..=count).contains(&number) {
            // Within the count but not reported: a service that skipped image_1.
            Fault::new(
                BACKDROP_ERR_RESULT_MISSING,
                format!(
                    "task {} reported no image_{number} (its results: {present})",
                    self.id
                ),
            )
        } else {
            let hint = if number == 0 {
                " (numbers start at 1, as the spec's data.image_1)"
            } else {
                ""
            };
            Fault::new(
                BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE,
                format!(
                    "result number {number} is out of range{hint}: task {} has {count} result image(s), numbered 1 to {count} ({present})",
                    self.id
                ),
            )
        };
        Err(failure.with_task_id(&self.id))
    }

    fn state(&self) -> TaskState {
        self.info
            .as_ref()
            .map_or(TaskState::Queued, |info| info.state)
    }
}

/// A task handle for `task_id`, to resume a task after a restart: poll, wait for or download it
/// with any client whose key created it.
///
/// `task_id` is copied (leading and trailing white space removed) and must not be empty. The new
/// task has not been polled: its state reads 0 and its result count 0 until the first
/// `backdrop_client_poll` or `backdrop_client_wait`.
///
/// On success writes a new task to `*task_out` (the caller frees it with `backdrop_task_free`)
/// and returns `BACKDROP_OK`; otherwise writes nothing and returns `BACKDROP_ERR_NULL_PARAMETER`,
/// `BACKDROP_ERR_INVALID_UTF8` or `BACKDROP_ERR_INVALID_ARGUMENT` (blank id). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_task_from_id(
    task_id: *const c_char,
    task_out: *mut *mut backdrop_task,
) -> backdrop_result {
    ffi_boundary!({
        let id = arg_str!(task_id).trim();
        let task_out = arg_out!(task_out);
        if id.is_empty() {
            return Err(Fault::invalid_argument("the task id is empty"));
        }
        write_out!(task_out, to_box_ptr::<backdrop_task>(TaskData::new(id)));
        Ok(())
    })
}

/// The task's id.
///
/// Returns a NUL-terminated string owned by `task`, valid until `backdrop_task_free` (it never
/// changes); NULL when `task` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_task_id(task: *const backdrop_task) -> *const c_char {
    ffi_infallible!(std::ptr::null(), {
        // SAFETY: the header's contract: NULL or a live task.
        unsafe { try_ref(task) }.map_or(std::ptr::null(), |task| task.c_id.as_ptr())
    })
}

/// The task's state (`data.state`) as last seen: 1 succeeded, 0 or above 1 still running
/// (0 queued, 2 preparing, 3 waiting, 4 processing, 5 publishing, 6 processing), below 0 failed
/// (e.g. -17 invalid prompt, -7 invalid image; `backdrop_task_state_meaning` explains each).
///
/// 0 before the first poll, and when `task` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_task_state(task: *const backdrop_task) -> i32 {
    ffi_infallible!(0, {
        // SAFETY: the header's contract: NULL or a live task.
        unsafe { try_ref(task) }.map_or(0, |task| task.state().code())
    })
}

/// The task's progress (`data.progress`, 0 to 100) as last seen, or -1 when the service did not
/// report one, before the first poll, and when `task` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_task_progress(task: *const backdrop_task) -> f64 {
    ffi_infallible!(-1.0, {
        // SAFETY: the header's contract: NULL or a live task.
        unsafe { try_ref(task) }
            .and_then(|task| task.info.as_ref())
            .and_then(|info| info.progress)
            .unwrap_or(-1.0)
    })
}

/// The number of result images of a succeeded task (1 or 2); 0 while the task has not
/// succeeded as last seen, and when `task` is NULL.
///
/// Results are numbered from 1, as the spec's fields: number 1 is `data.image_1`, number 2
/// `data.image_2`; download them with numbers 1 to this count:
/// `for (size_t n = 1; n <= backdrop_task_result_count(task); n++)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_task_result_count(task: *const backdrop_task) -> usize {
    ffi_infallible!(0, {
        // SAFETY: the header's contract: NULL or a live task.
        unsafe { try_ref(task) }
            .and_then(|task| task.info.as_ref())
            .filter(|info| info.class() == StateClass::Succeeded)
            .map_or(0, |info| info.result_fields().len())
    })
}

/// What a task state means, in the spec's words (e.g. `"processing failed because the prompt
/// is invalid"` for -17).
///
/// Returns a static NUL-terminated string (never freed). Never NULL; thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn backdrop_task_state_meaning(state: i32) -> *const c_char {
    ffi_infallible!(c"".as_ptr(), {
        let meaning = TaskState::from_code(state).meaning();
        crate::handle::static_c_string(meaning)
    })
}

/// Frees a task. NULL is a no-op. The string from `backdrop_task_id` dies with it; the task
/// itself goes on at the service.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_task_free(task: *mut backdrop_task) {
    ffi_infallible!((), {
        // SAFETY: the header's contract: NULL or a live task, freed once.
        unsafe { free_box(task) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::backdrop_result;

    fn succeeded(image_1: Option<&str>, image_2: Option<&str>) -> TaskData {
        let info = TaskInfo {
            task_id: "t1".to_owned(),
            state: TaskState::from_code(1),
            progress: Some(100.0),
            created_at: None,
            processed_at: None,
            completed_at: None,
            image_1: image_1.map(str::to_owned),
            image_2: image_2.map(str::to_owned),
            return_type: None,
            state_detail: None,
            time_elapsed: None,
        };
        TaskData::polled("t1", info)
    }

    fn code(task: &TaskData, number: usize) -> backdrop_result {
        task.result_field(number)
            .map_or_else(|failure| failure.code(), |_| backdrop_result::BACKDROP_OK)
    }

    #[test]
    fn results_are_numbered_from_1_as_the_spec_fields() {
        let both = succeeded(Some("https://a/1.jpg"), Some("https://a/2.jpg"));
        assert_eq!(both.result_field(1).unwrap(), (1, "https://a/1.jpg"));
        assert_eq!(both.result_field(2).unwrap(), (2, "https://a/2.jpg"));
        for number in [0, 3, usize::MAX] {
            assert_eq!(
                code(&both, number),
                backdrop_result::BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE
            );
        }
        let zero = both.result_field(0).unwrap_err();
        assert!(zero.message().contains("start at 1"), "{}", zero.message());

        let one = succeeded(Some("https://a/1.jpg"), None);
        assert_eq!(one.result_field(1).unwrap().0, 1);
        assert_eq!(
            code(&one, 2),
            backdrop_result::BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE
        );

        // A service that skipped image_1: number 2 is still image_2, and number 1 is missing
        // (not silently the second image).
        let skipped = succeeded(None, Some("https://a/2.jpg"));
        assert_eq!(
            code(&skipped, 1),
            backdrop_result::BACKDROP_ERR_RESULT_MISSING
        );
        assert_eq!(skipped.result_field(2).unwrap(), (2, "https://a/2.jpg"));
    }

    #[test]
    fn meanings_are_static_and_nul_terminated() {
        // SAFETY: static NUL-terminated strings.
        let text = |state| unsafe { std::ffi::CStr::from_ptr(backdrop_task_state_meaning(state)) };
        assert!(text(-17).to_str().unwrap().contains("prompt is invalid"));
        assert!(text(1).to_str().unwrap().contains("completed"));
        assert!(text(-99).to_str().unwrap().contains("undocumented"));
        // The same pointer every time: interned, not leaked per call.
        assert_eq!(
            backdrop_task_state_meaning(4),
            backdrop_task_state_meaning(4)
        );
    }
}

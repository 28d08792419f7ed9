//! The client: creates tasks, polls and waits for them, downloads their results. Each call
//! blocks the calling thread while the client's own worker threads do the I/O.

#![allow(unsafe_code)] // exports #[no_mangle] functions; calls the C progress callback

use std::ffi::{c_char, c_void};
use std::future::Future;
use std::time::Duration;

use backdrop_core::{
    Client, ClientConfig, GeneratedImage, PollPolicy, TaskInfo, WaitControl, WaitOptions,
};
use tokio::runtime::{Handle, Runtime};

use crate::bytes::backdrop_bytes;
use crate::error::{Fault, backdrop_error};
use crate::handle::{Castable, OwnershipArc, free_arc, to_box_ptr};
use crate::request::backdrop_request;
use crate::result::backdrop_result;
use crate::result::backdrop_result::{
    BACKDROP_ERR_INVALID_ARGUMENT, BACKDROP_ERR_IO, BACKDROP_ERR_NESTED_CALL, BACKDROP_ERR_RUNTIME,
};
use crate::task::{TaskData, backdrop_task};

/// Worker threads of each client: enough to drive its connections; the calls themselves block
/// their callers' threads.
const WORKER_THREADS: usize = 2;

/// How long dropping a client waits for its worker threads to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the Generate Background API, bound to one API key.
///
/// Made by `backdrop_client_builder_build`; released by `backdrop_client_free`. Immutable and
/// thread-safe: one client may be used by any number of threads at once, and all its calls share
/// one rate limit (the key's QPS) and one connection pool, so sharing a client is how several
/// threads stay within the key's budget.
///
/// Each client owns two worker threads that do its I/O; its calls block the calling thread until
/// they are done. A call must not be made from inside a progress callback or from a thread that
/// runs an async runtime (it returns `BACKDROP_ERR_NESTED_CALL`). `fork()` after creating a
/// client is not supported: the child gets no worker threads; create clients after forking.
pub struct backdrop_client {
    _private: [u8; 0],
}

impl Castable for backdrop_client {
    type Ownership = OwnershipArc;
    type RustType = ClientState;
}

/// What a `backdrop_client` holds.
#[derive(Debug)]
pub(crate) struct ClientState {
    /// `None` only while being dropped.
    runtime: Option<Runtime>,
    core: Client,
    poll_interval: Duration,
    poll_policy: PollPolicy,
    api_key: String,
}

/// Blocks SIGPIPE in the calling thread (one of the client's). A write to a connection the
/// server has closed raises SIGPIPE, whose default action ends the process: Rust programs ignore
/// it from the start, C, C++ and Go programs do not. Blocked, it stays pending on the thread and
/// the write fails with EPIPE, which the client reports as a network failure. The host's own
/// threads and handlers are left alone.
fn block_sigpipe() {
    #[cfg(unix)]
    {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
        let mut pipe = SigSet::empty();
        pipe.add(Signal::SIGPIPE);
        // It fails only for an invalid `how`, and SIG_BLOCK is valid.
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&pipe), None);
    }
}

impl ClientState {
    /// Starts a client of `config` that waits by `poll_policy` (polls at least `poll_interval`
    /// apart). `api_key` is the key in `config`, to be kept out of every message.
    pub(crate) fn start(
        config: ClientConfig,
        poll_interval: Duration,
        poll_policy: PollPolicy,
        api_key: &str,
    ) -> Result<ClientState, Fault> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("backdrop-worker")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
            .map_err(|e| {
                Fault::new(
                    BACKDROP_ERR_RUNTIME,
                    format!("cannot start the client's worker threads: {e}"),
                )
            })?;
        let core = {
            let _context = runtime.enter();
            Client::new(config).map_err(|e| Fault::from(e).redact(api_key))?
        };
        Ok(ClientState {
            runtime: Some(runtime),
            core,
            poll_interval,
            poll_policy,
            api_key: api_key.to_owned(),
        })
    }

    /// Runs one async call of the core client to completion on the calling thread.
    fn run<T>(&self, call: impl Future<Output = backdrop_core::Result<T>>) -> Result<T, Fault> {
        if Handle::try_current().is_ok() {
            return Err(Fault::new(
                BACKDROP_ERR_NESTED_CALL,
                "a blocking backdrop call was made from inside a progress callback or from a \
                 thread that runs an async runtime; make it from a plain thread",
            ));
        }
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Fault::new(BACKDROP_ERR_RUNTIME, "the client is shutting down"))?;
        runtime
            .block_on(call)
            .map_err(|error| Fault::from(error).redact(&self.api_key))
    }
}

impl Drop for ClientState {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if Handle::try_current().is_ok() {
                // Inside an async context blocking is not allowed: let the threads stop on
                // their own.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
            }
        }
    }
}

/// Called by `backdrop_client_wait` after every poll, on the thread that called
/// `backdrop_client_wait`.
///
/// `userdata` is the pointer given to `backdrop_client_wait`, passed through untouched. `task`
/// is a read-only view of the task as this poll saw it (read it with `backdrop_task_id`,
/// `backdrop_task_state`, `backdrop_task_progress`), valid only until the callback returns; do
/// not free it.
///
/// Return `BACKDROP_PROGRESS_CONTINUE` (0) to keep waiting, or any other value (such as
/// `BACKDROP_PROGRESS_CANCEL`) to stop: `backdrop_client_wait` then returns
/// `BACKDROP_ERR_CANCELLED` (the task itself goes on and can be resumed). The callback must
/// return normally: no `longjmp` and no C++ exception may leave it, and it must not call the
/// client's blocking functions (they return `BACKDROP_ERR_NESTED_CALL`).
pub type backdrop_progress_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, task: *const backdrop_task) -> u32>;

/// What a progress callback returns.
#[repr(u32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum backdrop_progress_action {
    /// Keep waiting.
    BACKDROP_PROGRESS_CONTINUE = 0,
    /// Stop waiting; `backdrop_client_wait` returns `BACKDROP_ERR_CANCELLED`.
    BACKDROP_PROGRESS_CANCEL = 1,
}

/// The C callback and its userdata, carried into the wait's observer.
struct Progress {
    callback: unsafe extern "C" fn(*mut c_void, *const backdrop_task) -> u32,
    userdata: *mut c_void,
    task_id: String,
}

// SAFETY: the observer holding this runs inside the future that `Runtime::block_on` polls on the
// calling thread; it is never moved to or called from another thread. The `Send` bound of
// `wait_for_task_with` is satisfied without the pointer ever crossing threads.
unsafe impl Send for Progress {}

impl Progress {
    fn observe(&mut self, info: &TaskInfo) -> WaitControl {
        let view = TaskData::polled(&self.task_id, info.clone());
        let view_ptr = std::ptr::from_ref(&view).cast::<backdrop_task>();
        // SAFETY: the caller of backdrop_client_wait passed a valid function pointer and
        // userdata for it (the header's contract); `view_ptr` points to a live task view for the
        // duration of the call.
        let answer = unsafe { (self.callback)(self.userdata, view_ptr) };
        if answer == backdrop_progress_action::BACKDROP_PROGRESS_CONTINUE as u32 {
            WaitControl::Continue
        } else {
            WaitControl::Cancel
        }
    }
}

/// Creates a task for `request` at the service and returns it, not yet polled.
///
/// Validates the request locally first (the same checks as `backdrop_request_validate`: a bad
/// input is refused before anything is sent, costing nothing), then uploads it. Retries only when
/// the service surely did not accept the create; a create that may have reached the service is
/// never sent twice (`BACKDROP_ERR_NETWORK_MAYBE_CREATED`). Blocks until done.
///
/// On success writes a new task to `*task_out` (the caller frees it with `backdrop_task_free`)
/// and returns `BACKDROP_OK`. Otherwise writes nothing to `*task_out` and returns the failure's
/// code (`BACKDROP_ERR_INVALID_*`, `BACKDROP_ERR_IO`, `BACKDROP_ERR_CREDIT_CAP`,
/// `BACKDROP_ERR_UNAUTHORIZED`, `BACKDROP_ERR_RATE_LIMITED`, `BACKDROP_ERR_SERVER`,
/// `BACKDROP_ERR_NETWORK*`, …), with the
/// detail in `*error_out` if `error_out` is not NULL (the caller frees it). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_create_task(
    client: *const backdrop_client,
    request: *const backdrop_request,
    task_out: *mut *mut backdrop_task,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let client = arg_ref!(client);
        let request = arg_ref!(request);
        let task_out = arg_out!(task_out);
        // The core create checks the whole image before anything is sent.
        let request = request.build()?;
        let task_id = client.run(client.core.create_task(&request))?;
        write_out!(
            task_out,
            to_box_ptr::<backdrop_task>(TaskData::new(&task_id))
        );
        Ok(())
    })
}

/// Queries the task once and records its state, progress and results in `task`.
///
/// A poll that works returns `BACKDROP_OK` whatever the task's state — read it with
/// `backdrop_task_state` (a failed task is a negative state, not an error here). Retried on
/// transient failures. Blocks until done.
///
/// On success updates `task` and returns `BACKDROP_OK`. Otherwise leaves `task` as it was and
/// returns the failure's code (e.g. `BACKDROP_ERR_NOT_FOUND` for an unknown task id), with the
/// detail in `*error_out` if `error_out` is not NULL (the caller frees it). `task` must not be
/// used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_poll(
    client: *const backdrop_client,
    task: *mut backdrop_task,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let client = arg_ref!(client);
        let task = arg_mut!(task);
        let info = client
            .run(client.core.get_task(task.id()))
            .map_err(|failure| failure.with_task_id(task.id()))?;
        task.update(info);
        Ok(())
    })
}

/// Waits until the task succeeds, fails or runs out of time, polling it by the client's poll
/// policy (adaptive by default, see `backdrop_client_builder_set_poll_policy`) and calling
/// `callback` after every poll.
///
/// `timeout_ms` is the longest wait in milliseconds; 0 means the spec's limit of 300 000, and
/// longer values are capped to it. `callback` may be NULL; `userdata` is passed to it untouched
/// and may be NULL. Blocks the calling thread, on which `callback` runs.
///
/// Returns `BACKDROP_OK` when the task succeeded: `task` then holds its final state and its
/// result count. Otherwise leaves `task` as it was and returns `BACKDROP_ERR_TASK_FAILED` (the
/// failed state is in the error detail), `BACKDROP_ERR_TIMEOUT`, `BACKDROP_ERR_CANCELLED` (the
/// callback asked to stop), `BACKDROP_ERR_NESTED_CALL` or the failure of a poll, with the detail
/// in `*error_out` if `error_out` is not NULL (the caller frees it). After a timeout or a
/// cancellation the task goes on at the service: wait again, or resume it later by its id.
/// `task` must not be used by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_wait(
    client: *const backdrop_client,
    task: *mut backdrop_task,
    timeout_ms: u32,
    callback: backdrop_progress_callback,
    userdata: *mut c_void,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let client = arg_ref!(client);
        let task = arg_mut!(task);
        let max_wait = match timeout_ms {
            0 => backdrop_core::spec::MAX_POLL_DURATION,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let options = WaitOptions {
            policy: client.poll_policy,
            poll_interval: client.poll_interval,
            max_wait,
        };
        let mut progress = callback.map(|callback| Progress {
            callback,
            userdata,
            task_id: task.id().to_owned(),
        });
        let observe = move |info: &TaskInfo| match progress.as_mut() {
            Some(progress) => progress.observe(info),
            None => WaitControl::Continue,
        };
        let info = client
            .run(client.core.wait_for_task_with(task.id(), options, observe))
            .map_err(|failure| failure.with_task_id(task.id()))?;
        task.update(info);
        Ok(())
    })
}

/// Downloads result image `number` of a succeeded task — numbered from 1 as the spec's fields:
/// 1 for `data.image_1`, 2 for `data.image_2`, up to `backdrop_task_result_count` — checks that
/// it is a JPEG, PNG or WebP image, and returns its bytes. Result URLs live one hour after the
/// task succeeded. Downloads never carry the API key and do not count against the
/// rate limit. Blocks until done.
///
/// On success writes the image to `*bytes_out` (the caller frees it with `backdrop_bytes_free`)
/// and returns `BACKDROP_OK`. Otherwise writes nothing and returns
/// `BACKDROP_ERR_TASK_NOT_SUCCEEDED` (wait for the task first),
/// `BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE` (0, or over the result count),
/// `BACKDROP_ERR_RESULT_MISSING`, `BACKDROP_ERR_RESULT_EXPIRED`, `BACKDROP_ERR_RESULT_INVALID`,
/// `BACKDROP_ERR_NETWORK`, …, with the detail in `*error_out` if
/// `error_out` is not NULL (the caller frees it). Thread-safe for a task nobody polls meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_download(
    client: *const backdrop_client,
    task: *const backdrop_task,
    number: usize,
    bytes_out: *mut *mut backdrop_bytes,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let client = arg_ref!(client);
        let task = arg_ref!(task);
        let bytes_out = arg_out!(bytes_out);
        let image = fetch(client, task, number)?;
        write_out!(bytes_out, to_box_ptr::<backdrop_bytes>(image));
        Ok(())
    })
}

/// Downloads result image `number` (1 or 2) like `backdrop_client_download` and writes it to the file at
/// `path` (created or replaced). The file is written under a temporary name in the same folder
/// and renamed, so `path` never holds a partial image.
///
/// Returns `BACKDROP_OK` when the file is written; otherwise the file at `path` is left as it
/// was and the result is as for `backdrop_client_download`, plus `BACKDROP_ERR_IO` when the
/// file cannot be written, with the detail in `*error_out` if `error_out` is not NULL (the
/// caller frees it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_download_to_file(
    client: *const backdrop_client,
    task: *const backdrop_task,
    number: usize,
    path: *const c_char,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let client = arg_ref!(client);
        let task = arg_ref!(task);
        let path = arg_path!(path);
        if path.as_os_str().is_empty() {
            return Err(Fault::new(
                BACKDROP_ERR_INVALID_ARGUMENT,
                "the output path is empty",
            ));
        }
        let image = fetch(client, task, number)?;
        image.save(&path).map_err(|error| {
            Fault::new(
                BACKDROP_ERR_IO,
                format!("cannot write {}: {error}", path.display()),
            )
        })
    })
}

/// The number of API requests this client has sent so far (retries included, downloads not),
/// from all threads; 0 when `client` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_requests_sent(client: *const backdrop_client) -> u64 {
    ffi_infallible!(0, {
        // SAFETY: the header's contract: NULL or a live client.
        unsafe { crate::handle::try_ref(client) }.map_or(0, |client| client.core.requests_sent())
    })
}

/// Writes to `*credits_out` the credits the client has spent and reserved under its cap
/// (`backdrop_client_builder_set_max_credits`): what its succeeded tasks were charged, the most
/// its running tasks and its creates that may have been accepted can cost; refused creates and
/// failed tasks count nothing. Thread-safe.
///
/// Returns `BACKDROP_OK` and writes the total; `BACKDROP_ERR_INVALID_ARGUMENT` when the client
/// has no cap, or `BACKDROP_ERR_NULL_PARAMETER` (nothing written).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_credits_spent(
    client: *const backdrop_client,
    credits_out: *mut u64,
) -> backdrop_result {
    ffi_boundary!({
        let client = arg_ref!(client);
        let credits_out = arg_out!(credits_out);
        let total = client.run(client.core.credits_total())?.ok_or_else(|| {
            Fault::invalid_argument(
                "the client has no credit cap: set one with backdrop_client_builder_set_max_credits",
            )
        })?;
        write_out!(credits_out, total);
        Ok(())
    })
}

/// Releases a client. NULL is a no-op.
///
/// Stops the client's worker threads (waiting up to 5 seconds for them) and closes its
/// connections. No call of this client may be running or start afterwards, on any thread;
/// tasks, bytes and errors obtained through it stay valid. Tasks at the service go on.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_client_free(client: *const backdrop_client) {
    ffi_infallible!((), {
        // SAFETY: the header's contract: NULL or a live client whose reference the caller gives
        // up, with no call of it running.
        unsafe { free_arc(client) }
    })
}

/// Downloads result `number` (1 for `image_1`) of a succeeded task.
fn fetch(client: &ClientState, task: &TaskData, number: usize) -> Result<GeneratedImage, Fault> {
    let (field_number, field) = task.result_field(number)?;
    client
        .run(client.core.fetch_result(task.id(), field_number, field))
        .map_err(|failure| failure.with_task_id(task.id()))
}

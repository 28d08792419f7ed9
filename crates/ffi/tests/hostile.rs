//! The C ABI against the hostile server's table of cases (`backdrop_tests::hostile`), shared
//! with the CLI's and the Lambda's tests: for each case two inputs go through
//! `backdrop_client_create_task`, `backdrop_client_wait` and `backdrop_client_download_to_file`
//! exactly as a C program calls them, and then the checks that hold for every adapter — one
//! create per input, the key never away from the API's origin, no file outside the folder the
//! caller named — and the fate the case expects, read from the result codes and the error's
//! recovery.

// Test code: a failed setup step is a failed test, so panicking on it is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]
// It calls the C API, whose functions are `unsafe extern "C"`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr;

use backdrop::*;
use backdrop_tests::hostile::{
    CASES, Case, Expected, HostileApi, KEY, TRAVERSAL_ID, files_outside,
};

const INPUTS: usize = 2;

/// A client of `base` with the key, 3 s per request and the default retry policy (6 attempts:
/// none may be spent on a create the service may have accepted).
fn client(base: &str) -> *const backdrop_client {
    let key = CString::new(KEY).unwrap();
    let url = CString::new(base).unwrap();
    let mut builder = ptr::null_mut();
    let mut client = ptr::null();
    // SAFETY: valid strings and out-pointers; the builder is freed once.
    unsafe {
        assert_eq!(
            backdrop_client_builder_new(key.as_ptr(), &mut builder),
            backdrop_result::BACKDROP_OK
        );
        assert_eq!(
            backdrop_client_builder_set_base_url(builder, url.as_ptr()),
            backdrop_result::BACKDROP_OK
        );
        assert_eq!(
            backdrop_client_builder_set_request_timeout_ms(builder, 3_000),
            backdrop_result::BACKDROP_OK
        );
        assert_eq!(
            backdrop_client_builder_build(builder, &mut client, ptr::null_mut()),
            backdrop_result::BACKDROP_OK
        );
        backdrop_client_builder_free(builder);
    }
    client
}

/// The error's message, for assertion messages.
fn message(error: *const backdrop_error) -> String {
    // SAFETY: a live error (or NULL); the message lives as long as the error.
    let text = unsafe { backdrop_error_message(error) };
    if text.is_null() {
        return String::new();
    }
    // SAFETY: a NUL-terminated string owned by the error, read before it is freed.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// One input through the C ABI; returns what a C program would conclude.
fn one_input(client: *const backdrop_client, png: &[u8], out: &Path, n: usize) -> Fate {
    let prompt = CString::new("a marble countertop").unwrap();
    let name = CString::new(format!("in-{n}.png")).unwrap();
    let mut request = ptr::null_mut();
    let mut task = ptr::null_mut();
    let mut error = ptr::null_mut();
    // SAFETY: live handles and valid pointers throughout; each handle is freed once.
    unsafe {
        assert_eq!(
            backdrop_request_new(&mut request),
            backdrop_result::BACKDROP_OK
        );
        backdrop_request_set_image_bytes(request, png.as_ptr(), png.len(), name.as_ptr());
        backdrop_request_set_prompt(request, prompt.as_ptr());
        backdrop_request_set_batch_size(request, 2);
        let code = backdrop_client_create_task(client, request, &mut task, &mut error);
        backdrop_request_free(request);
        if code != backdrop_result::BACKDROP_OK {
            let fate = Fate::Failed {
                code,
                recovery: backdrop_error_recovery(error),
                may_have_created: backdrop_error_may_have_created_task(error),
                message: message(error),
            };
            backdrop_error_free(error);
            return fate;
        }
        let code = backdrop_client_wait(client, task, 30_000, None, ptr::null_mut(), &mut error);
        if code != backdrop_result::BACKDROP_OK {
            let fate = Fate::Failed {
                code,
                recovery: backdrop_error_recovery(error),
                may_have_created: backdrop_error_may_have_created_task(error),
                message: message(error),
            };
            backdrop_error_free(error);
            backdrop_task_free(task);
            return fate;
        }
        let id = CStr::from_ptr(backdrop_task_id(task))
            .to_string_lossy()
            .into_owned();
        let mut files = Vec::new();
        for number in 1..=backdrop_task_result_count(task) {
            // The caller names the file: the service's task id never does.
            let path = out.join(format!("in-{n}-{number}.jpg"));
            let c_path = CString::new(path.to_str().unwrap()).unwrap();
            let code = backdrop_client_download_to_file(
                client,
                task,
                number,
                c_path.as_ptr(),
                ptr::null_mut(),
            );
            assert_eq!(
                code,
                backdrop_result::BACKDROP_OK,
                "download {number} of {id}"
            );
            files.push(path);
        }
        backdrop_task_free(task);
        Fate::Done { task_id: id, files }
    }
}

#[derive(Debug)]
enum Fate {
    Done {
        task_id: String,
        files: Vec<std::path::PathBuf>,
    },
    Failed {
        code: backdrop_result,
        recovery: backdrop_recovery,
        may_have_created: bool,
        message: String,
    },
}

fn run_case(case: Case, server: &tokio::runtime::Runtime) {
    let api = server.block_on(HostileApi::start(case));
    let root = std::env::temp_dir().join(format!(
        "backdrop-ffi-hostile-{}-{}",
        case.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    let out = root.join("a").join("b").join("out");
    std::fs::create_dir_all(&out).unwrap();
    let png = backdrop_tests::transparent_png(256, 256);
    let client = client(&api.base_url());
    let name = case.name();
    for n in 0..INPUTS {
        let fate = one_input(client, &png, &out, n);
        match (case.expected(), &fate) {
            (
                Expected::Unconfirmed,
                Fate::Failed {
                    recovery,
                    may_have_created,
                    ..
                },
            ) => {
                assert!(*may_have_created, "{name}: {fate:?}");
                assert_eq!(
                    *recovery,
                    backdrop_recovery::BACKDROP_RECOVERY_UNCONFIRMED,
                    "{name}: {fate:?}"
                );
            }
            (Expected::Resumable, Fate::Failed { recovery, code, .. }) => {
                assert_eq!(
                    *recovery,
                    backdrop_recovery::BACKDROP_RECOVERY_RESUME,
                    "{name}: {fate:?}"
                );
                if matches!(
                    case,
                    Case::QueryRedirectedToAnotherHost | Case::QueryRedirectedToAnotherOrigin
                ) {
                    assert_eq!(*code, backdrop_result::BACKDROP_ERR_REDIRECTED, "{fate:?}");
                }
            }
            (Expected::Done, Fate::Done { files, task_id }) => {
                assert_eq!(files.len(), 2, "{name}: {fate:?}");
                if case == Case::TraversalTaskId {
                    assert_eq!(task_id, TRAVERSAL_ID, "the id is the service's, as it is");
                }
            }
            _ => panic!("{name}: expected {:?}, got {fate:?}", case.expected()),
        }
        if let Fate::Failed { message, .. } = &fate {
            assert!(!message.contains(KEY), "{name}: the key is in {message}");
        }
    }
    // SAFETY: the client is freed once, after its last use.
    unsafe { backdrop_client_free(client) };
    api.check_common(INPUTS as u64);
    let outside = files_outside(&root, &[Path::new("a/b/out")]);
    assert!(outside.is_empty(), "{name}: files outside: {outside:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn every_hostile_case_through_the_c_abi() {
    // The server runs on a runtime of its own: the C calls block and run outside any runtime,
    // as in a C program.
    let server = tokio::runtime::Runtime::new().unwrap();
    for case in CASES {
        run_case(case, &server);
    }
}

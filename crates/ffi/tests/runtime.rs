//! The client's runtime: blocking calls refuse to run inside another async runtime (instead of
//! panicking inside tokio), and a client can be freed from anywhere, an async context included,
//! without a panic or a hang. No network is needed: nothing here reaches a server.

// Test code: a failed setup step is a failed test, so panicking on it is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]
// It calls the C API, whose functions are `unsafe extern "C"`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr;
use std::time::{Duration, Instant};

use backdrop::*;

fn client() -> *const backdrop_client {
    let key = CString::new("test-key-0123456789").unwrap();
    let url = CString::new("http://127.0.0.1:1").unwrap();
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
            backdrop_client_builder_set_retry(builder, 1, 0, 0),
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

fn task() -> *mut backdrop_task {
    let id = CString::new("some-task").unwrap();
    let mut task = ptr::null_mut();
    // SAFETY: a valid string and out-pointer.
    assert_eq!(
        unsafe { backdrop_task_from_id(id.as_ptr(), &mut task) },
        backdrop_result::BACKDROP_OK
    );
    task
}

#[test]
fn a_blocking_call_inside_an_async_runtime_is_refused_not_a_panic() {
    let client = client();
    let task = task();
    let host = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = host.block_on(async {
        let mut error = ptr::null_mut();
        // SAFETY: live handles and a valid out-pointer.
        let code = unsafe { backdrop_client_poll(client, task, &mut error) };
        // SAFETY: the error was just written (or is NULL); freed once.
        unsafe {
            assert_eq!(backdrop_error_code(error), code);
            backdrop_error_free(error);
        }
        code
    });
    assert_eq!(code, backdrop_result::BACKDROP_ERR_NESTED_CALL);
    // Outside the host runtime the same call runs (and fails on the network, as it should).
    // SAFETY: live handles.
    let code = unsafe { backdrop_client_poll(client, task, ptr::null_mut()) };
    assert_eq!(code, backdrop_result::BACKDROP_ERR_NETWORK);
    // SAFETY: each handle freed once.
    unsafe {
        backdrop_task_free(task);
        backdrop_client_free(client);
    }
}

#[test]
fn a_client_freed_inside_an_async_context_shuts_down_without_panicking() {
    let client = client() as usize;
    let host = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    host.block_on(async move {
        // SAFETY: the client is live and freed once, here.
        unsafe { backdrop_client_free(client as *const backdrop_client) };
    });
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn clients_can_be_made_and_freed_from_many_threads() {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..3 {
                    let client = client();
                    // SAFETY: freed once.
                    unsafe { backdrop_client_free(client) };
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

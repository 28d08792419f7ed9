//! What is done with the payload of a caught panic: its text for the error detail, and dropping
//! it without letting a second panic escape.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Drops a panic payload without letting a panicking `Drop` escape.
pub(crate) fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

//! # libbackdrop
//!
//! The C ABI of backdrop: PicWish's Generate Background API for C, C++ (`include/backdrop.hpp`)
//! and Go (`crates/ffi/go`), over [`backdrop_core`].
//!
//! The header `include/backdrop.h` is generated from this crate by cbindgen (configuration in
//! `cbindgen.toml`, which also holds the header's general contract) and checked by
//! `tests/header.rs`.
//!
//! ## How the crate is laid out
//!
//! One module per C type, each exported function named `backdrop_<type>_<verb>` with the object
//! first. Handles are zero-sized private structs; the `handle` module converts them to and from Rust values
//! with their ownership (Box: one owner; Arc: shared) fixed by the type. Every exported body runs
//! inside `ffi_boundary!` or `ffi_infallible!` (a `catch_unwind`), checks each pointer before
//! it consumes anything, and writes its outputs only on success.

// The exported functions take raw pointers: they are `unsafe extern "C"`, and their contract
// (NULL or a live handle of the right type; buffers valid for their length) is stated once for
// all in the header's preamble and per parameter in each function's documentation, rather than
// in a `# Safety` section that cbindgen would copy into every prototype.
#![allow(clippy::missing_safety_doc)]
// The C types keep their C names (`backdrop_client`), which cbindgen copies into the header.
#![allow(non_camel_case_types)]

#[macro_use]
mod boundary;
#[macro_use]
mod handle;
mod panic_payload;

pub mod bytes;
pub mod client;
pub mod client_builder;
pub mod error;
pub mod request;
pub mod result;
pub mod task;
pub mod validation;
pub mod version;

#[cfg(feature = "test-hooks")]
pub mod test_hooks;

pub use bytes::*;
pub use client::*;
pub use client_builder::*;
pub use error::*;
pub use request::*;
pub use result::*;
pub use task::*;
pub use validation::*;
pub use version::*;

// The objects the header calls thread-safe (or readable from several threads) are Send + Sync;
// this fails to compile if a change makes one of them not.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<client::ClientState>();
    shareable::<request::RequestData>();
    shareable::<task::TaskData>();
    shareable::<backdrop_core::GeneratedImage>();
    shareable::<error::ErrorDetail>();
};

//! # backdrop-report
//!
//! The contact sheet of a batch: one self-contained HTML page with a row per input — the source on
//! a checkerboard, the generated images side by side as thumbnails linked to the full files, the
//! background asked for, task id, seconds, credits, and for failures the reason and what to do —
//! with totals, a failure filter and keyboard navigation, and no request beyond the page's own
//! folder. The CLI writes one into each output folder (`index.html`), the Lambda one per day into
//! the bucket; both describe their inputs as [`Row`]s and let [`render`] write the page.
//!
//! [`thumbnail`] makes the small JPEGs the page shows, in bounded memory.

pub mod html;
pub mod thumbnail;
pub mod time;

pub use html::{
    Page, Picture, Row, RowFailure, Status, Totals, embedded_data, encode_path, escape, render,
};

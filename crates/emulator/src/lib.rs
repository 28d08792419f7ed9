//! # backdrop-emulator
//!
//! A local stand-in for PicWish's Generate Background service that follows the API spec to the
//! letter: the same paths, fields, checks, status codes, task states and result links, with real
//! (if simple) result images, a per-key QPS limit, adjustable timing and injectable faults.
//!
//! ```no_run
//! use backdrop_emulator::{Emulator, EmulatorConfig, ProcessingTime};
//! use std::time::Duration;
//!
//! # async fn demo() -> std::io::Result<()> {
//! let emulator = Emulator::start(EmulatorConfig {
//!     processing: ProcessingTime::Fixed(Duration::from_millis(200)),
//!     ..EmulatorConfig::default()
//! })
//! .await?;
//! println!("POST {}/api/tasks/visual/background with X-API-KEY: {}", emulator.base_url(), emulator.api_key());
//! // ... run a client against it ...
//! println!("{:?}", emulator.counters());
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## Routes
//!
//! | route | what |
//! | --- | --- |
//! | `POST /api/tasks/visual/background` | create a task (multipart/form-data) |
//! | `GET /api/tasks/visual/background/{task_id}` | query a task |
//! | `GET /results/{task_id}/{n}.jpg?expires=&sig=` | download a result (signed, expiring) |
//! | `GET /__emulator/counters` | [`Counters`] |
//! | `POST /__emulator/reset-counters` | zero the counters (answers the old values) |
//! | `GET /__emulator/tasks` | [`TaskInfo`] of every task |
//! | `GET`/`PUT /__emulator/faults` | read or replace the [`Faults`] |
//!
//! ## Behaviour
//!
//! * API answers are JSON `{"status", "message", "data"}` with the HTTP status equal to `status`.
//! * Checks, in order: injected faults; `X-API-KEY` (401); the key's QPS (429 with
//!   `Retry-After`, whole seconds, at least 1); parameters (400, message naming the problem);
//!   file size (413); then a task is created (200, `data.task_id`, 32 hex characters) — or, with
//!   [`Faults::lost_answer_rate`], created and its answer lost (the connection is closed).
//! * Tasks go 0 (queued) → 2 (preparing) → 4 (processing) → 5 (publishing, while the result
//!   renders) → 1, or to a failure: -3 / -5 / -7 / -14 for source image problems (below), or a
//!   planned failure state (prompt trigger [`FAIL_TRIGGER`], or [`Faults::fail_rate`]) once the
//!   processing time is over.
//! * Source image checks happen in the task, like the service: not a PNG → -7; `image_url` not
//!   downloadable → -3; `image_url` over 30 MiB → -5; sides outside 256–4096 px or no
//!   transparency (neither alpha channel nor `tRNS`) → -14 (the emulator's choice of state).
//! * Results are JPEGs at most 1024 px on their longest side with the source's aspect ratio: the
//!   foreground over a background chosen from the prompt's words, with a soft contact shadow.

mod app;
pub mod cli;
mod config;
mod conn;
mod counters;
mod http;
mod input;
mod job;
mod rate;
mod render;
mod signing;
mod tasks;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use app::FAIL_TRIGGER;
pub use config::{
    DEFAULT_API_KEY, DEFAULT_MAX_BODY_BYTES, EmulatorConfig, Faults, LostAnswer, ProcessingTime,
    ProgressMode, ResultFormat,
};
pub use counters::Counters;
pub use tasks::TaskInfo;

use crate::app::{App, lock};
use crate::conn::{ConnHandle, KillableListener};

/// How long [`Emulator::shutdown`] waits for open requests before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running emulator. Stops on [`shutdown`](Self::shutdown), or when dropped.
#[derive(Debug)]
pub struct Emulator {
    app: Arc<App>,
    addr: SocketAddr,
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<io::Result<()>>>,
}

impl Emulator {
    /// Binds `config.bind` and starts serving in the current Tokio runtime.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] for an invalid configuration (see
    /// [`EmulatorConfig::validate`]) and with the bind error if the address is taken.
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        config
            .validate()
            .map_err(|problem| io::Error::new(io::ErrorKind::InvalidInput, problem))?;
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let base_url = base_url_of(addr);
        let app = Arc::new(
            App::new(config, base_url.clone())
                .map_err(|problem| io::Error::new(io::ErrorKind::InvalidInput, problem))?,
        );
        let router = http::router(Arc::clone(&app));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(
                KillableListener(listener),
                router.into_make_service_with_connect_info::<ConnHandle>(),
            )
            .with_graceful_shutdown(async {
                // A dropped sender stops the server too.
                let _ = stopped.await;
            })
            .await
        });
        tracing::info!(%base_url, "backdrop-emulator listening");
        Ok(Emulator {
            app,
            addr,
            base_url,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// The base URL of the API, e.g. `http://127.0.0.1:43121` (no trailing slash). An unspecified
    /// bind address (`0.0.0.0`, `::`) is shown as loopback.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The address the emulator is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first accepted API key.
    pub fn api_key(&self) -> &str {
        self.app
            .config
            .api_keys
            .first()
            .map_or(DEFAULT_API_KEY, String::as_str)
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.app.counters.snapshot()
    }

    /// Sets every counter back to zero; returns their values before.
    pub fn reset_counters(&self) -> Counters {
        self.app.counters.reset()
    }

    /// Every task, oldest first.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.app
            .tasks
            .list(Instant::now(), self.app.config.progress)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.app.faults()
    }

    /// Replaces the injected faults from now on (tasks already created keep their fate).
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.app.faults) = faults;
    }

    /// Stops accepting connections, lets open requests finish (up to 5 s), stops the task jobs.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.app.tasks.abort_all();
        if let Some(mut server) = self.server.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::warn!(%error, "the emulator stopped with an error"),
                Ok(Err(error)) => tracing::warn!(%error, "the emulator's server task failed"),
                Err(_) => {
                    tracing::warn!("open requests did not finish in time; cutting them");
                    server.abort();
                }
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            self.app.tasks.abort_all();
        }
    }
}

/// `http://ADDR`, with loopback for an unspecified address.
fn base_url_of(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url_of("0.0.0.0:8787".parse().unwrap()),
            "http://127.0.0.1:8787"
        );
        assert_eq!(base_url_of("[::]:80".parse().unwrap()), "http://[::1]:80");
        assert_eq!(
            base_url_of("192.168.1.2:1".parse().unwrap()),
            "http://192.168.1.2:1"
        );
    }
}

//! The async client: create a task, query it, under one rate limit with bounded retries.
//!
//! Waiting for a task is in [`crate::wait`], downloading its results in [`crate::download`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::multipart::{Form, Part};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use url::Url;

use crate::config::ClientConfig;
use crate::credits::CreditMeter;
use crate::error::{Error, Operation, Result};
use crate::request::{Background, GenerateRequest, ImageSource};
use crate::response::{CreatedTask, Envelope, TaskInfo};
use crate::scheduler::{Scheduler, Want};
use crate::spec::{self, HttpStatus, field};
use crate::validate;

/// The largest API answer read without inline images (1 MiB); the documented answers are a few
/// hundred bytes. A longer answer is read chunk by chunk only up to its cap, then refused with
/// [`Error::InvalidResponse`], so a hostile or broken server cannot make the client buffer more.
pub const MAX_API_ANSWER_BYTES: usize = 1024 * 1024;

/// The cap of a query's answer: the spec lets `image_1` and `image_2` carry Base64 data, so it
/// has room for two results of `max_download_bytes` each, encoded, on top of the JSON.
pub fn max_query_answer_bytes(max_download_bytes: u64) -> usize {
    let encoded =
        usize::try_from(max_download_bytes.div_ceil(3).saturating_mul(4)).unwrap_or(usize::MAX);
    MAX_API_ANSWER_BYTES.saturating_add(encoded.saturating_mul(2))
}

/// A client of the Generate Background API.
///
/// Cheap to clone; clones share one connection pool and one rate limiter, so every request of
/// every clone and every task counts against the same per-key budget. Safe to use from many
/// tasks at once.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    /// For the API: carries the key.
    api: reqwest::Client,
    /// For result URLs: never carries the key (results live on another host).
    pub(crate) downloads: reqwest::Client,
    pub(crate) download_slots: Semaphore,
    /// Full PNG checks at once, one per core: however many creates wait, the checks' memory
    /// (about 180 KiB each) stays bounded.
    check_slots: Semaphore,
    pub(crate) scheduler: Scheduler,
    credits: CreditMeter,
    create_url: Url,
}

impl Client {
    /// A client for `config`.
    pub fn new(config: ClientConfig) -> Result<Client> {
        let mut key = HeaderValue::from_str(config.api_key.expose())
            .map_err(|_| Error::Config("the API key cannot be sent as an HTTP header".into()))?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(spec::API_KEY_HEADER, key);
        let user_agent = concat!("backdrop/", env!("CARGO_PKG_VERSION"));
        // The key goes to the base URL's origin and nowhere else: no redirect is followed (a
        // redirect is an error that names where it pointed, see `Error::Redirected`).
        let api = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let downloads = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(config.connect_timeout)
            .timeout(config.download_timeout)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let create_url = endpoint(&config.base_url, &[])?;
        Ok(Client {
            inner: Arc::new(Inner {
                download_slots: Semaphore::new(config.max_concurrent_downloads),
                check_slots: Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                ),
                scheduler: Scheduler::with_shared(
                    config.rate_limit,
                    config.max_in_flight,
                    config.expected_processing,
                    config.shared_budget.clone(),
                ),
                credits: CreditMeter::new(config.credit_cap.clone()),
                config,
                api,
                downloads,
                create_url,
            }),
        })
    }

    /// A client configured from the environment (see [`ClientConfig::from_env`]).
    pub fn from_env() -> Result<Client> {
        Client::new(ClientConfig::from_env()?)
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// API requests sent so far by this client and its clones (retries included).
    pub fn requests_sent(&self) -> u64 {
        self.inner.scheduler.limiter().granted()
    }

    /// The safety margin the client keeps on top of the key's window now: it shrinks while the
    /// service answers without a 429 and grows back on one (see [`RateLimit`](crate::RateLimit)).
    pub fn rate_limit_margin(&self) -> Duration {
        self.inner.scheduler.limiter().margin_now()
    }

    /// HTTP 429 answers this client and its clones received so far (each was waited out and
    /// retried, within the retry limit).
    pub fn rate_limited_answers(&self) -> u64 {
        self.inner.scheduler.limiter().rate_limited_answers()
    }

    /// Credits spent and reserved under the client's credit cap (see [`crate::credits`]):
    /// `None` without a cap.
    pub async fn credits_total(&self) -> Result<Option<u64>> {
        self.inner.credits.total().await
    }

    /// How many tasks this client keeps in flight now: as many as the key's rate keeps busy
    /// with the processing times seen so far (Little's law), within the configured cap (see
    /// [`MAX_IN_FLIGHT`](crate::MAX_IN_FLIGHT)). A caller running inputs concurrently should
    /// run at least this many.
    pub fn in_flight_limit(&self) -> usize {
        self.inner.scheduler.in_flight_limit_now()
    }

    /// The client's credit cap, if any.
    pub fn credit_limit(&self) -> Option<u64> {
        self.inner.credits.cap().map(|cap| cap.limit)
    }

    /// Creates a task and returns its id.
    ///
    /// The input is validated locally first — the whole file: header rules, structure, image
    /// data and pixels ([`validate::check_png_file`]); a file is read only now.
    ///
    /// A create is sent again automatically only when the service surely did not accept it:
    /// the connection could not be opened, the image was not sent to its end (the request
    /// never reached the service whole), or HTTP 429. Every other answer that does not prove
    /// that no task exists — any 5xx (a gateway may have passed the create on), a timeout or a
    /// cut connection after the request was sent, an answer that cannot be read — is returned
    /// at once and its [`Error::recovery`] is [`Recovery::Unconfirmed`](crate::Recovery).
    pub async fn create_task(&self, request: &GenerateRequest) -> Result<String> {
        self.create_task_recorded(request, None, || async { Ok(()) })
            .await
    }

    /// Like [`create_task`](Self::create_task), with `before_send` run once the request has its
    /// share of the budget and just before it is sent: where a caller records durably that a
    /// create is on its way (a journal), so that a crash *before* that point provably sent
    /// nothing. When `before_send` fails, nothing is sent and its error is returned.
    ///
    /// A slow `before_send` costs nothing in safety: when it takes longer than the rate limit's
    /// margin, the create waits for a fresh slot (the first one stays counted, unused).
    ///
    /// `cutoff` bounds the wait for the create's share of the rate limit and the create on the
    /// wire, never `before_send` nor the bookkeeping of the answer: at the cutoff the create is
    /// given up with [`Error::Abandoned`], whose `maybe_accepted` is false when the request had
    /// not gone out whole (nothing can have been created; it may be sent again).
    pub async fn create_task_recorded<F, Fut>(
        &self,
        request: &GenerateRequest,
        cutoff: Option<Instant>,
        before_send: F,
    ) -> Result<String>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<()>> + Send,
    {
        let image = {
            let _slot = self.inner.check_slots.acquire().await;
            load_image(request.image(), request.pixel_rules()).await?
        };
        // The most it can cost is reserved under the credit cap before anything else: a create
        // the cap refuses is never sent. The reservation is settled by the answer.
        let hold = self.inner.credits.reserve(request.batch_size()).await?;
        let answer = self.send_create(request, &image, cutoff, before_send).await;
        self.inner.credits.answered(hold, &answer).await;
        answer
    }

    /// Sends a checked create once it holds its share of the rate limit (see
    /// [`create_task_recorded`](Self::create_task_recorded)).
    async fn send_create<F, Fut>(
        &self,
        request: &GenerateRequest,
        image: &LoadedImage,
        cutoff: Option<Instant>,
        before_send: F,
    ) -> Result<String>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<()>> + Send,
    {
        let turn = self.inner.scheduler.turn(Want::Create);
        match cutoff {
            Some(cutoff) => {
                tokio::time::timeout_at(cutoff, turn)
                    .await
                    .map_err(|_| Error::Abandoned {
                        during: Operation::Create,
                        maybe_accepted: false,
                    })?
            }
            None => turn.await,
        }
        let granted_at = Instant::now();
        let mut answer = CreateAnswer {
            scheduler: &self.inner.scheduler,
            task_id: None,
        };
        before_send().await?;
        // `None`: the first attempt goes out on the slot granted above — unless `before_send`
        // took so long that a request sent now could land inside a later window than the one
        // the limiter counted it in: half the margin, and never less than the timer's 1 ms.
        let margin = self.inner.scheduler.limiter().margin_now();
        let late = (margin / 2).max(Duration::from_millis(1));
        let first = (granted_at.elapsed() > late).then_some(Want::Query);
        let body = self
            .send(Operation::Create, first, cutoff, |upload| {
                self.inner
                    .api
                    .post(self.inner.create_url.clone())
                    .multipart(form(request, image, upload))
            })
            .await?;
        let created: CreatedTask = parse_data(Operation::Create, &body)?;
        let task_id = match created.task_id {
            Some(id) if !id.trim().is_empty() => id,
            _ => {
                return Err(invalid(
                    Operation::Create,
                    200,
                    "no data.task_id in a successful answer",
                    &body,
                ));
            }
        };
        if let Err(reason) = usable_task_id(&task_id) {
            return Err(invalid(Operation::Create, 200, reason, &body));
        }
        tracing::info!(task_id = %task_id, "task created");
        answer.task_id = Some(task_id.clone());
        Ok(task_id)
    }

    /// Queries a task once (retried on transient failures: a query is always safe to repeat).
    pub async fn get_task(&self, task_id: &str) -> Result<TaskInfo> {
        if task_id.trim().is_empty() {
            return Err(Error::EmptyTaskId);
        }
        self.query(task_id, Want::Query).await
    }

    /// Queries a task, the first attempt waiting in the scheduler as `want`.
    pub(crate) async fn query(&self, task_id: &str, want: Want) -> Result<TaskInfo> {
        let url = endpoint(&self.inner.config.base_url, &[task_id])?;
        let body = self
            .send(Operation::Query, Some(want), None, |_| {
                self.inner.api.get(url.clone())
            })
            .await?;
        let info: TaskInfo = parse_data(Operation::Query, &body)?;
        // A task that ended settles its credits: spent as charged, or refunded.
        self.inner.credits.task_seen(&info).await;
        tracing::debug!(task_id = %info.task_id, state = info.state.code(), progress = info.progress, "task polled");
        Ok(info)
    }

    /// Sends one API call with rate limiting and retries; returns the body of a 200 answer.
    ///
    /// The first attempt waits in the scheduler as `first` (`None`: the caller already holds
    /// its grant), retries as one-off queries. `request` builds each attempt; a create's form
    /// reports through the [`UploadProgress`] whether its image was sent to its end.
    ///
    /// A query is always safe to repeat. A create is repeated only when the service surely did
    /// not accept it (see [`create_task`](Self::create_task)); every other failure of a create
    /// returns at once.
    ///
    /// At `cutoff` the call is given up ([`Error::Abandoned`]); a create given up before its
    /// request went out whole surely made no task.
    async fn send(
        &self,
        call: Operation,
        first: Option<Want>,
        cutoff: Option<Instant>,
        request: impl Fn(&UploadProgress) -> reqwest::RequestBuilder,
    ) -> Result<Bytes> {
        let upload = UploadProgress::default();
        let attempts = self.attempts(call, first, &upload, request);
        let Some(cutoff) = cutoff else {
            return attempts.await;
        };
        match tokio::time::timeout_at(cutoff, attempts).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::Abandoned {
                during: call,
                maybe_accepted: call == Operation::Create && upload.may_have_arrived(),
            }),
        }
    }

    /// The attempts of [`send`](Self::send), each reporting how far its request got in
    /// `upload`.
    async fn attempts(
        &self,
        call: Operation,
        first: Option<Want>,
        upload: &UploadProgress,
        request: impl Fn(&UploadProgress) -> reqwest::RequestBuilder,
    ) -> Result<Bytes> {
        let retry = self.inner.config.retry;
        let key = self.inner.config.api_key.expose();
        let mut attempt = 0;
        let mut want = first;
        loop {
            attempt += 1;
            let last = attempt >= retry.max_attempts;
            upload.reset();
            if let Some(want) = want.replace(Want::Query) {
                self.inner.scheduler.turn(want).await;
            }
            let builder = request(upload);
            upload.handed_over();
            let response = match builder.send().await {
                Ok(response) => response,
                Err(source) => {
                    // A failure to connect, or an image not sent to its end, proves that the
                    // service never received the request whole.
                    let surely_not_sent = source.is_connect() || upload.unfinished();
                    if !last && (surely_not_sent || call == Operation::Query) {
                        upload.reset();
                        tracing::warn!(call = call.as_str(), attempt, error = %source, "request failed, retrying");
                        tokio::time::sleep(retry.backoff(attempt)).await;
                        continue;
                    }
                    return Err(Error::Network {
                        during: call,
                        maybe_accepted: call == Operation::Create && !surely_not_sent,
                        source,
                    });
                }
            };
            let http_status = response.status().as_u16();
            if response.status().is_redirection() {
                self.inner.scheduler.limiter().answered();
                return Err(Error::Redirected {
                    during: call,
                    status: http_status,
                    location: redirect_target(response.headers(), key),
                });
            }
            let retry_after = retry_after(response.headers());
            let cap = match call {
                Operation::Create | Operation::Download => MAX_API_ANSWER_BYTES,
                Operation::Query => max_query_answer_bytes(self.inner.config.max_download_bytes),
            };
            // A 4xx status refuses the request whatever its body says; any other answer to a
            // create must be read whole to prove anything.
            let refused = (400..500).contains(&http_status);
            let body = match read_capped(response, cap).await {
                Ok(body) => redact_key(body, key),
                Err(ReadError::TooLarge) => {
                    return Err(Error::InvalidResponse {
                        during: call,
                        status: http_status,
                        reason: format!("the answer is larger than {cap} bytes"),
                        body_start: String::new(),
                    });
                }
                Err(ReadError::Network(_)) if call == Operation::Create && refused => Bytes::new(),
                Err(ReadError::Network(source)) => {
                    if !last && call == Operation::Query {
                        tokio::time::sleep(retry.backoff(attempt)).await;
                        continue;
                    }
                    return Err(Error::Network {
                        during: call,
                        maybe_accepted: call == Operation::Create,
                        source,
                    });
                }
            };
            let (status, message) = effective_status(http_status, &body);
            if status != 429 {
                self.inner.scheduler.limiter().answered();
            }
            match status {
                spec::STATUS_OK => return Ok(body),
                429 => {
                    // Refused: nothing of this attempt was accepted.
                    upload.reset();
                    let wait = retry_after.unwrap_or_default().max(retry.backoff(attempt));
                    tracing::warn!(
                        call = call.as_str(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "rate limited (429)"
                    );
                    self.inner.scheduler.rate_limited(wait).await;
                    if last {
                        return Err(Error::RateLimited {
                            during: call,
                            message,
                            retry_after,
                            attempts: attempt,
                        });
                    }
                }
                // A server failure on a query is repeated. On a create it is not: a gateway may
                // have passed the create on before it failed (see `Error::recovery`).
                500..=599 if !last && call == Operation::Query => {
                    tracing::warn!(
                        call = call.as_str(),
                        attempt,
                        status,
                        "server error, retrying"
                    );
                    tokio::time::sleep(retry.backoff(attempt)).await;
                }
                _ => return Err(status_error(call, status, message, attempt)),
            }
        }
    }
}

/// Tells the scheduler how a granted create ended, however `create_task` returns (or is
/// dropped): the task is in flight, or nothing is. Made once the create has its grant.
struct CreateAnswer<'a> {
    scheduler: &'a Scheduler,
    task_id: Option<String>,
}

impl Drop for CreateAnswer<'_> {
    fn drop(&mut self) {
        self.scheduler.create_answered(self.task_id.as_deref());
    }
}

/// The URL of an endpoint below the base URL: the create path plus `extra` segments.
fn endpoint(base: &Url, extra: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| Error::Config(format!("base URL {base} cannot have a path")))?;
        segments.pop_if_empty();
        segments.extend(spec::CREATE_TASK_PATH.split('/').filter(|s| !s.is_empty()));
        segments.extend(extra);
    }
    url.set_query(None);
    Ok(url)
}

/// The image as it will be sent, validated.
enum LoadedImage {
    /// A file, checked by its header; its bytes are streamed from disk only when the request
    /// is sent, so waiting requests hold no image in memory.
    Path {
        path: std::path::PathBuf,
        len: u64,
        file_name: String,
    },
    /// Bytes in memory.
    Bytes { data: Bytes, file_name: String },
    /// A URL the service fetches.
    Url(String),
}

/// The image as it will be sent, after the full check (structure, image data, pixels by
/// `rules`), run on a blocking thread: a file is read once to check it and streamed again when
/// the request is sent.
async fn load_image(source: &ImageSource, rules: validate::PixelRules) -> Result<LoadedImage> {
    match source {
        ImageSource::Path(path) => {
            let checked = path.clone();
            let report =
                tokio::task::spawn_blocking(move || validate::check_png_file(&checked, rules))
                    .await
                    .map_err(|e| Error::io("read", path, std::io::Error::other(e.to_string())))?
                    .map_err(|error| match error {
                        validate::InspectFileError::Invalid(rule) => Error::Invalid(rule),
                        validate::InspectFileError::Io(io) => Error::io("read", path, io),
                    })?;
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("image.png")
                .to_owned();
            Ok(LoadedImage::Path {
                path: path.clone(),
                len: report.info.file_size,
                file_name,
            })
        }
        ImageSource::Bytes { data, file_name } => {
            let checked = data.clone();
            tokio::task::spawn_blocking(move || validate::check_png_bytes(&checked, rules))
                .await
                .map_err(|e| {
                    Error::io("read", file_name, std::io::Error::other(e.to_string()))
                })??;
            Ok(LoadedImage::Bytes {
                data: data.clone(),
                file_name: file_name.clone(),
            })
        }
        ImageSource::Url(url) => Ok(LoadedImage::Url(url.to_string())),
    }
}

/// How far a create's image got into the request of one attempt: an image not sent to its end
/// means the service cannot have received the request whole, so nothing can have been created.
#[derive(Debug, Clone, Default)]
pub(crate) struct UploadProgress(Arc<AtomicU8>);

impl UploadProgress {
    /// No request of this attempt went out yet (or the last one was proven refused).
    const IDLE: u8 = 0;
    /// The image began to be sent (its stream was made) and did not reach its end.
    const STARTED: u8 = 1;
    /// The image was sent to its end.
    const FINISHED: u8 = 2;
    /// A request with no tracked image (a URL, a query) was handed to the transport.
    const HANDED_OVER: u8 = 3;

    /// True when an image began to be sent and did not reach its end.
    fn unfinished(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::STARTED
    }

    /// Marks the request as handed to the transport (an image's stream keeps its own state).
    fn handed_over(&self) {
        let _ = self.0.compare_exchange(
            Self::IDLE,
            Self::HANDED_OVER,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Starts a new attempt: nothing of it went out yet.
    fn reset(&self) {
        self.0.store(Self::IDLE, Ordering::SeqCst);
    }

    /// True when the request may have reached the service whole: it was handed over and its
    /// image, if any, was sent to its end.
    fn may_have_arrived(&self) -> bool {
        matches!(
            self.0.load(Ordering::SeqCst),
            Self::FINISHED | Self::HANDED_OVER
        )
    }

    /// `stream`, reporting here when it is read to its end.
    fn track<S>(&self, stream: S) -> Tracked<S> {
        self.0.store(Self::STARTED, Ordering::SeqCst);
        Tracked {
            stream,
            progress: self.clone(),
        }
    }
}

/// A body stream that reports to an [`UploadProgress`] when it was read to its end.
struct Tracked<S> {
    stream: S,
    progress: UploadProgress,
}

impl<S: Stream + Unpin> Stream for Tracked<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let next = Pin::new(&mut self.stream).poll_next(cx);
        if let Poll::Ready(None) = next {
            self.progress
                .0
                .store(UploadProgress::FINISHED, Ordering::SeqCst);
        }
        next
    }
}

/// The file's bytes as a stream, opened when the body is sent.
fn file_body(path: std::path::PathBuf, upload: &UploadProgress) -> reqwest::Body {
    use futures_util::TryStreamExt;
    let stream = futures_util::stream::once(tokio::fs::File::open(path))
        .map_ok(tokio_util::io::ReaderStream::new)
        .try_flatten();
    reqwest::Body::wrap_stream(upload.track(Box::pin(stream)))
}

/// In-memory bytes as a stream of one piece.
fn bytes_body(data: Bytes, upload: &UploadProgress) -> reqwest::Body {
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(data) });
    reqwest::Body::wrap_stream(upload.track(Box::pin(stream)))
}

fn png_part(body: impl Fn() -> reqwest::Body, len: u64, file_name: &str) -> Part {
    let part = || Part::stream_with_length(body(), len).file_name(file_name.to_owned());
    // "image/png" always parses; were it refused, the part would go without a type.
    part().mime_str("image/png").unwrap_or_else(|_| part())
}

/// The create's form. The image comes last, so that an image sent to its end leaves only the
/// closing boundary unsent: `upload` then tells whether the request can have arrived whole.
fn form(request: &GenerateRequest, image: &LoadedImage, upload: &UploadProgress) -> Form {
    let mut form = Form::new();
    form = match request.background() {
        Background::Prompt(prompt) => form.text(field::PROMPT, prompt.clone()),
        Background::SceneType(scene) => form.text(field::SCENE_TYPE, scene.to_string()),
    };
    if let Some(negative) = request.negative_prompt() {
        form = form.text(field::NEGATIVE_PROMPT, negative.to_owned());
    }
    form = form.text(field::BATCH_SIZE, request.batch_size().count().to_string());
    match image {
        LoadedImage::Path {
            path,
            len,
            file_name,
        } => form.part(
            field::IMAGE_FILE,
            png_part(|| file_body(path.clone(), upload), *len, file_name),
        ),
        LoadedImage::Bytes { data, file_name } => form.part(
            field::IMAGE_FILE,
            png_part(
                || bytes_body(data.clone(), upload),
                data.len() as u64,
                file_name,
            ),
        ),
        LoadedImage::Url(url) => form.text(field::IMAGE_URL, url.clone()),
    }
}

/// Why a task id from the service cannot be used, if it cannot: it names the task in every
/// later request's path, in records and in messages, so it must be one printable line that is
/// not a path step of its own.
pub(crate) fn usable_task_id(task_id: &str) -> std::result::Result<(), &'static str> {
    if task_id.len() > MAX_TASK_ID_BYTES {
        Err("data.task_id is longer than 512 bytes")
    } else if task_id.chars().any(char::is_control) {
        Err("data.task_id contains control characters")
    } else if matches!(task_id.trim(), "." | "..") {
        Err("data.task_id is a path step (\".\" or \"..\")")
    } else {
        Ok(())
    }
}

/// The longest task id accepted from the service.
const MAX_TASK_ID_BYTES: usize = 512;

/// Where a redirect pointed, for the error: its origin and path (no query, which may carry
/// tokens), with the key removed should it appear.
fn redirect_target(headers: &HeaderMap, key: &str) -> String {
    let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return "(no Location header)".to_owned();
    };
    let shown = match Url::parse(location) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => location
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let shown: String = shown.chars().take(200).collect();
    String::from_utf8_lossy(&redact_key(Bytes::from(shown), key)).into_owned()
}

/// The text that replaces the API key wherever a server repeats it.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// `body` with every copy of `key` — as is, JSON-escaped (`\/`) or percent-encoded — replaced
/// by [`REDACTED`]: a server's words are stored (journals, pages, failure records) and shown,
/// the key never is.
pub(crate) fn redact_key(body: Bytes, key: &str) -> Bytes {
    // Too short a "key" would match everywhere; real keys are long.
    if key.len() < 4 {
        return body;
    }
    let forms = [
        key.to_owned(),
        key.replace('/', "\\/"),
        url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>(),
    ];
    if !forms
        .iter()
        .any(|form| memmem(&body, form.as_bytes()).is_some())
    {
        return body;
    }
    let mut out = body.to_vec();
    for form in &forms {
        let form = form.as_bytes();
        while let Some(at) = memmem(&out, form) {
            out.splice(at..at + form.len(), REDACTED.bytes());
        }
    }
    Bytes::from(out)
}

fn memmem(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status that decides the outcome: the HTTP status when it is not 200, else the body's
/// `status` field (the spec documents both); with the server's message.
fn effective_status(http_status: u16, body: &[u8]) -> (u16, String) {
    let envelope = serde_json::from_slice::<Envelope<serde_json::Value>>(body).ok();
    let message = envelope
        .as_ref()
        .and_then(|e| e.message.clone())
        .unwrap_or_else(|| body_start(body));
    let body_status = envelope
        .and_then(|e| e.status)
        .and_then(|s| u16::try_from(s).ok());
    let status = match (http_status, body_status) {
        (spec::STATUS_OK, Some(body)) => body,
        (http, _) => http,
    };
    (status, message)
}

fn status_error(during: Operation, status: u16, message: String, attempts: u32) -> Error {
    match HttpStatus::from_code(status) {
        Some(HttpStatus::BadRequest) => Error::BadRequest { during, message },
        Some(HttpStatus::Unauthorized) => Error::Unauthorized { during, message },
        Some(HttpStatus::NotFound) => Error::NotFound { during, message },
        Some(HttpStatus::PayloadTooLarge) => Error::PayloadTooLarge { during, message },
        Some(HttpStatus::TooManyRequests) => Error::RateLimited {
            during,
            message,
            retry_after: None,
            attempts,
        },
        _ if (500..600).contains(&status) => Error::Server {
            during,
            status,
            message,
            attempts,
        },
        _ => Error::UnexpectedStatus {
            during,
            status,
            message,
        },
    }
}

fn parse_data<T: DeserializeOwned>(call: Operation, body: &[u8]) -> Result<T> {
    let answer: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(call, 200, &e.to_string(), body))?;
    // Objects only: serde would also read a struct from an array, by field order.
    if !answer.is_object() {
        return Err(invalid(call, 200, "the answer is not a JSON object", body));
    }
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_value(answer).map_err(|e| invalid(call, 200, &e.to_string(), body))?;
    // A status field that is not an HTTP status (negative, too large) is not a success either.
    if let Some(status) = envelope.status
        && status != i64::from(spec::STATUS_OK)
    {
        return Err(invalid(
            call,
            200,
            &format!(
                "the body's status field is {status}, not {}",
                spec::STATUS_OK
            ),
            body,
        ));
    }
    let data = envelope
        .data
        .ok_or_else(|| invalid(call, 200, "a successful answer without data", body))?;
    if !data.is_object() {
        return Err(invalid(call, 200, "data is not a JSON object", body));
    }
    serde_json::from_value(data).map_err(|e| invalid(call, 200, &e.to_string(), body))
}

fn invalid(call: Operation, status: u16, reason: &str, body: &[u8]) -> Error {
    Error::InvalidResponse {
        during: call,
        status,
        reason: reason.to_owned(),
        body_start: body_start(body),
    }
}

fn body_start(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

pub(crate) enum ReadError {
    TooLarge,
    Network(reqwest::Error),
}

/// Reads a body, refusing more than `max` bytes (checked before and while reading).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> std::result::Result<Bytes, ReadError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Network)? {
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_a_base_path_and_escape_the_id() {
        let base = Url::parse("http://127.0.0.1:9/prefix/").unwrap();
        assert_eq!(
            endpoint(&base, &[]).unwrap().as_str(),
            "http://127.0.0.1:9/prefix/api/tasks/visual/background"
        );
        assert_eq!(
            endpoint(&base, &["a/b c"]).unwrap().as_str(),
            "http://127.0.0.1:9/prefix/api/tasks/visual/background/a%2Fb%20c"
        );
        let plain = Url::parse(spec::DEFAULT_BASE_URL).unwrap();
        assert_eq!(
            endpoint(&plain, &["T1"]).unwrap().as_str(),
            "https://techhk.aoscdn.com/api/tasks/visual/background/T1"
        );
    }

    #[test]
    fn the_body_status_counts_when_http_says_200() {
        assert_eq!(
            effective_status(200, br#"{"status":401,"message":"bad key"}"#),
            (401, "bad key".to_owned())
        );
        assert_eq!(effective_status(500, b"<html>oops</html>").0, 500);
        assert_eq!(effective_status(200, b"not json").0, 200);
    }

    #[test]
    fn retry_after_is_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3600)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}

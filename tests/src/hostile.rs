//! A hostile API server and the table of cases the CLI, the C ABI and the Lambda each run
//! against it.
//!
//! The server is written from the API document alone — not from backdrop's emulator or its
//! client's rules: a create makes a task, a query reports it done with two result URLs, results
//! are JPEGs. Each [`Case`] then breaks one promise a real network may break: the create's task
//! exists but its answer is a 5xx, a cut connection, garbage or 10 GB; queries are redirected
//! to another host or another origin; the task id is a path traversal; a query answers 10 GB;
//! a create is held open far beyond any timeout. The server counts, per case, what the checks
//! need: create requests and tasks made, and where the API key arrived — at the API's origin,
//! or at the other host a redirect points to (it must never arrive there).
//!
//! Each adapter's test runs every case and checks the [`Expected`] fate with its own records
//! (the CLI's summary and journal, the C ABI's result codes, the Lambda's S3 records), plus the
//! checks that hold for all: at most one create per input, no key anywhere but the API's
//! origin, no file outside the output folder.

// Test support: a failed setup step is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

/// The key the hostile server expects.
pub const KEY: &str = "sk-hostile-4f1c9e7b2a58";

/// What the create path is, from the API document.
const CREATE_PATH: &str = "/api/tasks/visual/background";

/// A body no client should read: 10 GB.
pub const HUGE: u64 = 10_000_000_000;

/// How long a held create is held: longer than any client timeout or invocation in the tests.
pub const HELD: Duration = Duration::from_secs(600);

/// One way the world breaks a promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// The task is created, then the create is answered with this 5xx status (a gateway that
    /// had already passed the create on).
    CreateAnswered(u16),
    /// The task is created, then the connection closes without an answer.
    CreateCut,
    /// The task is created, then the answer is an HTML page with HTTP 200.
    CreateGarbage,
    /// The task is created, then the answer declares a 10 GB body.
    CreateHuge,
    /// The task is created and the answer never comes (held for [`HELD`]).
    CreateHeld,
    /// Queries are answered 302 to the same path on another host name.
    QueryRedirectedToAnotherHost,
    /// Queries are answered 307 to another origin (another port of plain `http://`).
    QueryRedirectedToAnotherOrigin,
    /// The create answers the task id `../../escaped`.
    TraversalTaskId,
    /// Queries are answered with a 10 GB chunked body.
    QueryHuge,
}

/// Every case, in the order the tests run them.
pub const CASES: [Case; 12] = [
    Case::CreateAnswered(500),
    Case::CreateAnswered(502),
    Case::CreateAnswered(503),
    Case::CreateAnswered(504),
    Case::CreateCut,
    Case::CreateGarbage,
    Case::CreateHuge,
    Case::CreateHeld,
    Case::QueryRedirectedToAnotherHost,
    Case::QueryRedirectedToAnotherOrigin,
    Case::TraversalTaskId,
    Case::QueryHuge,
];

/// The task id of [`Case::TraversalTaskId`].
pub const TRAVERSAL_ID: &str = "../../escaped";

/// What every adapter must report for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The create may have been accepted and charged: reported so (credits may be spent), no
    /// outputs, and never sent again unless the user asks.
    Unconfirmed,
    /// The task exists and is unharmed: kept to be resumed by id, no outputs yet, no new create.
    Resumable,
    /// Outputs, inside the output folder.
    Done,
}

impl Case {
    /// A name for messages and file names.
    pub fn name(self) -> String {
        match self {
            Case::CreateAnswered(status) => format!("create-answered-{status}"),
            Case::CreateCut => "create-cut".into(),
            Case::CreateGarbage => "create-garbage".into(),
            Case::CreateHuge => "create-huge".into(),
            Case::CreateHeld => "create-held".into(),
            Case::QueryRedirectedToAnotherHost => "query-redirected-to-another-host".into(),
            Case::QueryRedirectedToAnotherOrigin => "query-redirected-to-another-origin".into(),
            Case::TraversalTaskId => "traversal-task-id".into(),
            Case::QueryHuge => "query-huge".into(),
        }
    }

    /// The fate every adapter must report.
    pub fn expected(self) -> Expected {
        match self {
            Case::CreateAnswered(_)
            | Case::CreateCut
            | Case::CreateGarbage
            | Case::CreateHuge
            | Case::CreateHeld => Expected::Unconfirmed,
            Case::QueryRedirectedToAnotherHost
            | Case::QueryRedirectedToAnotherOrigin
            | Case::QueryHuge => Expected::Resumable,
            Case::TraversalTaskId => Expected::Done,
        }
    }
}

/// What the server saw.
#[derive(Debug, Default)]
struct Seen {
    create_requests: AtomicU64,
    tasks_created: AtomicU64,
    query_requests: AtomicU64,
    key_at_api: AtomicU64,
    requests_elsewhere: AtomicU64,
    key_elsewhere: AtomicU64,
    /// Tasks by id: their batch size.
    tasks: Mutex<HashMap<String, u8>>,
    /// While set, result downloads get no answer (a stalled result host).
    stall_results: std::sync::atomic::AtomicBool,
}

/// What the server saw, as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Create requests received (whatever was answered).
    pub create_requests: u64,
    /// Tasks made.
    pub tasks_created: u64,
    /// Query requests received at the API's origin.
    pub query_requests: u64,
    /// Requests that carried the key to the API's origin.
    pub key_at_api: u64,
    /// Requests that reached the other host (a redirect followed).
    pub requests_elsewhere: u64,
    /// Requests that carried the key to the other host: must stay 0.
    pub key_elsewhere: u64,
}

/// A hostile API server for one case: the API on one port of 127.0.0.1, and "another host"
/// on a second port (reached as `localhost` or as another origin).
pub struct HostileApi {
    case: Case,
    api: SocketAddr,
    elsewhere: SocketAddr,
    seen: Arc<Seen>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for HostileApi {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Clone)]
struct Shared {
    case: Case,
    api: SocketAddr,
    elsewhere: SocketAddr,
    seen: Arc<Seen>,
    jpeg: Bytes,
}

impl HostileApi {
    /// Starts the server for `case` on 127.0.0.1.
    pub async fn start(case: Case) -> HostileApi {
        let api_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (api, elsewhere) = (
            api_listener.local_addr().unwrap(),
            other_listener.local_addr().unwrap(),
        );
        let seen = Arc::new(Seen::default());
        let shared = Shared {
            case,
            api,
            elsewhere,
            seen: seen.clone(),
            jpeg: Bytes::from(small_jpeg()),
        };
        let tasks = vec![
            tokio::spawn(serve(api_listener, shared.clone(), false)),
            tokio::spawn(serve(other_listener, shared, true)),
        ];
        HostileApi {
            case,
            api,
            elsewhere,
            seen,
            tasks,
        }
    }

    /// The case it plays.
    pub fn case(&self) -> Case {
        self.case
    }

    /// The base URL to configure (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.api)
    }

    /// The other host's address (for messages).
    pub fn elsewhere(&self) -> SocketAddr {
        self.elsewhere
    }

    /// While `stall` holds, result downloads get no answer at all (a stalled result host).
    pub fn stall_results(&self, stall: bool) {
        self.seen.stall_results.store(stall, Ordering::SeqCst);
    }

    /// What the server saw so far.
    pub fn counts(&self) -> Counts {
        let seen = &self.seen;
        let get = |n: &AtomicU64| n.load(Ordering::SeqCst);
        Counts {
            create_requests: get(&seen.create_requests),
            tasks_created: get(&seen.tasks_created),
            query_requests: get(&seen.query_requests),
            key_at_api: get(&seen.key_at_api),
            requests_elsewhere: get(&seen.requests_elsewhere),
            key_elsewhere: get(&seen.key_elsewhere),
        }
    }

    /// The checks that hold for every adapter, after `inputs` inputs ran once (or again):
    /// exactly one create per input, one task per input, and the key never away from the API.
    pub fn check_common(&self, inputs: u64) {
        let counts = self.counts();
        let case = self.case.name();
        assert_eq!(
            counts.create_requests, inputs,
            "{case}: one create per input, never resent: {counts:?}"
        );
        assert_eq!(counts.tasks_created, inputs, "{case}: {counts:?}");
        assert_eq!(
            counts.key_elsewhere, 0,
            "{case}: the key reached another host ({}): {counts:?}",
            self.elsewhere
        );
    }
}

async fn serve(listener: TcpListener, shared: Shared, elsewhere: bool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { answer(shared, elsewhere, request).await }
            });
            // A service error (a cut answer) closes the connection without a response.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

type Body = Either<
    Full<Bytes>,
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>,
>;

/// The connection is cut instead of answered.
#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut on purpose")
    }
}

impl std::error::Error for Cut {}

async fn answer(
    shared: Shared,
    elsewhere: bool,
    request: Request<Incoming>,
) -> Result<Response<Body>, Cut> {
    let has_key = request
        .headers()
        .get("x-api-key")
        .is_some_and(|value| value.as_bytes() == KEY.as_bytes());
    let seen = &shared.seen;
    if elsewhere {
        seen.requests_elsewhere.fetch_add(1, Ordering::SeqCst);
        if has_key {
            seen.key_elsewhere.fetch_add(1, Ordering::SeqCst);
        }
        // Were a client to follow, it would find a finished task here: a leak would succeed.
        let id = last_segment(request.uri().path());
        return Ok(json(200, &done(&shared, &id, 2)));
    }
    let path = request.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/results/") {
        if seen.stall_results.load(Ordering::SeqCst) {
            tokio::time::sleep(HELD).await;
        }
        return Ok(image(&shared, rest));
    }
    if has_key {
        seen.key_at_api.fetch_add(1, Ordering::SeqCst);
    } else {
        return Ok(json(401, r#"{"status":401,"message":"Unauthorized"}"#));
    }
    if request.method() == hyper::Method::POST && path == CREATE_PATH {
        seen.create_requests.fetch_add(1, Ordering::SeqCst);
        let body = request.into_body().collect().await.map(|b| b.to_bytes());
        let Ok(body) = body else {
            return Err(Cut);
        };
        return create(&shared, &body).await;
    }
    if request.method() == hyper::Method::GET
        && let Some(id) = path.strip_prefix(&format!("{CREATE_PATH}/"))
    {
        seen.query_requests.fetch_add(1, Ordering::SeqCst);
        return Ok(query(&shared, &percent_decode(id)));
    }
    Ok(json(404, r#"{"status":404,"message":"Not Found"}"#))
}

/// A create: the task is made, then the case decides the answer.
async fn create(shared: &Shared, body: &[u8]) -> Result<Response<Body>, Cut> {
    let id = match shared.case {
        Case::TraversalTaskId => TRAVERSAL_ID.to_owned(),
        _ => format!(
            "task-{:04}",
            shared.seen.tasks_created.load(Ordering::SeqCst) + 1
        ),
    };
    let batch = form_field(body, "batch_size")
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|n| (1..=2).contains(n))
        .unwrap_or(2);
    shared.seen.tasks.lock().unwrap().insert(id.clone(), batch);
    shared.seen.tasks_created.fetch_add(1, Ordering::SeqCst);
    let created = format!(
        r#"{{"status":200,"message":"success","data":{{"task_id":{}}}}}"#,
        json_string(&id)
    );
    match shared.case {
        Case::CreateAnswered(status) => Ok(html(status)),
        Case::CreateCut => Err(Cut),
        Case::CreateGarbage => Ok(html(200)),
        Case::CreateHuge => Ok(huge(true)),
        Case::CreateHeld => {
            tokio::time::sleep(HELD).await;
            Ok(json(200, &created))
        }
        _ => Ok(json(200, &created)),
    }
}

/// A query at the API's origin: the case decides.
fn query(shared: &Shared, id: &str) -> Response<Body> {
    let other = |host: &str| {
        format!(
            "http://{host}:{}{CREATE_PATH}/{id}",
            shared.elsewhere.port()
        )
    };
    match shared.case {
        Case::QueryRedirectedToAnotherHost => redirect(302, &other("localhost")),
        Case::QueryRedirectedToAnotherOrigin => redirect(307, &other("127.0.0.1")),
        Case::QueryHuge => huge(false),
        _ => {
            let batch = shared.seen.tasks.lock().unwrap().get(id).copied();
            match batch {
                Some(batch) => json(200, &done(shared, id, batch)),
                None => json(200, r#"{"status":404,"message":"task not found"}"#),
            }
        }
    }
}

/// A finished task's answer, its results on the API's host.
fn done(shared: &Shared, id: &str, batch: u8) -> String {
    let url = |n: u8| {
        format!(
            "http://{}/results/{}/{n}.jpg",
            shared.api,
            percent_encode(id)
        )
    };
    let mut data = format!(
        r#"{{"task_id":{},"state":1,"progress":100,"image_1":"{}""#,
        json_string(id),
        url(1)
    );
    if batch == 2 {
        data.push_str(&format!(r#","image_2":"{}""#, url(2)));
    }
    data.push_str(r#","completed_at":"1800000000"}"#);
    format!(r#"{{"status":200,"message":"success","data":{data}}}"#)
}

fn image(shared: &Shared, _rest: &str) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "image/jpeg")
        .body(Either::Left(Full::new(shared.jpeg.clone())))
        .unwrap()
}

fn json(status: u16, body: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Either::Left(Full::new(Bytes::from(body.to_owned()))))
        .unwrap()
}

fn html(status: u16) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "text/html")
        .body(Either::Left(Full::new(Bytes::from_static(
            b"<html><body><h1>Bad Gateway</h1><p>upstream went away</p></body></html>",
        ))))
        .unwrap()
}

fn redirect(status: u16, location: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("location", location)
        .body(Either::Left(Full::new(Bytes::new())))
        .unwrap()
}

/// A 10 GB body of JSON-looking filler, produced only as fast as the client reads it; with its
/// length declared, or chunked.
fn huge(declare_length: bool) -> Response<Body> {
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let chunks = HUGE / chunk.len() as u64;
    let prefix =
        Bytes::from_static(br#"{"status":200,"message":"success","data":{"task_id":"t","x":""#);
    let stream = futures_util::stream::iter(
        std::iter::once(prefix)
            .chain((0..chunks).map(move |_| chunk.clone()))
            .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes))),
    );
    let mut builder = Response::builder()
        .status(200)
        .header("content-type", "application/json");
    if declare_length {
        builder = builder.header("content-length", HUGE.to_string());
    }
    builder
        .body(Either::Right(StreamBody::new(Box::pin(stream) as _)))
        .unwrap()
}

/// A field of a multipart form, read the simple way (the value of a short text part).
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let marker = format!("name=\"{name}\"");
    let after = &text[text.find(&marker)? + marker.len()..];
    let value = after.split("\r\n\r\n").nth(1)?;
    Some(value.split("\r\n").next()?.trim().to_owned())
}

fn last_segment(path: &str) -> String {
    percent_decode(path.rsplit('/').next().unwrap_or_default())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        if bytes[i] == b'%'
            && let Some(byte) = hex
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A 64×48 JPEG (a result image).
fn small_jpeg() -> Vec<u8> {
    let image = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encoding a JPEG in memory cannot fail");
    out.into_inner()
}

/// Every file below `root`, except below the folders in `except` (relative to `root`): the
/// files an adapter wrote outside where it was told to.
pub fn files_outside(
    root: &std::path::Path,
    except: &[&std::path::Path],
) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_owned()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if except.iter().any(|skip| path.starts_with(root.join(skip))) {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

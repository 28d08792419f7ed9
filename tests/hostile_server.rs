//! The client against a hostile server: huge bodies, wrong content types, invalid JSON, missing
//! fields, wrong types, undocumented codes, result "images" that are HTML or not http(s), huge
//! results, and servers that stall. Every answer ends in a typed [`Error`], quickly, and the
//! client never reads more than its caps: the server counts the bytes it managed to write before
//! the client hung up.
//!
//! The server is a raw TCP listener writing HTTP by hand, so it can break the protocol in ways a
//! well-behaved HTTP library would refuse to.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backdrop_core::__private::{MAX_API_ANSWER_BYTES, max_query_answer_bytes};
use backdrop_core::{
    Client, ClientConfig, Error, GenerateRequest, Operation, RateLimit, RetryPolicy, StateClass,
    TaskState, WaitControl, WaitOptions,
};
use backdrop_tests::transparent_png;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// A body the server offers but must never get to send in full: 1 GiB.
const HUGE: u64 = 1 << 30;

/// Bytes the server may write beyond what the client reads before the client hangs up: the
/// server's send buffer (set to 64 KiB) and the client's receive buffer on loopback (Linux grows
/// it up to `tcp_rmem`'s maximum, 32 MiB by default), with room to spare. Far below [`HUGE`].
const SOCKET_SLACK: u64 = 40 << 20;

/// The default cap of a result download (`ClientConfigBuilder::max_download_bytes`).
const DEFAULT_DOWNLOAD_CAP: u64 = 50 << 20;

/// A hostile server's answer to one request.
#[derive(Debug, Clone)]
enum Reply {
    /// A complete answer with `Content-Length`.
    Full {
        status: u16,
        content_type: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// `prefix`, then filler up to `total` bytes, in 64 KiB writes; with `Content-Length` when
    /// `declare_length`, else chunked.
    Stream {
        content_type: &'static str,
        prefix: Vec<u8>,
        total: u64,
        declare_length: bool,
    },
    /// A head announcing a 100-byte body, then nothing until the client hangs up.
    StallAfterHeaders,
    /// Nothing at all until the client hangs up.
    Silence,
    /// A status line, then header lines forever.
    EndlessHeaders,
}

fn json(body: &str) -> Reply {
    Reply::Full {
        status: 200,
        content_type: "application/json",
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn html(status: u16) -> Reply {
    Reply::Full {
        status,
        content_type: "text/html; charset=utf-8",
        headers: Vec::new(),
        body: b"<!doctype html><html><body><h1>Welcome to the hotel Wi-Fi</h1></body></html>"
            .to_vec(),
    }
}

/// How a request's connection ended, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The whole answer was written.
    Answered,
    /// The client closed the connection first (a write failed, or a read saw end of stream).
    ClientGone,
}

/// One request the server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// Bytes of the answer written to the socket.
    written: u64,
    end: Option<End>,
}

type Handler = dyn Fn(&str, &str, &str) -> Reply + Send + Sync;

/// A server that answers every request with what its handler says.
struct Hostile {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Hostile {
    /// Starts a server on 127.0.0.1; `handler(method, path, base_url)` picks each answer.
    async fn start(handler: impl Fn(&str, &str, &str) -> Reply + Send + Sync + 'static) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        // A small send buffer: bytes the server writes are close to bytes the client took.
        socket.set_send_buffer_size(64 * 1024).unwrap();
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let listener = socket.listen(64).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let (seen, base) = (seen.clone(), base.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (seen, base, handler) = (seen.clone(), base.clone(), handler.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, &seen, &base, handler.as_ref()).await;
                    });
                }
            })
        };
        Hostile { base, seen, accept }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until every request's connection ended, and returns them.
    async fn settled(&self) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = self.seen();
            if seen.iter().all(|s| s.end.is_some()) || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads one request (head and body) and writes the handler's answer, recording what happened.
async fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    base: &str,
    handler: &Handler,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
    }
    // Drain the request body, so the client's upload completes before the answer.
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut data = vec![0; size + 2];
            reader.read_exact(&mut data).await?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut data = vec![0; length];
        reader.read_exact(&mut data).await?;
    }
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        written: 0,
        end: None,
    });
    let reply = handler(&method, &path, base);
    let mut out = Writer {
        stream: reader.into_inner(),
        written: 0,
        seen,
        index: seen.lock().unwrap().len() - 1,
    };
    match reply {
        Reply::Full {
            status,
            content_type,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            if out.send(head.as_bytes()).await && out.send(&body).await {
                out.end(End::Answered);
            }
        }
        Reply::Stream {
            content_type,
            prefix,
            total,
            declare_length,
        } => {
            let framing = if declare_length {
                format!("Content-Length: {total}")
            } else {
                "Transfer-Encoding: chunked".to_owned()
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{framing}\r\nConnection: close\r\n\r\n"
            );
            if !out.send(head.as_bytes()).await {
                return Ok(());
            }
            let mut chunk = vec![b'a'; 64 * 1024];
            chunk[..prefix.len()].copy_from_slice(&prefix);
            let mut left = total;
            while left > 0 {
                let len = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let ok = if declare_length {
                    out.send(&chunk[..len]).await
                } else {
                    let mut framed = format!("{len:x}\r\n").into_bytes();
                    framed.extend_from_slice(&chunk[..len]);
                    framed.extend_from_slice(b"\r\n");
                    out.send(&framed).await
                };
                if !ok {
                    return Ok(());
                }
                chunk[..prefix.len()].fill(b'a');
                left -= len as u64;
            }
            if declare_length || out.send(b"0\r\n\r\n").await {
                out.end(End::Answered);
            }
        }
        Reply::StallAfterHeaders => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"status\":";
            if out.send(head.as_bytes()).await {
                wait_for_hang_up(&mut out.stream).await;
                out.end(End::ClientGone);
            }
        }
        Reply::Silence => {
            wait_for_hang_up(&mut out.stream).await;
            out.end(End::ClientGone);
        }
        Reply::EndlessHeaders => {
            if !out.send(b"HTTP/1.1 200 OK\r\n").await {
                return Ok(());
            }
            let filler = "x".repeat(1000);
            for n in 0u64.. {
                if n * 1000 > HUGE {
                    out.end(End::Answered);
                    break;
                }
                if !out
                    .send(format!("X-Junk-{n}: {filler}\r\n").as_bytes())
                    .await
                {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The answer's side of a connection: counts what reached the socket.
struct Writer<'a> {
    stream: TcpStream,
    written: u64,
    seen: &'a Mutex<Vec<Seen>>,
    index: usize,
}

impl Writer<'_> {
    /// Writes `bytes`; false (and the request marked [`End::ClientGone`]) when the client left.
    async fn send(&mut self, bytes: &[u8]) -> bool {
        let ok = self.stream.write_all(bytes).await.is_ok();
        if ok {
            self.written += bytes.len() as u64;
            self.seen.lock().unwrap()[self.index].written = self.written;
        } else {
            self.end(End::ClientGone);
        }
        ok
    }

    fn end(&self, end: End) {
        self.seen.lock().unwrap()[self.index].end = Some(end);
    }
}

/// Returns once the peer closed the connection.
async fn wait_for_hang_up(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// A client of `base` with quick retries (2 attempts) and short timeouts.
fn client(base: &str) -> Client {
    client_with(base, |builder| builder)
}

fn client_with(
    base: &str,
    configure: impl FnOnce(backdrop_core::ClientConfigBuilder) -> backdrop_core::ClientConfigBuilder,
) -> Client {
    let builder = ClientConfig::builder("hostile-test-key")
        .base_url(base)
        .rate_limit(RateLimit::per_second(50))
        .retry(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        })
        .request_timeout(Duration::from_secs(2))
        .download_timeout(Duration::from_secs(2));
    Client::new(configure(builder).build().unwrap()).unwrap()
}

fn request() -> GenerateRequest {
    GenerateRequest::builder()
        .image_bytes(transparent_png(300, 300), "product.png")
        .prompt("a beach at dusk")
        .batch_size(backdrop_core::BatchSize::One)
        .build()
        .unwrap()
}

/// Runs `future` with a hard limit, so a hanging client fails the test instead of stalling it.
async fn within<T>(limit: Duration, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .expect("the client answered in time")
}

async fn create_against(reply: Reply) -> (Error, Hostile) {
    let server = Hostile::start(move |_, _, _| reply.clone()).await;
    let error = within(
        Duration::from_secs(30),
        client(&server.base).create_task(&request()),
    )
    .await
    .expect_err("a hostile answer is an error");
    (error, server)
}

async fn query_against(reply: Reply) -> (Error, Hostile) {
    let server = Hostile::start(move |_, _, _| reply.clone()).await;
    let error = within(Duration::from_secs(30), client(&server.base).get_task("T1"))
        .await
        .expect_err("a hostile answer is an error");
    (error, server)
}

fn reason_of(error: &Error) -> &str {
    match error {
        Error::InvalidResponse { reason, .. } | Error::ResultInvalid { reason, .. } => reason,
        other => panic!("not an InvalidResponse or ResultInvalid: {other:?}"),
    }
}

/// The one request was cut off by the client after at most `cap` bytes plus socket buffers.
async fn assert_cut_off(server: &Hostile, cap: u64) {
    let seen = server.settled().await;
    assert_eq!(seen.len(), 1, "one request, no retry: {seen:?}");
    let written = seen[0].written;
    eprintln!(
        "{} {}: the server wrote {written} bytes before the client hung up (cap {cap})",
        seen[0].method, seen[0].path
    );
    assert_eq!(seen[0].end, Some(End::ClientGone), "{seen:?}");
    assert!(
        written <= cap + SOCKET_SLACK,
        "the client took {written} bytes, over its cap of {cap} (+ socket buffers)"
    );
}

// --- huge answers ----------------------------------------------------------------------------

#[tokio::test]
async fn a_huge_chunked_create_answer_is_cut_off_at_the_cap() {
    let started = Instant::now();
    let (error, server) = create_against(Reply::Stream {
        content_type: "application/json",
        prefix: br#"{"status":200,"data":{"task_id":""#.to_vec(),
        total: HUGE,
        declare_length: false,
    })
    .await;
    assert!(
        matches!(
            error,
            Error::InvalidResponse {
                during: Operation::Create,
                status: 200,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(reason_of(&error).contains("larger than"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_cut_off(&server, MAX_API_ANSWER_BYTES as u64).await;
}

#[tokio::test]
async fn a_huge_declared_answer_is_refused_before_reading() {
    let (error, server) = query_against(Reply::Stream {
        content_type: "application/json",
        prefix: br#"{"status":200,"data":{"task_id":""#.to_vec(),
        total: HUGE,
        declare_length: true,
    })
    .await;
    assert!(
        matches!(
            error,
            Error::InvalidResponse {
                during: Operation::Query,
                ..
            }
        ),
        "{error:?}"
    );
    // Refused on its Content-Length: the client read none of the body.
    assert_cut_off(&server, 0).await;
}

#[tokio::test]
async fn a_huge_query_answer_is_cut_off_at_the_cap_and_not_retried() {
    // A query's cap leaves room for two inline (Base64) results of the download cap.
    const DOWNLOAD_CAP: u64 = 1024 * 1024;
    let reply = Reply::Stream {
        content_type: "application/json",
        prefix: b"[".to_vec(),
        total: HUGE,
        declare_length: false,
    };
    let server = Hostile::start(move |_, _, _| reply.clone()).await;
    let client = client_with(&server.base, |b| b.max_download_bytes(DOWNLOAD_CAP));
    let error = within(Duration::from_secs(30), client.get_task("T1"))
        .await
        .expect_err("a hostile answer is an error");
    assert!(
        matches!(
            error,
            Error::InvalidResponse {
                during: Operation::Query,
                ..
            }
        ),
        "{error:?}"
    );
    assert_cut_off(&server, max_query_answer_bytes(DOWNLOAD_CAP) as u64).await;
}

#[tokio::test]
async fn endless_headers_are_a_network_error_with_bounded_reading() {
    let (error, server) = query_against(Reply::EndlessHeaders).await;
    assert!(
        matches!(
            error,
            Error::Network {
                during: Operation::Query,
                maybe_accepted: false,
                ..
            }
        ),
        "{error:?}"
    );
    let seen = server.settled().await;
    assert!(!seen.is_empty());
    for request in seen {
        assert_eq!(request.end, Some(End::ClientGone), "{request:?}");
        assert!(request.written <= SOCKET_SLACK, "{request:?}");
    }
}

// --- answers that are not the documented JSON -------------------------------------------------

#[tokio::test]
async fn an_html_page_is_an_invalid_response_that_points_at_the_base_url() {
    let (error, _server) = create_against(html(200)).await;
    match &error {
        Error::InvalidResponse {
            during: Operation::Create,
            status: 200,
            body_start,
            ..
        } => assert!(body_start.starts_with("<!doctype html>"), "{body_start}"),
        other => panic!("{other:?}"),
    }
    assert!(
        error.to_string().contains("check that the base URL"),
        "{error}"
    );
}

#[tokio::test]
async fn an_html_error_page_keeps_its_http_status() {
    let (error, server) = query_against(html(502)).await;
    assert!(
        matches!(
            error,
            Error::Server {
                status: 502,
                attempts: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.seen().len(), 2, "a query is retried on 502");
    let (error, _server) = create_against(html(404)).await;
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
}

#[tokio::test]
async fn invalid_json_is_an_invalid_response() {
    for body in [
        r#"{"status":200,"data":{"task_id":"T1""#,
        "",
        "null",
        "\u{feff}garbage",
    ] {
        let (error, _server) = create_against(json(body)).await;
        assert!(
            matches!(
                error,
                Error::InvalidResponse {
                    during: Operation::Create,
                    ..
                }
            ),
            "{body:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn missing_fields_are_invalid_responses() {
    let (error, _server) = create_against(json(r#"{"status":200,"message":"success"}"#)).await;
    assert!(reason_of(&error).contains("without data"), "{error}");
    let (error, _server) = create_against(json(r#"{"status":200,"data":{}}"#)).await;
    assert!(reason_of(&error).contains("task_id"), "{error}");
    let (error, _server) = create_against(json(r#"{"status":200,"data":{"task_id":"  "}}"#)).await;
    assert!(reason_of(&error).contains("task_id"), "{error}");

    let (error, _server) = query_against(json(r#"{"status":200,"data":{"task_id":"T1"}}"#)).await;
    assert!(reason_of(&error).contains("state"), "{error}");
    let (error, _server) = query_against(json(r#"{"status":200,"data":{"state":1}}"#)).await;
    assert!(reason_of(&error).contains("task_id"), "{error}");
    let (error, _server) = query_against(json(r#"{"status":200}"#)).await;
    assert!(matches!(
        error,
        Error::InvalidResponse {
            during: Operation::Query,
            ..
        }
    ));
}

#[tokio::test]
async fn wrong_types_are_invalid_responses() {
    for body in [
        r#"{"status":200,"data":{"task_id":{"id":"T1"}}}"#,
        r#"{"status":200,"data":{"task_id":["T1"]}}"#,
        r#"{"status":200,"data":"T1"}"#,
        r#"[{"status":200,"data":{"task_id":"T1"}}]"#,
        r#"[200,"success",{"task_id":"T1"}]"#,
    ] {
        let (error, _server) = create_against(json(body)).await;
        assert!(
            matches!(
                error,
                Error::InvalidResponse {
                    during: Operation::Create,
                    ..
                }
            ),
            "{body}: {error:?}"
        );
    }
    for body in [
        r#"{"status":200,"data":{"task_id":"T1","state":"done"}}"#,
        r#"{"status":200,"data":{"task_id":"T1","state":1.5}}"#,
        r#"{"status":200,"data":{"task_id":"T1","state":99999999999}}"#,
        r#"{"status":200,"data":{"task_id":"T1","state":null}}"#,
        r#"{"status":200,"data":[1,2]}"#,
    ] {
        let (error, _server) = query_against(json(body)).await;
        assert!(
            matches!(
                error,
                Error::InvalidResponse {
                    during: Operation::Query,
                    ..
                }
            ),
            "{body}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_200_whose_status_field_is_not_200_is_that_status() {
    type Check = fn(&Error) -> bool;
    let cases: [(&str, Check); 6] = [
        (
            r#"{"status":401,"message":"key revoked"}"#,
            |e| matches!(e, Error::Unauthorized { message, .. } if message == "key revoked"),
        ),
        (r#"{"status":400,"message":"prompt missing"}"#, |e| {
            matches!(e, Error::BadRequest { .. })
        }),
        (r#"{"status":"413"}"#, |e| {
            matches!(e, Error::PayloadTooLarge { .. })
        }),
        (r#"{"status":418,"message":"teapot"}"#, |e| {
            matches!(e, Error::UnexpectedStatus { status: 418, .. })
        }),
        (
            r#"{"status":-1,"data":{"task_id":"T1"}}"#,
            |e| matches!(e, Error::InvalidResponse { reason, .. } if reason.contains("status field is -1")),
        ),
        (r#"{"status":70000,"data":{"task_id":"T1"}}"#, |e| {
            matches!(e, Error::InvalidResponse { .. })
        }),
    ];
    for (body, expected) in cases {
        let (error, server) = create_against(json(body)).await;
        assert!(expected(&error), "{body}: {error:?}");
        assert_eq!(server.seen().len(), 1, "{body}: a create is not retried");
    }
}

#[tokio::test]
async fn undocumented_state_codes_are_kept_and_classified() {
    let server = Hostile::start(|_, path, _| {
        if path.ends_with("/T7") {
            json(r#"{"status":200,"data":{"task_id":"T7","state":7,"progress":"12"}}"#)
        } else {
            json(r#"{"status":200,"data":{"task_id":"T99","state":-99,"state_detail":"??"}}"#)
        }
    })
    .await;
    let client = client(&server.base);
    let pending = within(Duration::from_secs(10), client.get_task("T7"))
        .await
        .unwrap();
    assert_eq!(pending.state.code(), 7);
    assert_eq!(pending.class(), StateClass::Pending);
    assert!(!TaskState::DOCUMENTED.contains(&pending.state));
    let failed = within(Duration::from_secs(10), client.get_task("T99"))
        .await
        .unwrap();
    assert_eq!(failed.class(), StateClass::Failed);
    let options = WaitOptions {
        poll_interval: Duration::from_millis(50),
        ..WaitOptions::documented()
    };
    let error = within(
        Duration::from_secs(30),
        client.wait_for_task_with("T99", options, |_| WaitControl::Continue),
    )
    .await
    .unwrap_err();
    match error {
        Error::TaskFailed { task_id, state, .. } => {
            assert_eq!((task_id.as_str(), state.code()), ("T99", -99));
        }
        other => panic!("{other:?}"),
    }
}

// --- results ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_result_that_is_an_html_page_is_refused() {
    let server = Hostile::start(|_, path, base| {
        if path.starts_with("/results/") {
            html(200)
        } else {
            json(&format!(
                r#"{{"status":200,"data":{{"task_id":"T1","state":1,"image_1":"{base}/results/1.jpg"}}}}"#
            ))
        }
    })
    .await;
    let client = client(&server.base);
    let task = within(Duration::from_secs(10), client.get_task("T1"))
        .await
        .unwrap();
    let error = within(Duration::from_secs(10), client.download_results(&task))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::ResultInvalid { task_id, index: 1, .. } if task_id == "T1"),
        "{error:?}"
    );
    assert!(
        reason_of(&error).contains("not a JPEG, PNG or WebP"),
        "{error}"
    );
    assert!(error.to_string().contains("generate again"), "{error}");
}

#[tokio::test]
async fn results_that_are_not_http_urls_are_never_fetched() {
    let server = Hostile::start(|_, _, _| html(200)).await;
    let client = client(&server.base);
    for field in [
        "file:///etc/passwd",
        "ftp://127.0.0.1/result.jpg",
        "gopher://127.0.0.1:70/result",
        "data:text/html,<h1>hi</h1>",
        // base64 of "<html>": decodes, but is not an image.
        "data:text/html;base64,PGh0bWw+",
        "PGh0bWw+",
        "javascript:alert(1)",
        "http://",
    ] {
        let error = within(Duration::from_secs(10), client.fetch_result("T1", 2, field))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::ResultInvalid { index: 2, .. }),
            "{field}: {error:?}"
        );
    }
    assert!(server.seen().is_empty(), "{:?}", server.seen());
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_not_followed() {
    let server = Hostile::start(|_, _, _| Reply::Full {
        status: 302,
        content_type: "text/plain",
        headers: vec![("Location", "file:///etc/passwd".to_owned())],
        body: Vec::new(),
    })
    .await;
    let url = format!("{}/results/1.jpg", server.base);
    let error = within(
        Duration::from_secs(10),
        client(&server.base).fetch_result("T1", 1, &url),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::ResultInvalid { .. }
                | Error::Network {
                    during: Operation::Download,
                    ..
                }
        ),
        "{error:?}"
    );
    assert!(!error.to_string().contains("root:"), "{error}");
}

#[tokio::test]
async fn a_huge_result_is_cut_off_at_the_download_cap() {
    let server = Hostile::start(|_, _, _| Reply::Stream {
        content_type: "image/jpeg",
        prefix: vec![0xFF, 0xD8, 0xFF, 0xE0],
        total: HUGE,
        declare_length: false,
    })
    .await;
    let url = format!("{}/results/1.jpg", server.base);
    // The default cap; a generous timeout for 50 MiB through an unoptimised build.
    let client = client_with(&server.base, |b| {
        b.download_timeout(Duration::from_secs(60))
    });
    let started = Instant::now();
    let error = within(Duration::from_secs(90), client.fetch_result("T1", 1, &url))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::ResultInvalid { index: 1, .. }),
        "{error:?}"
    );
    assert!(
        reason_of(&error).contains(&format!("{DEFAULT_DOWNLOAD_CAP}-byte download limit")),
        "{error}"
    );
    eprintln!("refused after {:?}", started.elapsed());
    assert_cut_off(&server, DEFAULT_DOWNLOAD_CAP).await;
}

#[tokio::test]
async fn a_result_over_a_configured_cap_is_refused_by_its_length() {
    let server = Hostile::start(|_, _, _| Reply::Stream {
        content_type: "image/jpeg",
        prefix: vec![0xFF, 0xD8, 0xFF, 0xE0],
        total: HUGE,
        declare_length: true,
    })
    .await;
    let url = format!("{}/results/1.jpg", server.base);
    let client = client_with(&server.base, |b| b.max_download_bytes(1 << 20));
    let error = within(Duration::from_secs(10), client.fetch_result("T1", 1, &url))
        .await
        .unwrap_err();
    assert!(
        reason_of(&error).contains("1048576-byte download limit"),
        "{error}"
    );
    assert_cut_off(&server, 0).await;
}

// --- servers that stall ----------------------------------------------------------------------

#[tokio::test]
async fn a_create_whose_answer_stalls_after_the_headers_is_maybe_accepted_and_not_resent() {
    let started = Instant::now();
    let (error, server) = create_against(Reply::StallAfterHeaders).await;
    assert!(
        matches!(
            error,
            Error::Network {
                during: Operation::Create,
                maybe_accepted: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let seen = server.settled().await;
    assert_eq!(
        seen.len(),
        1,
        "a create that may have landed is never sent twice"
    );
    assert_eq!(seen[0].end, Some(End::ClientGone));
}

#[tokio::test]
async fn a_query_that_stalls_times_out_after_bounded_retries() {
    for reply in [Reply::StallAfterHeaders, Reply::Silence] {
        let started = Instant::now();
        let (error, server) = query_against(reply.clone()).await;
        assert!(
            matches!(
                error,
                Error::Network {
                    during: Operation::Query,
                    maybe_accepted: false,
                    ..
                }
            ),
            "{reply:?}: {error:?}"
        );
        // Two attempts of 2 s each, and a short backoff.
        assert!(started.elapsed() < Duration::from_secs(10), "{reply:?}");
        let seen = server.settled().await;
        assert_eq!(seen.len(), 2, "{reply:?}: {seen:?}");
        assert!(seen.iter().all(|s| s.end == Some(End::ClientGone)));
    }
}

#[tokio::test]
async fn a_download_that_stalls_times_out() {
    let server = Hostile::start(|_, _, _| Reply::StallAfterHeaders).await;
    let url = format!("{}/results/1.jpg", server.base);
    let error = within(
        Duration::from_secs(20),
        client(&server.base).fetch_result("T1", 1, &url),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Network {
                during: Operation::Download,
                ..
            }
        ),
        "{error:?}"
    );
}

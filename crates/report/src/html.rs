//! The page: one self-contained HTML file, one row per input.
//!
//! Everything the page shows is text escaped here ([`escape`]) and every link a relative path
//! percent-encoded segment by segment ([`encode_path`]): file names, prompts and messages can
//! hold `<`, `&`, quotes, `#` or `%` and stay text. The page loads nothing from the network: its
//! style and its script are inline (no framework), allowed by a Content-Security-Policy that
//! names their hashes and lets images come only from the page's own origin (a `file://` folder,
//! the bucket), so even an injected `<script>` or remote image would not run or load.

use std::fmt::Write as _;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Rows from this position on load their images lazily (when scrolled near): the first screens
/// show at once, a page of hundreds of rows opens without decoding them all.
const EAGER_ROWS: usize = 12;

/// How a row's input stands, for its colour, the totals and the failure filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its images are there.
    Succeeded,
    /// It has no images and a reason (sent and failed, or refused before sending).
    Failed,
    /// Not started: the run stopped first. Nothing was sent.
    Skipped,
    /// Its task runs now.
    Running,
    /// Its task was left running (or its create never answered) by a run that ended: the next
    /// run resumes or reports it.
    Unfinished,
}

impl Status {
    /// The class name and the word the page uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Running => "running",
            Status::Unfinished => "unfinished",
        }
    }
}

/// An image shown in a row: its thumbnail, linked to the full image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Picture {
    /// The full image, relative to the page (`/`-separated, not encoded); `None` when it cannot
    /// be linked (e.g. a source in another bucket).
    pub full: Option<String>,
    /// The thumbnail, relative to the page; `None` shows the caption in a box instead.
    pub thumb: Option<String>,
    /// What the image is, for people and screen readers (`image 1`, `source`).
    pub caption: String,
}

/// Why an input has no images, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowFailure {
    /// The message, as recorded.
    pub reason: String,
    /// What to do, in the tool's words.
    pub advice: String,
}

/// One input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The input as given (a path, a URL, `s3://bucket/key`).
    pub label: String,
    /// Where it stands.
    pub status: Status,
    /// A few words on the status (`done`, `done by an earlier run`, `failed: state -17`, …).
    pub state: String,
    /// The source image, when it can be shown.
    pub source: Option<Picture>,
    /// The generated images, in order.
    pub images: Vec<Picture>,
    /// The background asked for: `prompt: …` or `scene 12`.
    pub background: Option<String>,
    /// The negative prompt, if any.
    pub negative: Option<String>,
    /// The task id, once there was one.
    pub task_id: Option<String>,
    /// Seconds from the create being sent to the results being stored.
    pub seconds: Option<f64>,
    /// Credits charged.
    pub credits: u32,
    /// Why there are no images.
    pub failure: Option<RowFailure>,
}

/// The whole page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The title (`backdrop: backdrop-out`).
    pub title: String,
    /// Where the page is about, one line (`Output folder …`, `s3://bucket/generated/ on …`).
    pub context: String,
    /// When the page was written, as shown (UTC).
    pub updated: String,
    /// Wall time to show in the totals, already worded (`12.4 s (last run)`).
    pub wall_time: Option<String>,
    /// While true the page says so and reloads itself every `refresh_seconds`.
    pub in_progress: bool,
    /// Reload period while in progress.
    pub refresh_seconds: u32,
    /// Extra lines under the totals (already worded, escaped here).
    pub notes: Vec<String>,
    /// The rows, in order.
    pub rows: Vec<Row>,
    /// JSON kept in the page for the program that writes it next (the Lambda keeps its rows
    /// there), in a `<script type="application/json">` block that is never run; read it back
    /// with [`embedded_data`].
    pub data: Option<String>,
    /// A value that makes this page's bytes differ from any other write's (a store's ETag is
    /// a hash of the bytes: two writes must never share one).
    pub revision: Option<String>,
}

/// The id of the data block.
const DATA_ID: &str = "backdrop-data";

/// The JSON a page keeps in its data block ([`Page::data`]), if any.
pub fn embedded_data(html: &str) -> Option<String> {
    let opening = format!("<script type=\"application/json\" id=\"{DATA_ID}\">");
    let start = html.find(&opening)? + opening.len();
    let length = html[start..].find("</script>")?;
    Some(html[start..start + length].to_owned())
}

/// The totals of a page's rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Rows.
    pub inputs: usize,
    /// Rows with images.
    pub succeeded: usize,
    /// Rows with a failure.
    pub failed: usize,
    /// Rows not started.
    pub skipped: usize,
    /// Rows running now.
    pub running: usize,
    /// Rows left unfinished.
    pub unfinished: usize,
    /// Credits of all rows.
    pub credits: u64,
}

impl Totals {
    /// The totals of `rows`.
    pub fn of(rows: &[Row]) -> Self {
        let mut totals = Totals {
            inputs: rows.len(),
            ..Totals::default()
        };
        for row in rows {
            totals.credits += u64::from(row.credits);
            match row.status {
                Status::Succeeded => totals.succeeded += 1,
                Status::Failed => totals.failed += 1,
                Status::Skipped => totals.skipped += 1,
                Status::Running => totals.running += 1,
                Status::Unfinished => totals.unfinished += 1,
            }
        }
        totals
    }
}

const STYLE: &str = r#"
:root{color-scheme:light;--ok:#1d7a3a;--bad:#b3261e;--skip:#6b6b6b;--run:#1a5fb4;--line:#e3e3e3}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f1f1f;background:#fafafa}
header{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:10px 16px}
h1{font-size:17px;margin:0 0 2px}
header p{margin:2px 0}
.context,.updated{color:#555}
.totals b{font-size:15px}
.totals .succeeded b{color:var(--ok)}.totals .failed b{color:var(--bad)}.totals .skipped b{color:var(--skip)}
.progress{color:var(--run)}
.keys{color:#666;margin-left:12px}
kbd{border:1px solid #bbb;border-bottom-width:2px;border-radius:3px;padding:0 4px;font:12px ui-monospace,monospace;background:#f6f6f6}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-weight:600;color:#555;padding:6px 8px;border-bottom:1px solid var(--line)}
td{vertical-align:top;padding:8px;border-bottom:1px solid var(--line)}
tr.row{background:#fff;scroll-margin-top:110px}
tr.row:focus{outline:none}
tr.row.selected{background:#eef4ff;box-shadow:inset 4px 0 var(--run)}
tr.failed{box-shadow:inset 4px 0 var(--bad)}
tr.failed.selected{box-shadow:inset 4px 0 var(--bad),inset 8px 0 var(--run)}
.pics{display:flex;gap:8px;flex-wrap:nowrap}
td.generated{min-width:344px}
.pic{display:block;width:160px;height:160px;border:1px solid var(--line);border-radius:4px;background:#fff;overflow:hidden}
.pic img{width:100%;height:100%;object-fit:contain;display:block}
.pic.none{display:flex;align-items:center;justify-content:center;color:#777;font-size:12px;text-align:center;padding:6px;
 background-color:#fff;background-image:linear-gradient(45deg,#ddd 25%,transparent 25%,transparent 75%,#ddd 75%),linear-gradient(45deg,#ddd 25%,transparent 25%,transparent 75%,#ddd 75%);background-size:16px 16px;background-position:0 0,8px 8px}
a.pic:hover,a.pic:focus{border-color:var(--run)}
.label{font-weight:600;word-break:break-all}
.badge{display:inline-block;border-radius:9px;padding:0 8px;font-size:12px;color:#fff;background:var(--skip);margin-right:6px}
.badge.succeeded{background:var(--ok)}.badge.failed{background:var(--bad)}.badge.running,.badge.unfinished{background:var(--run)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:0 10px;margin:6px 0 0}
dt{color:#666}dd{margin:0;word-break:break-word}
dd.prompt{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden}
tr.selected dd.prompt{-webkit-line-clamp:unset}
code{font:12px ui-monospace,monospace}
.why{margin:6px 0 0;color:var(--bad);white-space:pre-wrap;word-break:break-word}
.todo{margin:4px 0 0}
.todo::before{content:"What to do: ";font-weight:600}
.empty{padding:24px 16px;color:#666}
body:has(#only-failures:checked) tr.row:not(.failed){display:none}
"#;

const SCRIPT: &str = r#"
(function () {
  var filter = document.getElementById('only-failures');
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.row'));
  var at = -1;
  function visible() { return rows.filter(function (r) { return r.offsetParent !== null; }); }
  function select(i) {
    var shown = visible();
    if (!shown.length) return;
    i = Math.max(0, Math.min(shown.length - 1, i));
    rows.forEach(function (r) { r.classList.remove('selected'); });
    var row = shown[i];
    row.classList.add('selected');
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: 'nearest' });
    at = i;
  }
  function selected() { return document.querySelector('tr.row.selected'); }
  function open(n) {
    var row = selected();
    if (!row) return;
    var links = row.querySelectorAll('td.generated a.pic');
    if (links[n]) location.href = links[n].href;
  }
  function sync() {
    try {
      history.replaceState(null, '', filter.checked ? '#failures' : location.pathname + location.search);
    } catch (ignored) { /* some browsers refuse history changes on file:// pages */ }
    var row = selected();
    var shown = visible();
    at = row ? shown.indexOf(row) : -1;
    if (row && at < 0) { row.classList.remove('selected'); }
  }
  filter.addEventListener('change', sync);
  if (location.hash === '#failures') filter.checked = true;
  rows.forEach(function (row) {
    row.addEventListener('click', function () { select(visible().indexOf(row)); });
  });
  document.addEventListener('keydown', function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    switch (e.key) {
      case 'j': case 'ArrowDown': select(at + 1); break;
      case 'k': case 'ArrowUp': select(at - 1); break;
      case 'Home': select(0); break;
      case 'End': select(visible().length - 1); break;
      case 'f': filter.checked = !filter.checked; sync(); break;
      case 'Enter': case '1': open(0); break;
      case '2': open(1); break;
      default: return;
    }
    e.preventDefault();
  });
})();
"#;

/// Escapes text for HTML content and attribute values (`&`, `<`, `>`, `"`, `'`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (but tab and newline) have no business in a page.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A relative path as a URL path: each `/`-separated segment percent-encoded (all but
/// `A–Z a–z 0–9 - . _ ~`), so that spaces, `#`, `?`, `%` and non-ASCII names stay part of the
/// file name. The result still needs [`escape`] in an attribute (it has no `&`, `<` or quotes).
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(byte as char);
            } else {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    // A first segment with a colon would read as a scheme (`c:x.jpg`): it was encoded above.
    out
}

/// `'sha256-…'`, a CSP source for an inline element's text.
fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn seconds(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.1} s")
    } else if value < 600.0 {
        format!("{value:.0} s")
    } else {
        format!("{:.0} min {:.0} s", (value / 60.0).floor(), value % 60.0)
    }
}

/// The page as HTML.
pub fn render(page: &Page) -> String {
    let totals = Totals::of(&page.rows);
    let mut out = String::with_capacity(4096 + page.rows.len() * 1500);
    let csp = format!(
        "default-src 'none'; img-src 'self' file: data:; style-src {}; script-src {}; \
         base-uri 'none'; form-action 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    );
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        escape(&csp)
    );
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    out.push_str("<meta name=\"generator\" content=\"backdrop\">\n");
    if let Some(revision) = &page.revision {
        let _ = writeln!(
            out,
            "<meta name=\"backdrop-revision\" content=\"{}\">",
            escape(revision)
        );
    }
    if page.in_progress {
        let _ = writeln!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{}\">",
            page.refresh_seconds.max(1)
        );
    }
    let _ = writeln!(out, "<title>{}</title>", escape(&page.title));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>\n<header>");
    let _ = writeln!(out, "<h1>{}</h1>", escape(&page.title));
    let _ = writeln!(out, "<p class=\"context\">{}</p>", escape(&page.context));
    let _ = write!(
        out,
        "<p class=\"totals\" id=\"totals\" data-inputs=\"{}\" data-succeeded=\"{}\" \
         data-failed=\"{}\" data-skipped=\"{}\" data-credits=\"{}\"><span>{} inputs</span>: \
         <span class=\"succeeded\"><b>{}</b> succeeded</span> · <span class=\"failed\"><b>{}</b> \
         failed</span> · <span class=\"skipped\"><b>{}</b> skipped</span>",
        totals.inputs,
        totals.succeeded,
        totals.failed,
        totals.skipped,
        totals.credits,
        totals.inputs,
        totals.succeeded,
        totals.failed,
        totals.skipped
    );
    if totals.running > 0 {
        let _ = write!(
            out,
            " · <span class=\"running\"><b>{}</b> running</span>",
            totals.running
        );
    }
    if totals.unfinished > 0 {
        let _ = write!(
            out,
            " · <span class=\"unfinished\"><b>{}</b> unfinished</span>",
            totals.unfinished
        );
    }
    let _ = write!(out, " · <b>{}</b> credits", totals.credits);
    if let Some(wall) = &page.wall_time {
        let _ = write!(out, " · wall time <b>{}</b>", escape(wall));
    }
    out.push_str("</p>\n");
    if page.in_progress {
        let _ = writeln!(
            out,
            "<p class=\"progress\">In progress: this page is rewritten as results land and \
             reloads every {} s.</p>",
            page.refresh_seconds.max(1)
        );
    }
    for note in &page.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(note));
    }
    let _ = writeln!(
        out,
        "<p class=\"controls\"><label><input type=\"checkbox\" id=\"only-failures\"> only \
         failures ({})</label><span class=\"keys\"><kbd>j</kbd>/<kbd>k</kbd> or \
         <kbd>↓</kbd>/<kbd>↑</kbd> move · <kbd>1</kbd>/<kbd>2</kbd> or <kbd>Enter</kbd> open \
         an image · <kbd>f</kbd> failures only</span> <span class=\"updated\">· written {}</span></p>",
        totals.failed,
        escape(&page.updated)
    );
    out.push_str("</header>\n<main>\n");
    if page.rows.is_empty() {
        out.push_str("<p class=\"empty\">No inputs yet.</p>\n");
    } else {
        out.push_str(
            "<table>\n<thead><tr><th>Source</th><th>Generated</th><th>Input</th></tr></thead>\n<tbody>\n",
        );
        for (index, row) in page.rows.iter().enumerate() {
            render_row(&mut out, index, row);
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</main>\n");
    if let Some(data) = &page.data {
        // JSON escapes `<` as \u003c: the block cannot be closed (or a comment opened) by text.
        let _ = writeln!(
            out,
            "<script type=\"application/json\" id=\"{DATA_ID}\">{}</script>",
            data.replace('<', "\\u003c")
        );
    }
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

fn render_picture(out: &mut String, picture: &Picture, lazy: bool, label: &str) {
    let alt = escape(&format!("{} of {label}", picture.caption));
    let image = picture.thumb.as_ref().map(|thumb| {
        format!(
            "<img src=\"{}\" alt=\"{alt}\"{}>",
            escape(&encode_path(thumb)),
            if lazy { " loading=\"lazy\"" } else { "" }
        )
    });
    match (&picture.full, image) {
        (Some(full), Some(image)) => {
            let _ = write!(
                out,
                "<a class=\"pic\" href=\"{}\" title=\"{}\">{image}</a>",
                escape(&encode_path(full)),
                escape(&picture.caption)
            );
        }
        (Some(full), None) => {
            let _ = write!(
                out,
                "<a class=\"pic none\" href=\"{}\">{}</a>",
                escape(&encode_path(full)),
                escape(&picture.caption)
            );
        }
        (None, Some(image)) => {
            let _ = write!(out, "<span class=\"pic\">{image}</span>");
        }
        (None, None) => {
            let _ = write!(
                out,
                "<span class=\"pic none\">{}</span>",
                escape(&picture.caption)
            );
        }
    }
}

fn render_row(out: &mut String, index: usize, row: &Row) {
    let status = row.status.as_str();
    let lazy = index >= EAGER_ROWS;
    let _ = write!(
        out,
        "<tr class=\"row {status}\" id=\"row-{}\" tabindex=\"-1\" data-status=\"{status}\">\n<td class=\"source\">",
        index + 1
    );
    match &row.source {
        Some(source) => render_picture(out, source, lazy, &row.label),
        None => out.push_str("<span class=\"pic none\">no local source</span>"),
    }
    out.push_str("</td>\n<td class=\"generated\"><div class=\"pics\">");
    for image in &row.images {
        render_picture(out, image, lazy, &row.label);
    }
    out.push_str("</div></td>\n<td class=\"info\">");
    let _ = write!(
        out,
        "<div class=\"label\">{}</div><div><span class=\"badge {status}\">{status}</span>{}</div><dl>",
        escape(&row.label),
        escape(&row.state)
    );
    if let Some(background) = &row.background {
        let _ = write!(
            out,
            "<dt>background</dt><dd class=\"prompt\">{}</dd>",
            escape(background)
        );
    }
    if let Some(negative) = &row.negative {
        let _ = write!(
            out,
            "<dt>negative</dt><dd class=\"prompt\">{}</dd>",
            escape(negative)
        );
    }
    if let Some(task_id) = &row.task_id {
        let _ = write!(
            out,
            "<dt>task</dt><dd><code class=\"task\">{}</code></dd>",
            escape(task_id)
        );
    }
    if let Some(value) = row.seconds {
        let _ = write!(
            out,
            "<dt>time</dt><dd class=\"seconds\">{}</dd>",
            seconds(value)
        );
    }
    let _ = write!(
        out,
        "<dt>credits</dt><dd class=\"credits\">{}</dd></dl>",
        row.credits
    );
    if let Some(failure) = &row.failure {
        let _ = write!(
            out,
            "<p class=\"why\">{}</p><p class=\"todo\">{}</p>",
            escape(&failure.reason),
            escape(&failure.advice)
        );
    }
    out.push_str("</td>\n</tr>\n");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn row(label: &str, status: Status) -> Row {
        Row {
            label: label.into(),
            status,
            state: "done".into(),
            source: Some(Picture {
                full: Some(format!("../in/{label}")),
                thumb: Some(format!(".backdrop-report/sources/{label}.jpg")),
                caption: "source".into(),
            }),
            images: vec![Picture {
                full: Some(format!("{label}-1.jpg")),
                thumb: Some(format!(".backdrop-report/thumbs/{label}-1.jpg")),
                caption: "image 1".into(),
            }],
            background: Some("prompt: a marble countertop".into()),
            negative: None,
            task_id: Some("T-1".into()),
            seconds: Some(12.34),
            credits: 3,
            failure: None,
        }
    }

    fn page(rows: Vec<Row>) -> Page {
        Page {
            title: "backdrop: out".into(),
            context: "Output folder out".into(),
            updated: "2026-11-29 10:00:00 UTC".into(),
            wall_time: Some("12.0 s".into()),
            in_progress: false,
            refresh_seconds: 5,
            notes: Vec::new(),
            rows,
            data: None,
            revision: None,
        }
    }

    #[test]
    fn data_comes_back_and_cannot_close_its_block() {
        let mut page = page(vec![row("a.png", Status::Succeeded)]);
        page.data = Some(r#"{"note":"</script><script>alert(1)</script>"}"#.into());
        page.revision = Some("r-1".into());
        let html = render(&page);
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        let data = embedded_data(&html).unwrap();
        let value: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(value["note"], "</script><script>alert(1)</script>");
        assert!(html.contains("content=\"r-1\""));
        assert_eq!(embedded_data("<html></html>"), None);
    }

    #[test]
    fn text_and_links_are_escaped() {
        let hostile = "<img src=x onerror=alert(1)> & \"q\" 'a' #1 %20.png";
        let mut failed = row(hostile, Status::Failed);
        failed.failure = Some(RowFailure {
            reason: "</td><script>alert(2)</script>".into(),
            advice: "fix <it>".into(),
        });
        failed.background = Some("prompt: <b>bold</b>".into());
        let html = render(&page(vec![failed]));
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>bold"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot; &#39;a&#39;")
        );
        // The link keeps the name as one path: nothing becomes a fragment, query or tag.
        assert!(
            html.contains("href=\"%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%20%26%20%22q%22%20%27a%27%20%231%20%2520.png-1.jpg\""),
            "{html}"
        );
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only the page's own script"
        );
    }

    #[test]
    fn totals_filter_and_policy() {
        let mut rows = vec![
            row("a.png", Status::Succeeded),
            row("b.png", Status::Failed),
            row("c.png", Status::Skipped),
        ];
        rows[1].credits = 0;
        rows[2].credits = 0;
        let html = render(&page(rows));
        assert!(html.contains(
            "data-succeeded=\"1\" data-failed=\"1\" data-skipped=\"1\" data-credits=\"3\""
        ));
        assert!(html.contains("id=\"only-failures\""));
        assert_eq!(html.matches("<tr class=\"row ").count(), 3);
        // The policy names the inline style and script by hash, and nothing remote.
        assert!(
            html.contains(&escape(&csp_hash(SCRIPT))) && html.contains(&escape(&csp_hash(STYLE)))
        );
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("http-equiv=\"refresh\""));
    }

    #[test]
    fn paths_are_encoded_by_segment() {
        assert_eq!(encode_path("a b/c#d?e.jpg"), "a%20b/c%23d%3Fe.jpg");
        assert_eq!(encode_path("../Été/x.jpg"), "../%C3%89t%C3%A9/x.jpg");
        assert_eq!(encode_path("c:x.jpg"), "c%3Ax.jpg");
    }

    #[test]
    fn later_rows_load_lazily() {
        let rows: Vec<Row> = (0..20)
            .map(|i| row(&format!("{i}.png"), Status::Succeeded))
            .collect();
        let html = render(&page(rows));
        assert_eq!(html.matches("loading=\"lazy\"").count(), 8 * 2);
    }
}

#!/usr/bin/env python3
"""Opens a backdrop contact sheet (index.html) in headless Chromium and checks it as a person
would use it. Driven by crates/cli/tests/report.rs; Playwright (pinned in infra/venv.sh) drives
the system's Chromium (Debian's `chromium` package), never a downloaded browser.

    check_page.py PAGE EXPECT_JSON

EXPECT_JSON: {"rows": n, "succeeded": n, "failed": n, "skipped": n, "images": n,
"sources": n, "labels": [exact label texts], "failure_text": [substrings of failure rows],
"keyboard": true, "open_limit_ms": n}; absent keys are not checked. Prints one JSON line of
measurements; exits 1 with the reason when a check fails.
"""

import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("BACKDROP_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def visible_rows(page):
    return page.eval_on_selector_all(
        "tr.row",
        "rows => rows.filter(r => r.offsetParent !== null).map(r => r.dataset.status)",
    )


def main():
    page_path, expect = sys.argv[1], json.loads(sys.argv[2])
    url = "file://" + os.path.abspath(page_path)
    requests = []
    console_errors = []
    result = {"ok": True, "bytes": os.path.getsize(page_path)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
        page.on("pageerror", lambda e: console_errors.append(str(e)))

        # Opening: from navigation to the load event (every eager image decoded), as the
        # browser's own clock measures it; best of a few to leave out a cold first start.
        opens = []
        for _ in range(int(expect.get("open_runs", 3))):
            started = time.monotonic()
            page.goto(url, wait_until="load")
            wall = (time.monotonic() - started) * 1000
            timing = page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return {load: n.loadEventEnd, dcl: n.domContentLoadedEventEnd}; }"
            )
            opens.append({"wall_ms": wall, "load_ms": timing["load"], "dcl_ms": timing["dcl"]})
        best = min(opens, key=lambda o: o["load_ms"])
        result.update(
            open_load_ms=round(best["load_ms"], 1),
            open_dcl_ms=round(best["dcl_ms"], 1),
            open_wall_ms=round(best["wall_ms"], 1),
        )
        if "open_limit_ms" in expect:
            check(
                best["load_ms"] < expect["open_limit_ms"],
                f"the page took {best['load_ms']:.0f} ms to load (limit {expect['open_limit_ms']} ms)",
            )

        rows = page.eval_on_selector_all("tr.row", "rows => rows.map(r => r.dataset.status)")
        result["rows"] = len(rows)
        if "rows" in expect:
            check(len(rows) == expect["rows"], f"{len(rows)} rows, expected {expect['rows']}")
        totals = page.eval_on_selector("#totals", "t => Object.assign({}, t.dataset)")
        for status in ("succeeded", "failed", "skipped"):
            if status in expect:
                count = rows.count(status)
                check(count == expect[status], f"{count} {status} rows, expected {expect[status]}")
                check(
                    int(totals[status]) == expect[status],
                    f"the totals say {totals[status]} {status}, expected {expect[status]}",
                )

        # Every image: scroll it into view (lazy rows load then), wait, check it decoded.
        page.evaluate(
            "async () => { for (const img of document.images) {"
            " img.scrollIntoView(); if (!img.complete) await new Promise(r => {"
            " img.addEventListener('load', r); img.addEventListener('error', r); }); } }"
        )
        images = page.eval_on_selector_all(
            "img",
            "imgs => imgs.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth,"
            " generated: !!i.closest('td.generated'), source: !!i.closest('td.source')}))",
        )
        broken = [i["src"] for i in images if i["w"] <= 0]
        check(not broken, f"images that did not load: {broken[:5]}")
        generated = sum(1 for i in images if i["generated"])
        sources = sum(1 for i in images if i["source"])
        result.update(images=generated, sources=sources)
        if "images" in expect:
            check(generated == expect["images"], f"{generated} generated thumbnails, expected {expect['images']}")
        if "sources" in expect:
            check(sources == expect["sources"], f"{sources} source thumbnails, expected {expect['sources']}")
        # Thumbnails are small files, not the full images scaled by the browser.
        links = page.eval_on_selector_all(
            "td.generated a.pic", "as => as.map(a => [a.getAttribute('href'), a.querySelector('img')?.getAttribute('src')])"
        )
        check(all(href != src for href, src in links), "a thumbnail is its full image")

        for label in expect.get("labels", []):
            found = page.eval_on_selector_all(
                ".label", "(ls, want) => ls.filter(l => l.textContent === want && l.children.length === 0).length", label
            )
            check(found == 1, f"the label {label!r} is not shown as text exactly once ({found})")
        for text in expect.get("failure_text", []):
            found = page.eval_on_selector_all(
                "tr.row.failed", "(rs, want) => rs.filter(r => r.querySelector('.why') && r.querySelector('.todo')"
                " && r.textContent.includes(want)).length", text
            )
            check(found >= 1, f"no failure row with its reason and what to do mentions {text!r}")

        # The failure filter: the checkbox, then the f key back.
        page.check("#only-failures")
        shown = visible_rows(page)
        result["filtered_rows"] = len(shown)
        check(all(s == "failed" for s in shown), f"the failure filter shows {shown}")
        check(len(shown) == rows.count("failed"), f"the filter shows {len(shown)} of {rows.count('failed')} failures")
        page.keyboard.press("f")
        check(len(visible_rows(page)) == len(rows), "the f key does not turn the filter off")

        if expect.get("keyboard"):
            page.keyboard.press("j")
            page.keyboard.press("j")
            selected = page.eval_on_selector_all(
                "tr.row", "rs => rs.map((r, i) => r.classList.contains('selected') ? i : -1).filter(i => i >= 0)"
            )
            check(selected == [1], f"j j selects {selected}, expected the second row")
            page.keyboard.press("k")
            selected = page.eval_on_selector_all(
                "tr.row", "rs => rs.map((r, i) => r.classList.contains('selected') ? i : -1).filter(i => i >= 0)"
            )
            check(selected == [0], f"k selects {selected}, expected the first row")
            page.keyboard.press("f")
            page.keyboard.press("j")
            status = page.eval_on_selector("tr.row.selected", "r => r.dataset.status")
            check(status == "failed", f"with the filter on, j selects a {status} row")
            page.keyboard.press("f")
            # 1 opens the selected row's first image (a failure has none: select a success).
            first_ok = rows.index("succeeded") if "succeeded" in rows else None
            if first_ok is not None:
                page.keyboard.press("Home")
                for _ in range(first_ok):
                    page.keyboard.press("j")
                with page.expect_navigation():
                    page.keyboard.press("1")
                check(page.url.endswith(".jpg") and page.url.startswith("file://"), f"1 opened {page.url}")
                result["opened"] = page.url.rsplit("/", 1)[-1]

        browser.close()

    outside = [u for u in requests if not u.startswith("file://")]
    result["requests"] = len(requests)
    check(not outside, f"requests left file://: {outside[:5]}")
    check(not console_errors, f"console errors: {console_errors[:5]}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

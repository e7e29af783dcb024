"""Every HTML report as a reviewer sees it: opened in headless Chromium with the network blocked, after a real
pipeline run. Each page must render styled and readable, and neither reference nor request any external URL.

The reports: the data-quality report, fairness, drift (Evidently), the plots page (scripts/ci/plots-diff.sh),
reports/index.html where the pipeline writes one, and the PR comment (reports/gate.md rendered to HTML as GitHub
would, with markdown-it-py). Screenshots go to build/screenshots/ (CI uploads them; CONVEYOR_SCREENSHOTS names
another folder). Chromium is Debian's package (scripts/ci/setup-chromium.sh); without it the tests skip, saying so.

How each page is judged:
- static: no src/href/url()/@import reaching http(s) or a protocol-relative URL, outside script bodies; links
  (<a href>) only to GitHub (the CI run and artifact links);
- the browser: no request to an http(s) or ws(s) URL that the page started, read from Chromium's net log
  (Chromium's own background requests, which no page starts, are told apart by their isolation key);
- rendered: the screenshot is not blank, and differs from the same page with its stylesheets and scripts removed (a
  page whose styles and scripts failed to load, like GX Data Docs offline, looks the same both ways); the rendered
  DOM holds the text or elements that only appear once the page's scripts ran (Evidently's and Vega's charts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from PIL import Image

from tests.conftest import ROOT, Project, copy_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHOTS = Path(os.environ.get("CONVEYOR_SCREENSHOTS") or ROOT / "build" / "screenshots")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 1600)
# Blocks every connection: a proxy nobody listens on, and no name resolves.
OFFLINE = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]
QUIET = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--metrics-recording-only", "--mute-audio",
]  # fmt: skip
JS_BUDGET_MS = "15000"  # virtual time for the page's scripts (Evidently, Vega) before the screenshot
EXTERNAL = re.compile(r"^(?:https?|wss?)://", re.IGNORECASE)
# An attribute or CSS reference that would make the browser fetch from elsewhere.
REFERENCE = re.compile(
    r"""(?:\b(?:src|href|srcset|poster|action|data|background)\s*=\s*["']?\s*|url\(\s*["']?|@import\s+["']?)"""
    r"""((?:https?:)?//[^"'\s)>]+)""",
    re.IGNORECASE,
)
ALLOWED_LINK = "https://github.com/"  # the CI run and its artifacts, linked from the comment and the index
COMMENT_STYLE = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;font-size:14px;color:#1f2328;margin:24px;max-width:1000px}
.comment{border:1px solid #d1d9e0;border-radius:6px}
.comment>.head{background:#f6f8fa;border-bottom:1px solid #d1d9e0;padding:8px 16px;color:#59636e}
.comment>.body{padding:8px 16px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d1d9e0;padding:6px 13px}
tr:nth-child(2n){background:#f6f8fa}th{font-weight:600}a{color:#0969da}
h3,h4{border-bottom:1px solid #d1d9e0;padding-bottom:4px}
code{background:#eff2f5;padding:2px 4px;border-radius:4px}
"""


def find_browser() -> str | None:
    """The first Chromium build on PATH that runs (an Ubuntu snap shim without snapd does not)."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path and subprocess.run([path, "--version"], capture_output=True, check=False, timeout=30).returncode == 0:
            return path
    return None


@dataclass(frozen=True)
class Report:
    """One page: where it is, and what its rendered DOM holds once it has drawn (its scripts included)."""

    name: str
    path: Path
    drawn: Callable[[str], bool]


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        pytest.skip(
            "no Chromium on PATH: run scripts/ci/setup-chromium.sh (Debian's chromium package) to take the report "
            "screenshots"
        )
    return found


def comment_page(markdown: str) -> str:
    """The PR comment as GitHub shows it: Markdown with tables to HTML (raw HTML such as <details> kept)."""
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>PR comment</title>"
        f"<style>{COMMENT_STYLE}</style></head><body><div class=comment><div class=head>github-actions commented"
        f"</div><div class=body>{body}</div></div></body></html>\n"
    )


@pytest.fixture(scope="module")
def reports(pipeline_run: Project, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    """The pipeline run's reports, in a copy that also gets the plots page and the comment rendered to HTML."""
    project = copy_project(pipeline_run, tmp_path_factory.mktemp("screenshots") / "project")
    done = project.sh(str(ROOT / "scripts" / "ci" / "plots-diff.sh"), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = project.root / "reports"
    (folder / "comment.html").write_text(comment_page((folder / "gate.md").read_text()))

    def has(*needles: str) -> Callable[[str], bool]:
        return lambda dom: all(n in dom for n in needles)

    return {
        report.name: report
        for report in (
            Report("quality", folder / "quality" / "index.html", has("Every expectation", "expect_column")),
            Report("fairness", folder / "fairness.html", has("Verdict per metric", "<svg")),
            # Evidently draws its report with React from an inlined bundle: its widgets exist only once it ran.
            Report("drift", folder / "drift.html", lambda dom: len(re.findall(r"<svg|<canvas", dom)) >= 2),
            # vega-embed draws each chart into a canvas or an SVG of class "marks".
            Report("plots", folder / "plots.html", lambda dom: dom.count('class="marks"') >= 4),
            Report("index", folder / "index.html", has("<table")),
            Report("comment", folder / "comment.html", has("<table", "gate")),
        )
    }


def chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, *QUIET, *OFFLINE, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *args],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip


def page_requests(net_log: Path) -> list[str]:
    """Every http(s)/ws(s) URL a page started loading, from a Chromium net log. The browser's own requests (update
    checks, accounts) have no page's site in their isolation key; a page opened from a file has file:// there."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return sorted(
        {
            event["params"]["url"]
            for event in log["events"]
            if event["type"] == start
            and EXTERNAL.match(event["params"].get("url", ""))
            and "file://" in str(event["params"].get("network_isolation_key", ""))
        }
    )


def external_references(page: str) -> list[str]:
    """References that would load from elsewhere, and links (<a href>) to anywhere but GitHub; script bodies left
    out (a URL in a string of an inlined library is not a request: the net log says what was requested)."""
    markup = re.sub(r"(<script\b[^>]*>).*?(</script>)", r"\1\2", page, flags=re.DOTALL | re.IGNORECASE)
    found = set()
    for match in REFERENCE.finditer(markup):
        tag = markup[markup.rfind("<", 0, match.start()) :]
        if re.match(r"<a\s", tag, re.IGNORECASE) and match[1].startswith(ALLOWED_LINK):
            continue
        found.add(match[1])
    return sorted(found)


def bare(page: str) -> str:
    """`page` without what presents it: stylesheets (<style>, stylesheet links, style attributes) and scripts (which
    draw Evidently's and Vega's pages and style them). Offline, a page that fetched those from a CDN looks like this."""
    page = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.DOTALL | re.IGNORECASE)
    page = re.sub(r"<link\b[^>]*stylesheet[^>]*>", "", page, flags=re.IGNORECASE)
    return re.sub(r"""\sstyle\s*=\s*("[^"]*"|'[^']*')""", "", page, flags=re.IGNORECASE)


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("name", ["quality", "fairness", "drift", "plots", "index", "comment"])
def test_each_report_renders_styled_offline_and_requests_nothing(
    name: str, reports: dict[str, Report], browser: str, tmp_path: Path
) -> None:
    report = reports[name]
    if not report.path.exists():
        pytest.skip(f"{report.path.name}: this pipeline writes no such report")
    page = report.path.read_text()
    assert external_references(page) == [], f"{name} references external URLs"

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot, net_log = SHOTS / f"{name}.png", tmp_path / "net-log.json"
    url = report.path.resolve().as_uri()
    taken = chromium(
        browser, tmp_path / "profile", f"--virtual-time-budget={JS_BUDGET_MS}", f"--log-net-log={net_log}",
        f"--screenshot={shot}", url,
    )  # fmt: skip
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-3000:]
    assert page_requests(net_log) == [], f"{name} requested external URLs with the network off"

    dom = chromium(browser, tmp_path / "profile-dom", f"--virtual-time-budget={JS_BUDGET_MS}", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-3000:]
    assert report.drawn(dom.stdout), f"{name}: the rendered page lacks what it draws once its scripts ran"

    image = pixels(shot)
    assert image.shape[:2] == (WINDOW[1], WINDOW[0])
    background = np.all(image == image[5, WINDOW[0] - 5], axis=2)
    assert background.mean() < 0.97 and image.std() > 15, f"{name}: the screenshot is (nearly) blank"

    stripped = report.path.with_name(f".{report.path.stem}.bare.html")
    stripped.write_text(bare(page))
    plain = tmp_path / "bare.png"
    chromium(
        browser,
        tmp_path / "profile-bare",
        f"--virtual-time-budget={JS_BUDGET_MS}",
        f"--screenshot={plain}",
        stripped.as_uri(),
    )
    stripped.unlink()
    changed = np.any(np.abs(pixels(plain) - image) > 24, axis=2).mean()
    assert changed > 0.02, f"{name}: looks the same without its styles and scripts ({changed:.1%} of pixels differ)"


def test_the_checks_catch_a_page_that_loads_from_a_cdn(browser: str, tmp_path: Path) -> None:
    """The net log and the static check see what GX Data Docs did offline: stylesheets and scripts from a CDN."""
    page = tmp_path / "cdn.html"
    page.write_text(
        '<!doctype html><html><head><link rel="stylesheet" href="https://cdn.example.com/bootstrap.css">'
        '<script src="//cdn.example.com/jquery.js"></script></head><body><h1>Data Docs</h1>'
        '<a href="https://github.com/conveyor-org/conveyor/actions/runs/1">run</a></body></html>'
    )
    assert external_references(page.read_text()) == [
        "//cdn.example.com/jquery.js",
        "https://cdn.example.com/bootstrap.css",
    ]
    net_log = tmp_path / "net-log.json"
    done = chromium(browser, tmp_path / "profile", f"--log-net-log={net_log}", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-3000:]
    requested = page_requests(net_log)
    assert "https://cdn.example.com/bootstrap.css" in requested

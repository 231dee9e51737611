"""The book builds from the executed lessons and works offline, checked in a real browser.

The site is built with ``book/build.py --executed-dir`` from the quick-mode notebooks that
``test_notebooks.py`` executed in the same session (or that this module executes itself), in a
scratch copy of ``book/``, so the developer's ``book/_build`` and ``book/lessons`` are left alone.
Then:

* every lesson page exists, and no page loads a script, stylesheet, image or frame from another
  host; MathJax and the widget manager are served from the site;
* solution cells (tag ``solution``; the build adds ``hide-input``) render collapsed;
* Debian's chromium, driven by playwright, opens the intro and a lesson served on 127.0.0.1:
  MathJax typesets, stored widgets render, nothing fails to load and no request leaves
  127.0.0.1. A screenshot of the lesson is saved to the temp folder.

A missing chromium or playwright fails the test with the command that installs it.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _notebook_utils as nbu  # noqa: E402

CHROMIUM = os.environ.get("METALEARN_LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", None, ""}
CDN_WORDS = re.compile(r"(?:https?:)?//[^\s\"'<>]*(?:cdn\.|jsdelivr|unpkg|cdnjs|googleapis|gstatic)", re.I)
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BUILD_TIMEOUT = 900
# The first test here may execute every lesson (when this module runs before test_notebooks).
pytestmark = pytest.mark.timeout(3600)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the book from the session's executed lessons; returns what was built."""
    lessons = nbu.find_lessons()
    outcomes = {md.stem: nbu.execute_once(md, tmp_path_factory) for md in lessons}
    built = [md for md in lessons if outcomes[md.stem].path is not None]
    failed = sorted(set(outcomes) - {md.stem for md in built})

    work = tmp_path_factory.mktemp("book_build")
    book = work / "book"
    shutil.copytree(
        nbu.BOOK_DIR, book, ignore=shutil.ignore_patterns("_build", "lessons", "_toc.yml", "__pycache__")
    )
    sources = work / "lessons_md"  # only the lessons that executed (failures are test_notebooks')
    sources.mkdir()
    for md in built:
        shutil.copy2(md, sources / md.name)
    command = [
        sys.executable, str(nbu.BOOK_DIR / "build.py"),
        "--book-dir", str(book),
        "--notebooks-dir", str(sources),
        "--executed-dir", str(nbu.executed_dir(tmp_path_factory)),
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"book build failed ({' '.join(command)}):\n{log[-6000:]}"
    print(f"book built from {len(built)} executed lessons in {seconds:.1f} s")
    return {"html": book / "_build" / "html", "lessons": [md.stem for md in built], "failed": failed, "log": log,
            "toc": book / "_toc.yml"}


class _Assets(HTMLParser):
    """Collects the URLs a page loads: script src, link href, img/iframe/source/video src."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "link" and attrs.get("href"):
            self.urls.append((tag, attrs["href"]))
        elif tag in {"script", "img", "iframe", "source", "video", "audio", "embed"} and attrs.get("src"):
            self.urls.append((tag, attrs["src"]))


def _pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.parts)


def test_every_page_exists(site):
    html = site["html"]
    expected = ["intro", "results", "glossary", "references"] + [f"lessons/{name}" for name in site["lessons"]]
    missing = [name for name in expected if not (html / f"{name}.html").is_file()]
    assert not missing, f"pages missing from {html}: {missing}"
    if site["failed"]:
        print(f"left out of the book because they failed to execute (see test_notebooks): {site['failed']}")


def test_the_contents_list_every_lesson_in_order_and_every_link_resolves(site):
    """The generated table of contents holds the lessons in file-name order, the intro links each
    lesson's page, and Sphinx found no link to a page that does not exist."""
    toc = site["toc"].read_text(encoding="utf-8")
    listed = re.findall(r"lessons/(\d\d_\w+)", toc)
    assert listed == site["lessons"] == sorted(site["lessons"]), f"table of contents: {listed}"
    intro = (site["html"] / "intro.html").read_text(encoding="utf-8")
    unlinked = [name for name in site["lessons"] if f'href="lessons/{name}.html' not in intro]
    assert not unlinked, f"the intro does not link the lessons {unlinked}"
    broken = [line for line in site["log"].splitlines()
              if "unknown document" in line or "isn't included in any toctree" in line]
    assert not broken, "the build found broken links or pages outside the contents:\n" + "\n".join(broken[:20])


def test_no_remote_assets(site):
    offenders = []
    for page in _pages(site["html"]):
        text = page.read_text(encoding="utf-8", errors="replace")
        parser = _Assets()
        parser.feed(text)
        for tag, url in parser.urls:
            parsed = urlparse(url)
            if parsed.scheme in {"http", "https"} or url.startswith("//"):
                if parsed.hostname not in LOCAL_HOSTS:
                    offenders.append(f"{page.name}: <{tag}> {url}")
        offenders += [f"{page.name}: mentions {m.group(0)}" for m in CDN_WORDS.finditer(text)]
    assert not offenders, "the site must work offline, but pages reach out:\n" + "\n".join(offenders[:30])


def test_mathjax_and_widgets_are_local(site):
    html = site["html"]
    assert (html / "_static" / "mathjax" / "MathJax.js").is_file(), "MathJax was not copied into _static/mathjax"
    assert (html / "_static" / "vendor" / "html-manager" / "embed.js").is_file(), "widget manager missing"
    intro = (html / "intro.html").read_text(encoding="utf-8")
    assert re.search(r'<script[^>]+src="_static/mathjax/MathJax\.js\?config=', intro), "intro does not load local MathJax"
    for name in site["lessons"]:
        page = (html / "lessons" / f"{name}.html").read_text(encoding="utf-8")
        if WIDGET_STATE in page:
            assert 'src="../_static/vendor/html-manager/embed.js' in page, f"{name}: widget state but no local manager"
            assert page.count("html-manager/embed.js") == 1, f"{name}: the widget manager is loaded twice"


SOLUTION_CELL = re.compile(r'<div class="cell (?:[\w-]+ )*?tag_(?:hide-cell|solution)\b[^"]*">\s*(<[^>]+>)')


def test_solutions_render_collapsed(site):
    solutions = 0
    for name in site["lessons"]:
        page = (site["html"] / "lessons" / f"{name}.html").read_text(encoding="utf-8")
        for match in SOLUTION_CELL.finditer(page):
            solutions += 1
            first = match.group(1)
            assert first.startswith("<details") and " open" not in first, (
                f"{name}: a solution cell is not rendered as a collapsed <details>: {first}"
            )
    assert solutions > 0, "no solution cell found in any lesson page"



def _lesson_to_open(site) -> str | None:
    """The first lesson with stored widgets (else the first lesson)."""
    for name in site["lessons"]:
        if WIDGET_STATE in (site["html"] / "lessons" / f"{name}.html").read_text(encoding="utf-8"):
            return name
    return site["lessons"][0] if site["lessons"] else None


def _serve(directory: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


MATHJAX_DONE = """() => window.MathJax && MathJax.Hub && MathJax.Hub.queue && MathJax.Hub.queue.pending === 0
    && document.querySelectorAll('.MathJax, .MathJax_Display, mjx-container').length > 0"""
# MathJax 2 probes web-font support with an about:blank font, which chromium reports as a CORS
# error and a generic ERR_FAILED; real load failures are caught from the request events instead.
BENIGN_CONSOLE = re.compile(r"about:blank|net::ERR_FAILED$|invalid theme mode")
LOAD_FAILURE = re.compile(r"failed to load|404|ERR_|refused|blocked|not found", re.I)


def test_in_browser(site):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"chromium not found at {CHROMIUM}: install Debian's build with `apt-get install -y chromium`"
            " (never `playwright install`), or point METALEARN_LAB_CHROMIUM at one",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: `pip install -e '.[test]'` (the Python package only)", pytrace=False)

    html = site["html"]
    lesson = _lesson_to_open(site)
    server = _serve(html)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    requests, failures, console = [], [], []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failures.append(f"{r.url} ({r.failure})"))
            page.on("response", lambda r: r.status >= 400 and failures.append(f"{r.url} (HTTP {r.status})"))
            page.on("console", lambda m: m.type == "error" and console.append(m.text))

            def external(route):  # never wait on the network: record and refuse
                route.abort()

            page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), external)

            pages = ["intro.html"] + ([f"lessons/{lesson}.html"] if lesson else [])
            typeset = {}
            for path in pages:
                page.goto(f"{base}/{path}", wait_until="load")
                if 'class="math' in (html / path).read_text(encoding="utf-8"):
                    page.wait_for_function(MATHJAX_DONE, timeout=60_000)
                    typeset[path] = page.evaluate("document.querySelectorAll('.MathJax, mjx-container').length")
            widgets_expected = lesson and WIDGET_STATE in (html / "lessons" / f"{lesson}.html").read_text()
            if widgets_expected:
                page.wait_for_selector(".jupyter-widgets", timeout=30_000)
                # Solutions stay collapsed in the browser, too.
                hidden = page.evaluate(
                    "[...document.querySelectorAll('.tag_hide-cell details, .tag_solution details')].filter(d => d.open).length"
                )
                assert hidden == 0, "a solution is open on page load"
            page.wait_for_timeout(500)
            shot = Path(tempfile.gettempdir()) / f"metalearn_lab_book_{lesson or 'intro'}.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}; math elements typeset: {typeset}")
            browser.close()
    finally:
        server.shutdown()

    outside = sorted({u for u in requests if urlparse(u).scheme in {"http", "https"}
                      and urlparse(u).hostname != "127.0.0.1"})
    assert not outside, f"the site asked for remote resources: {outside}"
    failed = [f for f in failures if not f.startswith(("about:", "data:"))]
    assert not failed, "resources failed to load:\n" + "\n".join(failed)
    bad_console = [m for m in console if not BENIGN_CONSOLE.search(m) and LOAD_FAILURE.search(m)]
    assert not bad_console, "console errors about loading:\n" + "\n".join(bad_console)
    assert typeset.get("intro.html", 0) > 0, f"MathJax typeset nothing on the intro: {typeset}"
    assert all(count > 0 for count in typeset.values()), f"MathJax typeset nothing on some page: {typeset}"


def test_no_dead_sliders_and_explorers_are_pre_rendered(site):
    """The book has no live widget (its sliders would move and redraw nothing); every lesson's Try-it
    is a pre-rendered explorer (metalearn_lab.tryit) whose frames fit the page budget."""
    budget = 3_000_000
    without = []
    for name in site["lessons"]:
        page = (site["html"] / "lessons" / f"{name}.html").read_text(encoding="utf-8")
        assert "application/vnd.jupyter.widget-view+json" not in page, f"{name}: a live widget (dead slider) in the book"
        if 'class="metalearn-tryit"' not in page:
            without.append(name)
        size = (site["html"] / "lessons" / f"{name}.html").stat().st_size
        assert size < budget + 2_000_000, f"{name}.html is {size:,} bytes: over the page budget"
    assert not without, f"lessons without a pre-rendered Try-it in the book: {without}"


def test_explorer_slider_changes_the_figure_in_the_browser(site):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: `apt-get install -y chromium`", pytrace=False)
    from playwright.sync_api import sync_playwright

    html = site["html"]
    name = next((n for n in site["lessons"]
                 if 'class="metalearn-tryit"' in (html / "lessons" / f"{n}.html").read_text(encoding="utf-8")), None)
    assert name is not None, "no lesson page has a pre-rendered explorer"
    server = _serve(html)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/lessons/{name}.html", wait_until="load")
            root = page.locator(".metalearn-tryit").first
            image = root.locator("img")
            before = image.get_attribute("src")
            slider = root.locator("input[type=range]").first
            slider.focus()
            key = "ArrowLeft" if slider.evaluate("el => +el.value === +el.max") else "ArrowRight"
            slider.press(key)
            page.wait_for_function("([el, src]) => el.src !== src", arg=[image.element_handle(), before], timeout=5000)
            assert image.get_attribute("src") != before
            browser.close()
    finally:
        server.shutdown()

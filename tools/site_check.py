"""Check the built book (_build/html) the way a reader meets it: links, then a real browser.

Two checks, used by tests/test_site.py and runnable on their own:

    .venv/bin/python tools/site_check.py            # both checks, report on stdout
    .venv/bin/python tools/site_check.py --links    # internal links only (no browser needed)

``internal_link_problems`` parses every HTML page of the site (not ``_static``) and resolves
every relative or same-site ``href``/``src``, including ``#fragment`` anchors, which must name
an ``id`` on the target page. External links (http, https, mailto) are counted and skipped:
the build machine has no internet, and they are not faked.

``BrowserCheck`` serves the site on 127.0.0.1 and drives headless Chromium (the system's
``chromium``, via Playwright's ``executable_path``; never a downloaded browser) through every
page of ``_toc.yml`` by clicking each page's "next" link. On each page it checks: no console
errors, every image loaded, no cell output with an error or traceback, every citation a link to
an entry on the references page, the executed notebook (.ipynb) downloadable from the page,
and the header buttons: when the site was built for a published repository
(tools/book_config.py) the Binder and Colab launch buttons for it, otherwise no header button
that leaves the site (no repository, issue or launch button leading nowhere); and it saves a
screenshot to
``_build/screenshots/<chapter>.png``. Requests to other hosts (the MathJax CDN) are blocked
and the console errors they cause are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from book_config import built_config  # noqa: E402
from toc_chapters import toc_files  # noqa: E402

# The site to check: _build/html, or the folder in $BOOK_HTML (a build made elsewhere with
# jupyter-book build --path-output). Screenshots go beside it: _build/screenshots/<chapter>.png.
HTML = Path(os.environ.get("BOOK_HTML") or ROOT / "_build" / "html").resolve()
MAX_SCREENSHOT_HEIGHT = 8000  # pixels: the top of a long page (the API reference is ~50000)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


# --------------------------------------------------------------------------------------------
# Building and serving


def ensure_built(html: Path = HTML) -> Path:
    """Build the book with tools/book.sh when ``html/index.html`` is missing; return ``html``."""
    default = (ROOT / "_build" / "html").resolve()
    if not (html / "index.html").is_file() and html.resolve() != default:
        raise FileNotFoundError(f"{html}/index.html is missing (BOOK_HTML or --html names no built site)")
    if not (html / "index.html").is_file():
        print(f"{html}/index.html is missing: building the book with tools/book.sh", flush=True)
        subprocess.run(["bash", str(ROOT / "tools" / "book.sh")], cwd=ROOT, check=True)
    if not (html / "index.html").is_file():
        raise FileNotFoundError(f"tools/book.sh ran but {html}/index.html is still missing")
    return html


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve(directory: Path = HTML) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 on a free port in a thread; yield the base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def toc_pages() -> list[tuple[str, str]]:
    """(chapter name, page path in the site) for every _toc.yml entry, in reading order."""
    return [(PurePosixPath(name).stem, str(PurePosixPath(name).with_suffix(".html"))) for name in toc_files()]


# --------------------------------------------------------------------------------------------
# Internal links


class PageParser(HTMLParser):
    """Collects the ids of a page and every href/src it refers to."""

    LINK_ATTRIBUTES = {"href", "src"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.classes: dict[str, set[str]] = {}  # id -> classes of that element
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)
                self.classes[value] = classes
            elif name in self.LINK_ATTRIBUTES and tag in {"a", "link", "img", "script", "source", "iframe", "area"}:
                self.links.append((tag, value))


@functools.cache
def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def site_pages(html: Path = HTML) -> list[Path]:
    """Every HTML page of the site, theme assets under _static excluded."""
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.relative_to(html).parts)


@dataclass
class LinkReport:
    pages: int = 0
    internal: int = 0
    external: int = 0
    problems: list[str] = field(default_factory=list)


def internal_link_problems(html: Path = HTML) -> LinkReport:
    """Resolve every internal link and anchor of the built site; list the broken ones."""
    parse_page.cache_clear()
    report = LinkReport()
    html = html.resolve()
    for page in site_pages(html):
        report.pages += 1
        where = page.relative_to(html)
        for tag, link in parse_page(page).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                if parts.scheme in {"http", "https", "mailto", "ftp", "tel"} or parts.netloc:
                    report.external += 1
                # javascript:, data: and the like are not links to pages
                continue
            if not parts.path and not parts.fragment:
                continue  # href="" or href="#": a button, not a link
            report.internal += 1
            if parts.path:
                if parts.path.startswith("/"):
                    report.problems.append(f"{where}: <{tag}> {link!r} is root-relative (breaks under a sub-path)")
                    continue
                target = (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            else:
                target = page
            if html not in target.parents and target != html:
                report.problems.append(f"{where}: <{tag}> {link!r} points outside the site")
                continue
            if not target.is_file():
                report.problems.append(f"{where}: <{tag}> {link!r} -> missing file {target.relative_to(html)}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in parse_page(target).ids:
                report.problems.append(f"{where}: <{tag}> {link!r} -> no id {fragment!r} on {target.relative_to(html)}")
    return report


# --------------------------------------------------------------------------------------------
# The browser


def find_chromium() -> str:
    """Path of the system Chromium: $CHROMIUM, else chromium / google-chrome on PATH."""
    candidates = [os.environ.get("CHROMIUM", "")] + [shutil.which(name) or "" for name in CHROMIUM_NAMES]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError(
        "no Chromium found for the browser check: install it (Debian: sudo apt-get install chromium; "
        "bash tools/browser.sh does this when it can) or set CHROMIUM=/path/to/chrome"
    )


def launch_urls(page_path: str, config: dict) -> dict[str, str]:
    """The Binder and Colab links a chapter page should carry under ``config`` (the configuration
    the site was built with); none when it names no repository."""
    repository, buttons = config["repository"], config["launch_buttons"]
    if not repository.get("url"):
        return {}
    org_repo = repository["url"].rstrip("/").split("github.com/")[1]
    branch = repository.get("branch", "master")
    book = repository.get("path_to_book", "").strip("/")
    source = "/".join(filter(None, [book, str(PurePosixPath(page_path).with_suffix(".md"))]))
    interface = {"classic": "tree", "jupyterlab": "lab/tree"}[buttons.get("notebook_interface", "classic")]
    return {
        "Binder": f"{buttons['binderhub_url'].rstrip('/')}/v2/gh/{org_repo}/{branch}?urlpath={interface}/{source}",
        "Colab": f"{buttons['colab_url'].rstrip('/')}/github/{org_repo}/blob/{branch}/{source}",
    }


# Run in the page: force lazy images to load, wait for all of them, report the broken ones.
IMAGES_JS = """
async () => {
  const images = [...document.images];
  for (const img of images) { img.loading = 'eager'; }
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done);
    setTimeout(done, 10000);
  })));
  return images.map(img => ({src: img.currentSrc || img.src, loaded: img.complete && img.naturalWidth > 0}));
}
"""

# Run in the page: text of outputs that show an error (myst-nb renders error outputs with the
# class "traceback"; stderr lines like "ValueError: ..." count too). Cells tagged
# raises-exception show an error on purpose and are exempt.
OUTPUT_ERRORS_JS = r"""
() => [...document.querySelectorAll('.cell_output .output')]
  .filter(out => !out.closest('.tag_raises-exception'))
  .filter(out => out.classList.contains('traceback')
                 || /Traceback \(most recent call last\)/.test(out.textContent)
                 || (out.classList.contains('stderr') && /^\s*\w+(Error|Exception): /m.test(out.textContent)))
  .map(out => out.textContent.trim().split('\n').slice(-3).join(' | ').slice(0, 300))
"""

CITATIONS_JS = """
() => [...document.querySelectorAll('.bibtex-citation')].map(cite => ({
  text: cite.textContent.trim().slice(0, 80),
  links: [...cite.querySelectorAll('a[href]')].map(a => a.href),
}))
"""


@dataclass
class PageResult:
    chapter: str
    url: str
    problems: list[str] = field(default_factory=list)
    screenshot: Path | None = None


class BrowserCheck:
    """Walk the book in headless Chromium; ``run()`` returns one PageResult per toc page."""

    def __init__(self, base_url: str, html: Path = HTML, screenshots: Path | None = None):
        self.base_url = base_url
        self.html = html
        self.screenshots = screenshots or html.parent / "screenshots"
        self.external_blocked: set[str] = set()
        self.console: list[str] = []
        self.config = built_config(html)

    def _route(self, route) -> None:
        if route.request.url.startswith(self.base_url):
            route.continue_()
        else:
            self.external_blocked.add(route.request.url)
            route.abort()

    def _on_console(self, message) -> None:
        if message.type != "error":
            return
        location = (message.location or {}).get("url", "")
        if location and not location.startswith(self.base_url) and location in self.external_blocked:
            return  # a blocked request to another host (e.g. the MathJax CDN)
        if "net::ERR_FAILED" in message.text and not location.startswith(self.base_url):
            return
        self.console.append(f"console error: {message.text} ({location})")

    def _on_page_error(self, error) -> None:
        self.console.append(f"uncaught exception: {error}")

    def _on_response(self, response) -> None:
        if response.url.startswith(self.base_url) and response.status >= 400:
            self.console.append(f"HTTP {response.status} for {response.url}")

    @contextlib.contextmanager
    def browser_page(self):
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=find_chromium(), headless=True)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.route("**/*", self._route)
                page = context.new_page()
                page.set_default_timeout(30_000)
                page.on("console", self._on_console)
                page.on("pageerror", self._on_page_error)
                page.on("response", self._on_response)
                yield page
            finally:
                browser.close()

    def check_page(self, page, chapter: str, page_path: str, next_path: str | None) -> PageResult:
        result = PageResult(chapter=chapter, url=page.url)
        problems = result.problems
        page.wait_for_load_state("load")
        expected = urljoin(self.base_url, page_path)
        if page.url.split("#")[0] != expected:
            problems.append(f"expected to be on {expected}, browser is on {page.url}")

        for image in page.evaluate(IMAGES_JS):
            if image["src"].startswith(self.base_url) and not image["loaded"]:
                problems.append(f"image not loaded: {image['src']}")
            elif not image["src"].startswith(self.base_url) and not image["src"].startswith("data:"):
                self.external_blocked.add(image["src"])

        for output in page.evaluate(OUTPUT_ERRORS_JS):
            problems.append(f"cell output shows an error: {output}")

        references = urljoin(self.base_url, self.references_page())
        for citation in page.evaluate(CITATIONS_JS):
            if not citation["links"]:
                problems.append(f"citation {citation['text']!r} is not a link")
            for link in citation["links"]:
                target, _, anchor = link.partition("#")
                if target != references:
                    problems.append(f"citation {citation['text']!r} links to {link}, not the references page")
                elif "citation" not in parse_page(self.html / self.references_page()).classes.get(anchor, ()):
                    problems.append(f"citation {citation['text']!r} links to {link}, which is no bibliography entry")

        self.check_notebook_download(page, problems)
        self.check_launch_buttons(page, page_path, problems)

        self.screenshots.mkdir(parents=True, exist_ok=True)
        result.screenshot = self.screenshots / f"{chapter}.png"
        height = min(page.evaluate("document.documentElement.scrollHeight"), MAX_SCREENSHOT_HEIGHT)
        page.screenshot(
            path=str(result.screenshot), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": height}
        )

        # Everything the console said since this page started loading belongs to this page.
        problems.extend(self.console)
        self.console.clear()

        if next_path is not None:
            link = page.locator("a.right-next")
            if link.count() != 1:
                problems.append("no 'next' link at the bottom of the page")
            else:
                with page.expect_navigation():
                    link.click()
                if page.url.split("#")[0] != urljoin(self.base_url, next_path):
                    problems.append(f"'next' leads to {page.url}, expected {next_path}")
        return result

    def references_page(self) -> str:
        for _chapter, path in toc_pages():
            if PurePosixPath(path).stem == "references":
                return path
        raise ValueError("_toc.yml has no references page")

    def check_notebook_download(self, page, problems: list[str]) -> None:
        links = page.locator('a[href$=".ipynb"]')
        if links.count() == 0:
            problems.append("no executed notebook (.ipynb) to download")
            return
        url = urljoin(page.url, links.first.get_attribute("href"))
        response = page.request.get(url)
        if not response.ok:
            problems.append(f"notebook download {url} answers HTTP {response.status}")
            return
        try:
            notebook = json.loads(response.body())
        except ValueError:
            problems.append(f"notebook download {url} is not JSON")
            return
        code = [cell for cell in notebook.get("cells", []) if cell.get("cell_type") == "code"]
        if any(cell.get("execution_count") is None for cell in code):
            problems.append(f"notebook download {url} has code cells that were not executed")

    def check_launch_buttons(self, page, page_path: str, problems: list[str]) -> None:
        expected = launch_urls(page_path, self.config)
        if not expected:  # no repository: no header button may lead off the site
            buttons = page.eval_on_selector_all(
                ".article-header-buttons a[href]", "links => links.map(a => a.getAttribute('href'))"
            )
            for href in buttons:
                if urlsplit(href).scheme or urlsplit(href).netloc:
                    problems.append(f"header button links to {href}, but the site names no repository")
            return
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
        for name, prefix in expected.items():
            if not any(href.startswith(prefix) for href in hrefs):
                problems.append(f"no {name} launch button (expected a link starting {prefix})")

    def run(self) -> list[PageResult]:
        pages = toc_pages()
        results = []
        with self.browser_page() as page:
            page.goto(self.base_url + "index.html")  # the site's front door redirects to the root
            page.wait_for_url(urljoin(self.base_url, pages[0][1]) + "*")
            for index, (chapter, path) in enumerate(pages):
                next_path = pages[index + 1][1] if index + 1 < len(pages) else None
                if page.url.split("#")[0] != urljoin(self.base_url, path):
                    page.goto(urljoin(self.base_url, path))  # 'next' failed; keep checking
                results.append(self.check_page(page, chapter, path, next_path))
        return results

    def search(self, term: str) -> list[str]:
        """URLs of the results the site's search page lists for ``term``."""
        with self.browser_page() as page:
            page.goto(f"{self.base_url}search.html?q={term}")
            page.wait_for_selector("#search-results ul.search li a", timeout=30_000)
            hrefs = page.eval_on_selector_all("#search-results ul.search li a", "links => links.map(a => a.href)")
            if self.console:
                raise AssertionError(f"search page: {self.console}")
            return hrefs


def search_term(html: Path = HTML) -> tuple[str, str]:
    """A word from the title of the first chapter after the introduction, and that page's path."""
    chapter, path = toc_pages()[1]
    title = re.search(r"<h1[^>]*>(.*?)</h1>", (html / path).read_text(), re.S)
    words = re.findall(r"[A-Za-z]{5,}", re.sub(r"<[^>]+>", " ", title.group(1) if title else chapter))
    return (max(words, key=len) if words else chapter), path


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", action="store_true", help="check internal links only")
    parser.add_argument("--html", type=Path, default=HTML, help="the built site (default: _build/html)")
    args = parser.parse_args()
    html = ensure_built(args.html)
    report = internal_link_problems(html)
    print(
        f"links: {report.pages} pages, {report.internal} internal links checked, "
        f"{report.external} external links skipped, {len(report.problems)} broken"
    )
    for problem in report.problems:
        print("  " + problem)
    failed = bool(report.problems)
    if not args.links:
        with serve(html) as base_url:
            check = BrowserCheck(base_url, html)
            for result in check.run():
                print(f"{result.chapter}: {'ok' if not result.problems else 'FAILED'} -> {result.screenshot}")
                for problem in result.problems:
                    print("  " + problem)
                failed |= bool(result.problems)
            term, path = search_term(html)
            hits = check.search(term)
            found = any(hit.split("?")[0].split("#")[0].endswith(path) for hit in hits)
            print(f"search {term!r}: {len(hits)} results, {path} {'found' if found else 'NOT found'}")
            failed |= not found
            print(f"external requests blocked: {len(check.external_blocked)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The built book (_build/html) checked as a reader meets it: API reference, links, a browser.

The site is built by tools/book.sh; when _build/html/index.html is missing these tests build it
first, so `bash tools/test.sh` works on a fresh checkout. The browser is the system Chromium
(Debian package `chromium`, installed by tools/browser.sh, which tools/test.sh runs) driven by
Playwright; tools/site_check.py does the work and can be run on its own
(`.venv/bin/python tools/site_check.py`). Where tools/browser.sh reports that no Chromium can be
had (no root, no password-less sudo, no apt-get) the browser tests are skipped with its reason,
except under CI.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import book_config  # noqa: E402
import site_check  # noqa: E402
from sphinx_site import assigned_names, is_constant  # noqa: E402
from toc_chapters import toc_files  # noqa: E402

API_PAGE = ROOT / "book" / "api.md"
PAGES = site_check.toc_pages()


# ------------------------------------------------------------------------- API reference


def package_modules() -> list[str]:
    """Every module and subpackage of the package, as dotted names (not ``__main__``)."""
    names = []
    for path in (ROOT / "tabresnet_course").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] != "__main__":
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def documented_modules() -> list[str]:
    return re.findall(r"^\.\. automodule:: (\S+)", API_PAGE.read_text(), flags=re.M)


def test_api_reference_has_an_entry_for_every_module():
    documented = documented_modules()
    missing = sorted(set(package_modules()) - set(documented))
    assert not missing, (
        f"book/api.md has no `.. automodule::` entry for {missing}: add a section for each "
        "(a heading, the chapter that teaches it, and an eval-rst automodule block)"
    )
    assert len(documented) == len(set(documented)), "a module is documented twice in book/api.md"


def public_names(modname: str) -> list[str]:
    """What autodoc documents for a module: __all__, or its own classes, functions, constants."""
    module = importlib.import_module(modname)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if obj.__module__ == modname:
                names.append(name)
        elif is_constant(obj) and not inspect.ismodule(obj) and name in assigned_names(modname):
            names.append(name)
    return names


@pytest.fixture(scope="module")
def html() -> Path:
    return site_check.ensure_built()


def test_api_reference_documents_every_public_name(html):
    ids = site_check.parse_page(html / "book" / "api.html").ids
    missing = [
        f"{modname}.{name}"
        for modname in documented_modules()
        if modname != "tabresnet_course"
        for name in public_names(modname)
        if f"{modname}.{name}" not in ids
    ]
    assert not missing, f"not in the built API reference (rebuild the book if it is stale): {missing}"


LITERALINCLUDE = re.compile(r"```\{literalinclude\}\s+\S*?tabresnet_course/([\w/]+)\.py[^\n]*\n((?:[ \t]*:[^\n]*\n)*)")


def introduced_objects() -> dict[str, str]:
    """Package object shown with literalinclude :pyobject: -> the first chapter that shows it."""
    first: dict[str, str] = {}
    for chapter in toc_files():
        for module, options in LITERALINCLUDE.findall((ROOT / chapter).read_text()):
            match = re.search(r":pyobject:\s*(\S+)", options)
            if match and not any(part.startswith("_") for part in match.group(1).split(".")):
                first.setdefault(f"tabresnet_course.{module.replace('/', '.')}.{match.group(1)}", chapter)
    return first


def test_chapters_link_the_api_entries_they_introduce(html):
    unlinked = []
    for fullname, chapter in introduced_objects().items():
        page = html / Path(chapter).with_suffix(".html")
        linked = {
            unquote(urlsplit(link).fragment)
            for tag, link in site_check.parse_page(page).links
            if tag == "a" and urlsplit(link).path.endswith("api.html")
        }
        # A link to the class is enough for one of its methods.
        if not any(fullname == target or fullname.startswith(target + ".") for target in linked if target):
            unlinked.append(f"{chapter}: {fullname}")
    assert not unlinked, (
        "a chapter shows package code without linking its API entry; add a role such as "
        "{py:class}`~tabresnet_course.model.TabularResNet` (or {py:func}, {py:meth}, {py:data}) "
        f"near the code: {unlinked}"
    )


# ------------------------------------------------------------------------- buttons


def test_the_book_names_no_repository_unless_published():
    """_config.yml shows no repository, issue or launch button; tools/book_config.py turns them
    all on for a published repository (tools/book.sh: BOOK_REPOSITORY_URL)."""
    default = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert not default["repository"]["url"] and not site_check.launch_urls("book/model.html", default)
    assert not any(default["launch_buttons"].get(key) for key in ("binderhub_url", "colab_url", "jupyterhub_url"))
    assert not any(default["html"].get(key) for key in ("use_repository_button", "use_issues_button"))

    published = book_config.published_config("https://github.com/owner/repo/", branch="pages")
    assert published["repository"]["url"] == "https://github.com/owner/repo"
    assert published["html"]["use_repository_button"] and published["html"]["use_issues_button"]
    assert site_check.launch_urls("book/model.html", published) == {
        "Binder": "https://mybinder.org/v2/gh/owner/repo/pages?urlpath=lab/tree/book/model.md",
        "Colab": "https://colab.research.google.com/github/owner/repo/blob/pages/book/model.md",
    }
    assert all(Path(path).is_absolute() for path in published["sphinx"]["local_extensions"].values())
    with pytest.raises(ValueError, match="github.com"):
        book_config.published_config("https://example.org/book")


# ------------------------------------------------------------------------- links


def test_every_internal_link_and_anchor_resolves(html):
    report = site_check.internal_link_problems(html)
    assert report.pages >= len(PAGES) and report.internal > 0
    assert not report.problems, f"{len(report.problems)} broken internal links:\n" + "\n".join(report.problems)


# ------------------------------------------------------------------------- the browser


def browser_skip_reason() -> str:
    """Why the browser tests cannot run here, or "" when they must run.

    Only tools/browser.sh (run by tools/test.sh) decides that no Chromium can be had, and says why
    in $SITE_CHECK_SKIP; even then the tests run if a Chromium is found after all, and under CI
    they always run (and fail without a browser). A browser that is there but broken fails.
    """
    reason = os.environ.get("SITE_CHECK_SKIP", "")
    if not reason or os.environ.get("CI", "").lower() not in {"", "0", "false"}:
        return ""
    try:
        site_check.find_chromium()
    except FileNotFoundError:
        return reason
    return ""


BROWSER_SKIP = browser_skip_reason()


def browser_walk(request: pytest.FixtureRequest) -> dict:
    """The walk below, or a skip with tools/browser.sh's reason. The skip is raised here, in one
    place, so that pytest -ra reports every skipped browser test in one summary line."""
    if BROWSER_SKIP:
        pytest.skip(BROWSER_SKIP)
    return request.getfixturevalue("walk")


@pytest.fixture(scope="module")
def walk(html):
    """Walk every toc page in headless Chromium once; results per chapter, plus a search."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' (tools/setup.sh does)")
    try:
        site_check.find_chromium()
    except FileNotFoundError as error:
        pytest.fail(str(error))
    with site_check.serve(html) as base_url:
        check = site_check.BrowserCheck(base_url, html)
        results = {result.chapter: result for result in check.run()}
        term, path = site_check.search_term(html)
        hits = check.search(term)
    return {"results": results, "search": (term, path, hits)}


@pytest.mark.parametrize("chapter,path", PAGES, ids=[chapter for chapter, _ in PAGES])
def test_page_in_a_real_browser(request, chapter, path):
    """No console errors, images loaded, no error outputs, citations resolve, 'next' works,
    executed notebook downloadable, launch buttons present; screenshot saved."""
    result = browser_walk(request)["results"][chapter]
    assert not result.problems, f"{path}:\n" + "\n".join(result.problems)
    assert result.screenshot is not None and result.screenshot.stat().st_size > 10_000


def test_search_page_finds_a_chapter_term(request):
    term, path, hits = browser_walk(request)["search"]
    found = [hit for hit in hits if urlsplit(hit).path.endswith(path)]
    assert found, f"searching {term!r} did not list {path}; results: {hits}"

"""The course beyond a clone: the website and the hosted set-up cell.

* **Hosted cell** (fast): every notebook starts with the current set-up cell of
  :mod:`coursekit.hosted`; inserting it twice changes nothing; in an installation it prints
  nothing, starts no process, imports nothing and changes no environment variable; where the
  package is missing it pip-installs it from the configured repository and points the data cache
  at the service's disk; in a checkout without the package it says how to install instead.
* **Colab links** (fast): the README's course map links each notebook to the address made from
  the one configured repository URL, which no other source file spells out.
* **Site** (slow): ``coursekit site --out DIR`` builds the website from the stored outputs, without
  a warning; solutions are collapsed, widgets show their fallback, the set-up cell is replaced by
  a Colab link, nothing is loaded from another host, and every internal link and anchor of every
  page resolves.
* **Site in a browser** (browser): headless Chromium opens the home page, notebook 03 and a guide
  from a local server and checks that MathJax typeset every formula (offline: the site serves its
  own MathJax), that every image loaded, that no request failed or left the server, and that the
  links on the page resolve. Needs Debian's chromium, as tests/test_browser.py; skipped without it.

Build time, size and screenshots go to ``test-artifacts/site/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from coursekit import hosted
from coursekit.cli import main
from coursekit.site import COLAB_CLASS, SOLUTION, course_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = course_notebooks(ROOT)
ARTIFACTS = ROOT / "test-artifacts" / "site"
CHROMIUM = Path(os.environ.get("COURSEKIT_CHROMIUM", "/usr/bin/chromium"))
CHAPTER = "03_attention"  # maths, figures, an explorer and exercises

# --------------------------------------------------------------------------------------------
# the hosted set-up cell


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_starts_with_the_current_hosted_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert hosted.is_hosted_cell(first), (
        f"{path.name}: the first cell is not the hosted set-up cell; run `coursekit hosted {path}`"
    )
    assert first.source == hosted.hosted_cell_source() and not first.outputs, (
        f"{path.name}: the hosted set-up cell is out of date; run `coursekit hosted {path}`"
    )
    assert sum(hosted.is_hosted_cell(c) for c in nb.cells) == 1


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Title")]
    nb.cells += [nbformat.v4.new_code_cell(s, execution_count=i + 1) for i, s in enumerate(sources)]
    nbformat.write(nb, path)
    return path


def test_inserting_the_cell_is_idempotent_and_touches_nothing_else(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "01_x.ipynb", "x = 1", "print(x)")
    before = nbformat.read(path, as_version=4)
    assert hosted.update_notebook(path).changed
    once = path.read_bytes()
    after = nbformat.read(path, as_version=4)
    assert after.cells[1:] == before.cells and after.metadata == before.metadata
    cell = after.cells[0]
    assert hosted.is_hosted_cell(cell) and cell.execution_count is None and cell.outputs == []
    assert cell.id == hosted.HOSTED_TAG
    assert not hosted.update_notebook(path).changed and path.read_bytes() == once
    # a stale cell elsewhere is updated and moved to the front; its outputs go
    nb = nbformat.read(path, as_version=4)
    stale = nb.cells.pop(0)
    stale.source = "print('old')"
    stale.outputs = [nbformat.v4.new_output("stream", text="old\n")]
    nb.cells.append(stale)
    nbformat.write(nb, path)
    assert hosted.update_notebook(path, check=True).changed
    assert hosted.update_notebook(path).changed and path.read_bytes() == once


def test_cli_hosted_check_reports_and_writes_nothing(tmp_path: Path, capsys) -> None:
    path = _notebook(tmp_path / "01_x.ipynb", "x = 1")
    before = path.read_bytes()
    assert main(["hosted", str(path), "--check"]) == 1
    assert path.read_bytes() == before and "out of date" in capsys.readouterr().out
    assert main(["hosted", str(path)]) == 0
    assert main(["hosted", str(path), "--check"]) == 0


def _run_cell(tmp_path: Path, prelude: str, env: dict[str, str] | None = None) -> dict:
    """Run the set-up cell in a fresh interpreter (cwd ``tmp_path``) after ``prelude``; return
    what it printed, the processes it tried to start, and what it changed."""
    script = tmp_path / "run_cell.py"
    script.write_text(
        textwrap.dedent(
            """
            import contextlib, io, json, os, subprocess, sys
            calls = []
            def record(*args, **kwargs):  # a process the cell starts is recorded, not started
                calls.append([str(a) for a in (args[0] if args else kwargs.get("args", []))])
                return 0
            subprocess.Popen = subprocess.run = subprocess.call = record
            subprocess.check_call = subprocess.check_output = os.system = record
            """
        )
        + textwrap.dedent(prelude)
        + textwrap.dedent(
            """
            env_before, modules_before = dict(os.environ), set(sys.modules)
            source = open(sys.argv[1], encoding="utf-8").read()
            out, error = io.StringIO(), None
            namespace = {"__name__": "__main__"}
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                try:
                    exec(compile(source, "<hosted cell>", "exec"), namespace)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
            changed_env = {k: v for k, v in os.environ.items() if env_before.get(k) != v}
            print(json.dumps({
                "printed": out.getvalue(), "calls": calls, "error": error,
                "env": changed_env, "new_modules": sorted(set(sys.modules) - modules_before),
                "names": sorted(k for k in namespace if not k.startswith("__")),
            }))
            """
        ),
        encoding="utf-8",
    )
    cell = tmp_path / "cell.py"
    cell.write_text(hosted.hosted_cell_source(), encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if k not in {"COURSEKIT_DATA_DIR"}}
    clean = {k: v for k, v in clean.items() if k not in dict(hosted.SERVICE_DATA_DIRS)}
    done = subprocess.run(
        [sys.executable, str(script), str(cell)],
        cwd=tmp_path,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stderr == "", done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hosted_cell_does_nothing_where_coursekit_is_installed(tmp_path: Path) -> None:
    assert importlib.util.find_spec("coursekit") is not None
    seen = _run_cell(tmp_path, "", env={"COLAB_RELEASE_TAG": "test"})
    assert seen["printed"] == "" and seen["error"] is None
    assert seen["calls"] == [], "the cell started a process (pip?) although coursekit is there"
    assert seen["env"] == {} and seen["new_modules"] == []
    assert seen["names"] == ["importlib"]


def test_hosted_cell_installs_from_the_repository_where_coursekit_is_missing(
    tmp_path: Path,
) -> None:
    missing = """
        import importlib.util
        _find_spec = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == "coursekit" else _find_spec(name, *a)
    """
    seen = _run_cell(tmp_path, missing, env={"COLAB_RELEASE_TAG": "test"})
    assert seen["error"] is None, seen
    pip = [sys.executable, "-m", "pip", "install", "--quiet", hosted.pip_requirement()]
    assert seen["calls"] == [pip]
    assert hosted.REPOSITORY_URL in hosted.pip_requirement()
    assert seen["env"] == {"COURSEKIT_DATA_DIR": "/content/coursekit-data"}
    assert "Installing" in seen["printed"] and "device:" in seen["printed"]
    kaggle = _run_cell(tmp_path, missing, env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
    assert kaggle["env"] == {"COURSEKIT_DATA_DIR": "/kaggle/working/coursekit-data"}


def test_hosted_cell_in_a_checkout_without_the_package_says_how_to_install(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'coursekit'\n")
    (tmp_path / "notebooks").mkdir()
    missing = """
        import importlib.util
        importlib.util.find_spec = lambda name, *a: None
    """
    seen = _run_cell(tmp_path / "notebooks", missing)
    assert seen["calls"] == [] and seen["error"].startswith("ModuleNotFoundError")
    assert 'pip install -e ".[lab]"' in seen["error"]


# --------------------------------------------------------------------------------------------
# Colab links


def test_colab_links_come_from_the_one_configured_url() -> None:
    owner_name = hosted.REPOSITORY_URL.removeprefix("https://github.com/")
    assert hosted.colab_url("notebooks/03_attention.ipynb") == (
        f"https://colab.research.google.com/github/{owner_name}/blob/{hosted.BRANCH}"
        "/notebooks/03_attention.ipynb"
    )
    # the URL is configured once: no other source file, workflow or setting spells it out
    sources = [*ROOT.glob("coursekit/**/*.py"), *ROOT.glob(".github/workflows/*.yml")]
    sources += [ROOT / "pyproject.toml", ROOT / "environment.yml"]
    spelled = [
        str(p.relative_to(ROOT))
        for p in sources
        if owner_name in p.read_text(encoding="utf-8") and p.name != "hosted.py"
    ]
    assert spelled == [], f"the repository URL is written out in {spelled}; use coursekit.hosted"


def test_readme_course_map_links_every_notebook_to_colab() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert hosted.readme_with_colab_links(readme) == readme, (
        "the README's Colab links are out of date: run `coursekit hosted`"
    )
    linked = re.findall(r"\]\(notebooks/(\d\d_[^)]+\.ipynb)\)", readme)
    colab = re.findall(r"\]\((https://colab\.research\.google\.com/[^)]+)\)", readme)
    assert linked and colab == [hosted.colab_url(name) for name in linked]
    assert all((ROOT / "notebooks" / name).is_file() for name in linked)


def test_readme_quick_start_is_install_open_test() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    steps = re.findall(r"#\s*\d\.\s*(\w+)", quick)
    assert steps == ["install", "open", "test"], quick


# --------------------------------------------------------------------------------------------
# the site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The site, built once with the documented command ``coursekit site --out DIR``."""
    out = tmp_path_factory.mktemp("site")
    printed = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main(["site", "--out", str(out)])
    seconds = time.monotonic() - start
    assert code == 0, printed.getvalue()[-3000:]
    html = out / "_build" / "html"
    files = [p for p in html.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = {"seconds": round(seconds, 1), "bytes": size, "files": len(files)}
    (ARTIFACTS / "build.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"site built in {seconds:.1f} s: {size / 2**20:.1f} MiB in {len(files)} files")
    return {"html": html, "log": printed.getvalue(), **report}


class _Page(HTMLParser):
    """The tags of one HTML page: ids, links, and the resources it loads."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.resources: list[str] = []
        self.classes: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        if tag in ("script", "img", "iframe") and values.get("src"):
            self.resources.append(values["src"])
        if tag == "link" and values.get("href") and "stylesheet" in values.get("rel", ""):
            self.resources.append(values["href"])
        self.classes.append((tag, values))


def _pages(html: Path) -> list[Path]:
    """The site's pages (not the theme's templates under _static/)."""
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.relative_to(html).parts)


@functools.cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _local_target(page: Path, href: str) -> tuple[Path, str] | None:
    """The file and fragment a relative link of ``page`` points at (None: not a local link)."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
        return None
    target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def _broken_links(html: Path, page: Path, hrefs: list[str]) -> list[str]:
    broken = []
    for href in hrefs:
        found = _local_target(page, href)
        if found is None:
            continue
        target, fragment = found
        if not target.is_relative_to(html) or not target.is_file():
            broken.append(f"{href} (no file)")
        elif fragment and target.suffix == ".html" and fragment not in _parse(target).ids:
            broken.append(f"{href} (no anchor {fragment!r})")
    return broken


def test_the_link_checker_finds_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.html").write_text('<h1 id="x">B</h1>', encoding="utf-8")
    page = tmp_path / "a.html"
    page.write_text("<p>A</p>", encoding="utf-8")
    hrefs = ["docs/b.html#x", "docs/b.html#y", "c.html", "https://example.org/", "#", "../up.html"]
    assert _broken_links(tmp_path, page, hrefs) == [
        "docs/b.html#y (no anchor 'y')",
        "c.html (no file)",
        "../up.html (no file)",
    ]


@pytest.mark.slow
def test_site_builds_every_page_without_warnings(site: dict) -> None:
    html = site["html"]
    assert "WARNING" not in site["log"], site["log"][-3000:]
    for path in NOTEBOOKS:
        assert (html / "notebooks" / f"{path.stem}.html").is_file(), path.name
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert (html / "docs" / f"{doc.stem}.html").is_file(), doc.name
    assert site["seconds"] < 180, f"the site took {site['seconds']} s to build"


@pytest.mark.slow
def test_every_internal_link_and_anchor_of_the_site_resolves(site: dict) -> None:
    html = site["html"]
    broken = {}
    for page in _pages(html):
        parsed = _parse(page)
        bad = _broken_links(html, page, parsed.links + parsed.resources)
        if bad:
            broken[str(page.relative_to(html))] = bad
    assert not broken, f"broken internal links: {json.dumps(broken, indent=1)[:3000]}"


@pytest.mark.slow
def test_site_pages_load_nothing_from_other_hosts(site: dict) -> None:
    html = site["html"]
    for page in _pages(html):
        remote = [r for r in _parse(page).resources if urlsplit(r).netloc or r.startswith("//")]
        assert not remote, f"{page.relative_to(html)} loads {remote} from another host"
    index = (html / "index.html").read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in index


@pytest.mark.slow
def test_notebook_pages_show_stored_outputs_collapsed_solutions_and_colab_links(
    site: dict,
) -> None:
    html = site["html"]
    index = _parse(html / "index.html")
    for path in NOTEBOOKS:
        page_file = html / "notebooks" / f"{path.stem}.html"
        text = page_file.read_text(encoding="utf-8")
        page = _parse(page_file)
        colab = [
            v["href"] for tag, v in page.classes if tag == "a" and COLAB_CLASS in v.get("class", "")
        ]
        assert colab == [hosted.colab_url(path.name)], f"{path.name}: Colab link {colab}"
        assert f"notebooks/{path.stem}.html" in index.links, f"home page lacks {path.name}"
        assert "Set-up for hosted services" not in text, f"{path.name}: the set-up cell is shown"
        assert "application/vnd.jupyter.widget" not in text, f"{path.name}: widget markup"
        nb = nbformat.read(path, as_version=4)
        solutions = sum(c.cell_type == "code" and SOLUTION in c.source for c in nb.cells)
        collapsed = sum(
            1
            for tag, v in page.classes
            if tag == "div" and "tag_hide-input" in v.get("class", "").split()
        )
        assert collapsed == solutions, f"{path.name}: {collapsed} of {solutions} collapsed"
        assert text.count("Show the solution") == solutions
        if solutions:
            assert "### BEGIN SOLUTION" in text  # present, in the collapsed block
    chapter = (html / "notebooks" / f"{CHAPTER}.html").read_text(encoding="utf-8")
    assert "(interactive widget: open in JupyterLab)" not in chapter  # the figure fallback shows
    assert "100%|██████████|" in chapter  # a progress bar's final state, from the stored state
    assert chapter.count('class="math notranslate nohighlight"') > 10


# --------------------------------------------------------------------------------------------
# the site in a browser


def _pages_module():
    name = "coursekit_browser_pages"
    if name not in sys.modules:
        path = Path(__file__).parent / "browser" / "pages.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def server(site: dict) -> Iterator[str]:
    """A loopback HTTP server for the built site; its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site["html"]))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}: run `.ci/install-browser.sh` "
            "(apt-get install chromium) to enable the browser test."
        )
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=_pages_module().CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize(
    "page_path, min_maths",
    [("index.html", 0), (f"notebooks/{CHAPTER}.html", 10), ("docs/troubleshooting.html", 0)],
)
def test_site_page_in_chromium(site: dict, server: str, chromium, page_path: str, min_maths: int):
    html = site["html"]
    context = chromium.new_context(viewport={"width": 1300, "height": 900})
    tab = context.new_page()
    requests: list[str] = []
    failed: list[str] = []
    tab.on("request", lambda r: requests.append(r.url))
    tab.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    tab.on(
        "response", lambda r: failed.append(f"{r.url} ({r.status})") if r.status >= 400 else None
    )
    try:
        tab.goto(server + page_path, wait_until="load", timeout=60_000)
        maths = tab.locator(".math").count()
        assert maths >= min_maths, f"{page_path}: {maths} formulas"
        if maths:
            tab.wait_for_function(
                "n => document.querySelectorAll('mjx-container').length >= n", arg=maths
            )
            assert tab.locator("mjx-merror").count() == 0, f"{page_path}: MathJax errors"
            rendered = tab.evaluate(
                "() => [...document.querySelectorAll('.math')].every(e =>"
                " e.querySelector('mjx-container') || e.matches('mjx-container'))"
            )
            assert rendered, f"{page_path}: a formula was left as TeX source"
        images = tab.evaluate(
            "() => Promise.all([...document.images].map(i => i.decode().then("
            " () => [i.getAttribute('src'), i.naturalWidth], () => [i.getAttribute('src'), 0])))"
        )
        broken = [src for src, width in images if width == 0]
        assert not broken, f"{page_path}: images that did not load: {broken}"
        if page_path.startswith("notebooks/"):
            assert len(images) >= 3, f"{page_path}: only {len(images)} figures"
            solution = tab.locator(".tag_hide-input").first
            assert solution.locator("details").first.get_attribute("open") is None
            assert not solution.locator(".cell_input pre").first.is_visible(), "solution shown"
            assert tab.locator(f"a.{COLAB_CLASS}").first.is_visible()
        hrefs = tab.evaluate(
            "() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))"
        )
        page_file = html / page_path
        assert not _broken_links(html, page_file, hrefs), _broken_links(html, page_file, hrefs)
        tab.wait_for_load_state("networkidle")
        outside = [u for u in requests if not u.startswith(server) and not u.startswith("data:")]
        assert not outside, f"{page_path}: requests to other hosts: {outside}"
        failed = [f for f in failed if "favicon.ico" not in f]
        assert not failed, f"{page_path}: failed requests: {failed}"
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            tab.screenshot(path=str(ARTIFACTS / f"{page_path.replace('/', '_')}.png"))
        context.close()

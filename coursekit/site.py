"""The course website: a static site of the committed, executed notebooks (``coursekit site``).

The site is a Jupyter Book (version 1, Sphinx with MyST-NB) built from **copies** of the
notebooks and of ``docs/*.md`` in a build folder; nothing in the repository is modified and no
notebook is executed (``execute_notebooks: off``): the pages show the stored outputs. In the copies

* the hosted set-up cell (:mod:`coursekit.hosted`) is removed, and an "Open in Colab" link to the
  notebook is placed under its title;
* a cell with an exercise solution (``### BEGIN SOLUTION``) shows its code collapsed;
* an interactive explorer or quiz shows its static fallback (the figure or text stored beside the
  widget), and a progress bar the final state stored in the notebook, since a static page has no
  kernel;
* links to files of the repository that are not pages of the site point at the repository.

The home page is the README's introduction and course map. Maths is typeset by MathJax 3, served
from the site itself (a copy from the ``sphinx-mathjax-offline`` package), so the site works
without a CDN. Widgets' JavaScript is not loaded.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat

from coursekit.hosted import (
    BRANCH,
    COLAB_TEXT,
    REPOSITORY_URL,
    blob_url,
    colab_url,
    is_hosted_cell,
)

#: Where ``coursekit site`` writes, relative to the repository (``build/`` is git-ignored).
DEFAULT_OUT = Path("build") / "site"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
SOLUTION = "### BEGIN SOLUTION"
#: The class of the "Open in Colab" link on each notebook page.
COLAB_CLASS = "coursekit-colab"
#: The MathJax files the site serves (the rest of the package's copy is not needed for TeX input
#: and HTML output; the speech-rule engine is only loaded on request from the MathJax menu).
MATHJAX_FILES = (
    "tex-chtml.js",
    "input/tex/extensions",
    "output/chtml/fonts/woff-v2",
    "ui",
    "a11y",
)
#: Where the MathJax copy sits in the book's source; not ``_static``, whose every .js file
#: Jupyter Book would load on every page.
ASSETS = "_assets"


class SiteError(RuntimeError):
    """The site cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class BuiltSite:
    """A finished build: the HTML folder, its pages (source paths), timing and warnings."""

    html: Path
    pages: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# links


_HEADING = re.compile(r"^#{1,2}\s", re.M)
_LINK = re.compile(r"(?P<open>!?\[[^\]]*\]\()(?P<target>[^)\s]+)(?P<close>(?:\s+\"[^\"]*\")?\))")


def rewrite_links(markdown: str, page: PurePosixPath, site_pages: set[str]) -> str:
    """``markdown`` of the repository file ``page`` with relative links fixed for the site.

    A link to a page of the site (its repository path is in ``site_pages``; ``README.md`` is the
    home page ``index.md``) stays relative; a link to any other file of the repository points at
    the repository; web links, anchors and mail links are left alone.
    """

    def fix(match: re.Match[str]) -> str:
        target = match.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith(("#", "/")):
            return match.group(0)
        path, _, fragment = target.partition("#")
        resolved = _normalise(page.parent / path)
        if resolved is None:
            return match.group(0)
        if resolved == "README.md":
            resolved = "index.md"
        if resolved in site_pages or resolved == "index.md":
            new = _relative(resolved, _site_name(page))
        else:
            new = blob_url(resolved)
        return (
            f"{match.group('open')}{new}{'#' + fragment if fragment else ''}{match.group('close')}"
        )

    return _LINK.sub(fix, markdown)


def _normalise(path: PurePosixPath) -> str | None:
    """``a/../b`` -> ``b``; None for a path that leaves the repository."""
    parts: list[str] = []
    for part in path.parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _site_name(page: PurePosixPath) -> str:
    return "index.md" if str(page) == "README.md" else str(page)


def _relative(target: str, page: str) -> str:
    return os.path.relpath(target, start=os.path.dirname(page) or ".").replace(os.sep, "/")


# --------------------------------------------------------------------------------------------
# notebooks


def _widget_state(nb: nbformat.NotebookNode) -> dict[str, Any]:
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return state if isinstance(state, dict) else {}


def _progress_text(model_id: str, state: dict[str, Any]) -> str | None:
    """The final text of a tqdm progress bar widget from the stored widget state, or None."""
    box = state.get(model_id, {})
    if box.get("model_name") != "HBoxModel":
        return None
    children = [
        state.get(str(child).removeprefix("IPY_MODEL_"), {})
        for child in box.get("state", {}).get("children", [])
    ]
    names = [child.get("model_name") for child in children]
    if names != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (child.get("state", {}) for child in children)
    total = float(bar.get("max") or 0)
    filled = round(10 * float(bar.get("value") or 0) / total) if total > 0 else 0
    text = f"{left.get('value', '')}|{'█' * filled}{' ' * (10 - filled)}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def _static_outputs(cell: nbformat.NotebookNode, state: dict[str, Any]) -> None:
    """Replace each widget output of ``cell`` by its static fallback (in place)."""
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        view = data.pop(WIDGET_VIEW, None)
        if view is None:
            continue
        progress = _progress_text(str(view.get("model_id", "")), state)
        if progress is not None and "image/png" not in data:
            data["text/plain"] = progress


def _add_tag(cell: nbformat.NotebookNode, tag: str) -> None:
    tags = list(cell.metadata.get("tags", []))
    if tag not in tags:
        cell.metadata["tags"] = [*tags, tag]


def colab_paragraph(name: str) -> str:
    """The line under each notebook page's title: the Colab link and the repository's copy."""
    link = f'<a class="{COLAB_CLASS}" href="{colab_url(name)}">{COLAB_TEXT}</a>'
    return (
        f"{link} (a hosted GPU; the notebook's first cell installs the course package there) · "
        f"[the notebook in the repository]({blob_url(f'notebooks/{name}')})"
    )


def _with_line_after_title(markdown: str, line: str) -> str:
    """``markdown`` with a paragraph ``line`` right after its first heading."""
    match = _HEADING.search(markdown)
    if match is None:
        return f"{line}\n\n{markdown}"
    end = markdown.find("\n", match.start())
    end = len(markdown) if end < 0 else end
    return f"{markdown[:end]}\n\n{line}\n{markdown[end:]}"


def site_notebook(
    nb: nbformat.NotebookNode, name: str, site_pages: set[str] | None = None
) -> nbformat.NotebookNode:
    """The site's copy of notebook ``name`` (see the module docstring); ``nb`` is not changed."""
    page = copy.deepcopy(nb)
    state = _widget_state(page)
    page.metadata.pop("widgets", None)
    for cell in page.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(
                cell.source, PurePosixPath("notebooks") / name, site_pages or set()
            )
            continue
        if cell.cell_type != "code":
            continue
        if is_hosted_cell(cell):
            _add_tag(cell, "remove-cell")
        elif SOLUTION in cell.source:
            _add_tag(cell, "hide-input")
            cell.metadata["mystnb"] = {
                "code_prompt_show": "Show the solution",
                "code_prompt_hide": "Hide the solution",
            }
        _static_outputs(cell, state)
    title = next(
        (c for c in page.cells if c.cell_type == "markdown" and _HEADING.search(c.source)), None
    )
    if title is None:
        page.cells.insert(0, nbformat.v4.new_markdown_cell(colab_paragraph(name)))
    else:
        title.source = _with_line_after_title(title.source, colab_paragraph(name))
    return page


# --------------------------------------------------------------------------------------------
# the book's source


def course_notebooks(root: Path) -> list[Path]:
    """The course's notebooks in course order (``notebooks/NN_name.ipynb``)."""
    return sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb") if p.is_file())


def doc_pages(root: Path) -> list[Path]:
    """The guides in ``docs/``."""
    return sorted(p for p in (root / "docs").glob("*.md") if p.is_file())


def _section(readme: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", readme, re.M | re.S)
    return match.group(1).strip() if match else ""


def index_markdown(readme: str, site_pages: set[str]) -> str:
    """The home page: the README's title and introduction, then its course map."""
    title, _, rest = readme.partition("\n")
    intro = rest.split("\n## ", 1)[0].strip()
    course = _section(readme, "The course")
    if not course:
        raise SiteError("README.md has no section '## The course' (the course map).")
    repository = REPOSITORY_URL
    text = (
        f"{title}\n\n{intro}\n\n"
        "To run the notebooks on your own machine, follow the README's "
        f"[quick start]({repository}#quick-start): install, open, test. To run one in your "
        "browser on a hosted GPU, use its *Open in Colab* link. The pages below show each "
        "notebook as it was last executed, with its outputs.\n\n"
        f"## The course\n\n{course}\n"
    )
    return rewrite_links(text, PurePosixPath("README.md"), site_pages)


def _book_config(title: str) -> dict[str, Any]:
    return {
        "title": title,
        "author": "The course authors",
        "copyright": "the course authors; code MIT",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", ASSETS, "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},
        "parse": {
            "myst_enable_extensions": ["amsmath", "colon_fence", "dollarmath", "linkify"],
        },
        "html": {
            "use_repository_button": True,
            "home_page_in_navbar": True,
            "use_multitoc_numbering": False,
        },
        "launch_buttons": {"colab_url": "https://colab.research.google.com", "thebe": False},
        "repository": {"url": REPOSITORY_URL, "path_to_book": "", "branch": BRANCH},
        "sphinx": {
            "recursive_update": True,
            "config": {
                "html_theme_options": {"use_download_button": False},
                "html_copy_source": False,
                "html_static_path": [ASSETS],
                "mathjax_path": "mathjax/tex-chtml.js",
                "myst_heading_anchors": 4,
                "nb_ipywidgets_js": {},
                "html_show_sourcelink": False,
                "suppress_warnings": ["mystnb.unknown_mime_type"],
            },
        },
    }


def mathjax_source() -> Path:
    """MathJax 3 as shipped by the ``sphinx-mathjax-offline`` package (a ``dev`` dependency)."""
    try:
        dist = metadata.distribution("sphinx-mathjax-offline")
    except metadata.PackageNotFoundError as exc:
        raise SiteError(
            "the package sphinx-mathjax-offline (MathJax for the site, without a CDN) is not "
            'installed: run `python -m pip install -e ".[lab,dev]"`.'
        ) from exc
    folder = Path(str(dist.locate_file("sphinx-mathjax-offline/static/mathjax")))
    if not (folder / "tex-chtml.js").is_file():
        raise SiteError(f"MathJax is missing from {folder}: reinstall sphinx-mathjax-offline.")
    return folder


def _copy_mathjax(dest: Path) -> None:
    source = mathjax_source()
    for item in MATHJAX_FILES:
        src, target = source / item, dest / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target)
        else:
            shutil.copy2(src, target)


def prepare_source(root: Path, src: Path) -> list[str]:
    """Write the book's source into ``src`` (emptied first); return its pages in order."""
    readme = root / "README.md"
    notebooks = course_notebooks(root)
    if not readme.is_file() or not notebooks:
        raise SiteError(f"{root} is not the course repository (README.md, notebooks/NN_*.ipynb).")
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    (src / "docs").mkdir()
    docs = doc_pages(root)
    site_pages = {f"notebooks/{p.name}" for p in notebooks} | {f"docs/{p.name}" for p in docs}
    pages = ["index.md"]
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        page = site_notebook(nb, path.name, site_pages)
        nbformat.write(page, src / "notebooks" / path.name)
        pages.append(f"notebooks/{path.name}")
    for path in docs:
        text = rewrite_links(
            path.read_text(encoding="utf-8"), PurePosixPath("docs") / path.name, site_pages
        )
        (src / "docs" / path.name).write_text(text, encoding="utf-8")
        pages.append(f"docs/{path.name}")
    readme_text = readme.read_text(encoding="utf-8")
    (src / "index.md").write_text(index_markdown(readme_text, site_pages), encoding="utf-8")
    title = readme_text.partition("\n")[0].lstrip("# ").strip()
    toc = {
        "format": "jb-book",
        "root": "index",
        "parts": [
            {
                "caption": "The course",
                "chapters": [{"file": p.removesuffix(".ipynb")} for p in pages if ".ipynb" in p],
            },
            {
                "caption": "Guides",
                "chapters": [
                    {"file": p.removesuffix(".md")} for p in pages if p.startswith("docs/")
                ],
            },
        ],
    }
    # JSON is YAML: written without a YAML library
    (src / "_toc.yml").write_text(json.dumps(toc, indent=1) + "\n", encoding="utf-8")
    (src / "_config.yml").write_text(
        json.dumps(_book_config(title), indent=1) + "\n", encoding="utf-8"
    )
    _copy_mathjax(src / ASSETS / "mathjax")
    return pages


def build_site(root: Path, out: Path, *, verbose: bool = False) -> BuiltSite:
    """Build the site of the course at ``root`` into ``out`` (``out/_build/html``).

    Raises :class:`SiteError` when Jupyter Book is missing or the build fails (with the end of
    its log).
    """
    try:
        metadata.version("jupyter-book")
    except metadata.PackageNotFoundError as exc:
        raise SiteError(
            'Jupyter Book is not installed: run `python -m pip install -e ".[lab,dev]"`.'
        ) from exc
    start = time.monotonic()
    out = out.resolve()
    src = out / "src"
    pages = prepare_source(root.resolve(), src)
    html_dir = out / "_build" / "html"
    if html_dir.exists():
        shutil.rmtree(html_dir)
    command = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(src),
        "--path-output",
        str(out),
        "--builder",
        "html",
        "--keep-going",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    done = subprocess.run(command, capture_output=not verbose, text=True, env=env, check=False)
    log = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0 or not (html_dir / "index.html").is_file():
        tail = "\n".join(log.strip().splitlines()[-30:])
        raise SiteError(f"jupyter-book build failed (exit {done.returncode}):\n{tail}")
    (html_dir / ".nojekyll").write_text("", encoding="utf-8")  # served as it is on GitHub Pages
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    return BuiltSite(html_dir, pages, time.monotonic() - start, warnings)

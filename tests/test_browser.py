"""The course in a real browser: JupyterLab + headless Chromium driven by Playwright.

One JupyterLab server (loopback port, temporary token, temporary Jupyter folders and
``COURSEKIT_HOME``, ``COURSEKIT_PROFILE=smoke``) serves copies of notebook 00 and of notebook 03.
For each, the test clears the outputs, runs every cell from the Run menu and asserts that

* every code cell ran and none left an error output (checked in the DOM and in the saved file);
* a matplotlib figure is shown as an image in a cell output;
* the ``coursekit-explorer`` widget is rendered as a live widget (not its text or PNG fallback),
  and moving its slider with the keyboard changes what it shows (a kernel round trip);
* (notebook 00) a quiz answered by clicking records the answer, and every check cell recorded
  its exercise as passed in the progress file.

A first, short test runs a deliberately broken notebook to prove that the harness does see an
error. Screenshots go to ``test-artifacts/browser/``, with the server log and the timings. The
server is shut down in a ``finally`` block, and any kernel it left behind is ended by its id.

Needs Debian's ``chromium`` at /usr/bin/chromium (``.ci/install-browser.sh`` installs it) and the
``playwright`` Python package; Playwright's own browser download is not used.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("COURSEKIT_CHROMIUM", "/usr/bin/chromium"))
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
WELCOME = "00_welcome.ipynb"
CHAPTER_PATTERN = "03_*.ipynb"  # the attention explorer
RUN_TIMEOUT_S = float(os.environ.get("COURSEKIT_BROWSER_RUN_TIMEOUT", "420"))
EXPLORER = ".coursekit-explorer"
FALLBACK_TEXT = "(interactive widget: open in JupyterLab)"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"Chromium is not installed at {CHROMIUM}: run `.ci/install-browser.sh` "
        "(apt-get install chromium) to enable the browser test.",
    ),
]


def _load(name: str):
    """Import a helper module from tests/browser/ (works with or without tests/__init__.py)."""
    path = Path(__file__).parent / "browser" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"coursekit_browser_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


harness = _load("harness")
pages = _load("pages")

TIMINGS: dict[str, float] = {}


def _chapter_notebook() -> Path:
    found = sorted(NOTEBOOKS.glob(CHAPTER_PATTERN))
    if not found:
        pytest.fail(
            f"No chapter notebook matching notebooks/{CHAPTER_PATTERN}: the browser test opens "
            "notebook 03's attention explorer. Add the notebook (or change CHAPTER_PATTERN)."
        )
    return found[0]


def _broken_notebook(folder: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import os\n"
            "os.environ['COURSEKIT_NO_WIDGETS'] = '1'  # the explorer shows only its fallback\n"
            "import torch\n"
            "from coursekit.viz import softmax_temperature_explorer\n"
            "softmax_temperature_explorer(torch.tensor([2.0, 1.0, 0.0]))"
        ),
        nbformat.v4.new_code_cell("1 / 0"),
        nbformat.v4.new_code_cell("print('never reached')"),
    ]
    path = folder / "zz_harness_selfcheck.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def lab():
    """A JupyterLab server serving copies of the notebooks; always shut down."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="coursekit-browser-"))
    welcome = NOTEBOOKS / WELCOME
    if not welcome.is_file():
        pytest.fail(f"notebooks/{WELCOME} is missing: the browser test opens it first.")
    sources = [welcome, _broken_notebook(workdir)]
    chapter = sorted(NOTEBOOKS.glob(CHAPTER_PATTERN))
    sources += chapter[:1]
    server = harness.LabServer(workdir, sources)
    try:
        server.start()
        TIMINGS["server start"] = time.monotonic() - started
        yield server
    finally:
        killed = server.stop()
        leftover = server.running_pids()
        (ARTIFACTS / "jupyterlab.log").write_text(server.log_tail(200_000), encoding="utf-8")
        TIMINGS["total (server up to shut down)"] = time.monotonic() - started
        (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, indent=1), encoding="utf-8")
        assert not leftover, f"processes of the test server still running: {leftover}"
        if killed:
            print(f"ended by id after shutdown: {killed}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=pages.CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    tab.console_errors = errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        name = request.node.name.replace("/", "_")
        try:
            tab.screenshot(path=str(ARTIFACTS / f"{name}-final.png"))
        except Exception:  # noqa: BLE001 - a screenshot must never hide the real failure
            pass
        (ARTIFACTS / f"{name}-console-errors.txt").write_text("\n".join(errors), encoding="utf-8")
        context.close()


def _run_notebook(lab, page, name: str) -> pages.RunResult:
    start = time.monotonic()
    pages.open_notebook(page, lab.lab_url(name))
    TIMINGS[f"{name}: open (page load, kernel start)"] = time.monotonic() - start
    result = pages.run_all_cells(page, RUN_TIMEOUT_S)
    TIMINGS[f"{name}: run all cells"] = result.seconds
    page.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-after-run.png"))
    start = time.monotonic()
    pages.save_notebook(page)
    TIMINGS[f"{name}: save"] = time.monotonic() - start
    return result


def _assert_clean_run(lab, page, name: str, result) -> None:
    errors = pages.error_outputs(lab.notebook_copy(name))
    assert not errors, f"{name}: error outputs after Run All:\n" + "\n".join(errors)
    assert not result.unexecuted, (
        f"{name}: code cells {result.unexecuted} did not run (prompts {result.prompts})"
    )
    broken = page.locator("text=Error displaying widget").count()
    assert broken == 0, f"{name}: {broken} widget(s) show 'Error displaying widget'"


def _assert_figure(page, name: str) -> None:
    figures = page.locator(".jp-Cell .jp-RenderedImage img[src^='data:image/png']")
    assert figures.count() >= 1, f"{name}: no matplotlib figure (PNG image output) appeared"
    box = figures.first.bounding_box() or {"width": 0, "height": 0}
    assert box["width"] > 50 and box["height"] > 50, f"{name}: the figure is not visible: {box}"


def _exercise_explorer(page, name: str) -> dict[str, object]:
    """The explorer renders as a widget and reacts to a slider change; returns what was seen."""
    explorers = page.locator(EXPLORER)
    assert explorers.count() >= 1, (
        f"{name}: no element with class {EXPLORER!r}: the explorer did not render as a widget "
        "(is jupyterlab_widgets installed in the server's environment?)"
    )
    explorer = explorers.first
    explorer.scroll_into_view_if_needed()
    assert explorer.is_visible()
    cell_output = explorer.locator("xpath=ancestor::*[contains(@class,'jp-OutputArea')][last()]")
    assert FALLBACK_TEXT not in cell_output.inner_text(), f"{name}: the text fallback is shown"
    sliders = explorer.locator(".widget-slider")
    assert sliders.count() >= 1, f"{name}: the explorer has no slider"
    explorer.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-explorer-before.png"))
    before_state = pages.explorer_state(explorer)
    assert before_state["images"] or before_state["text"].strip(), f"{name}: explorer shows nothing"
    start = time.monotonic()
    label, before, after = pages.nudge_slider(explorer, presses=2)
    assert before != after, f"{name}: the slider did not move ({before} -> {after})"
    page.wait_for_function(
        "([root, old]) => { const imgs = [...root.querySelectorAll('img')].map(i => i.src);"
        " const text = [...root.querySelectorAll('.widget-output, .widget-html-content, pre')]"
        "   .filter(e => !e.closest('.widget-slider')).map(e => e.textContent).join('\\n');"
        " return JSON.stringify(imgs) !== JSON.stringify(old.images) || text !== old.text; }",
        arg=[explorer.element_handle(), before_state],
        timeout=30_000,
    )
    reaction = time.monotonic() - start
    pages.wait_kernel_idle(page, 60)  # let later redraws (one per key press) finish
    page.wait_for_timeout(500)
    explorer.screenshot(path=str(ARTIFACTS / f"{Path(name).stem}-explorer-after.png"))
    widgets = explorer.evaluate(
        "root => [...new Set([...root.querySelectorAll('.jupyter-widgets')]"
        ".flatMap(e => [...e.classList].filter(c => c.startsWith('widget-'))))]"
    )
    seen = {
        "notebook": name,
        "slider": label,
        "value": f"{before} -> {after}",
        "reaction_s": round(reaction, 2),
        "widget_classes": sorted(widgets),
        "images": len(before_state["images"]),
    }
    (ARTIFACTS / f"{Path(name).stem}-explorer.json").write_text(json.dumps(seen, indent=1))
    print(f"explorer exercised: {seen}")
    return seen


def test_server_is_loopback_only_and_needs_the_token(lab):
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(lab.api_url("/api/status"), timeout=10) as reply:
        assert reply.status == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{lab.base_url}/api/contents", timeout=10)
    assert refused.value.code == 403
    log = lab.log_tail(200_000)
    assert f"http://127.0.0.1:{lab.port}/" in log and "0.0.0.0" not in log
    assert lab.running_pids(), "the server should be running while the tests use it"


def test_harness_sees_errors_and_fallbacks(lab, page):
    """Self-check: the same helpers fail on a cell error and on an explorer shown as fallback."""
    name = "zz_harness_selfcheck.ipynb"
    result = _run_notebook(lab, page, name)
    errors = pages.error_outputs(lab.notebook_copy(name))
    assert len(errors) == 1 and "ZeroDivisionError" in errors[0], errors
    assert result.unexecuted == [2], result.prompts  # the queue stops at the error
    with pytest.raises(AssertionError, match="error outputs"):
        _assert_clean_run(lab, page, name, result)
    _assert_figure(page, name)  # the static fallback is a figure...
    with pytest.raises(AssertionError, match="did not render as a widget"):
        _exercise_explorer(page, name)  # ...which must not pass for a live explorer


def test_welcome_notebook_in_jupyterlab(lab, page):
    from coursekit.exercises.registry import all_exercises, all_quiz_questions

    result = _run_notebook(lab, page, WELCOME)
    _assert_clean_run(lab, page, WELCOME, result)
    _assert_figure(page, WELCOME)
    _exercise_explorer(page, WELCOME)

    # quiz: pick the right option of the first question by clicking, then "Check answer"
    question = [q for q in all_quiz_questions() if q.notebook == "00"][0]
    quiz = page.locator(".coursekit-quiz").first
    quiz.scroll_into_view_if_needed()
    quiz.locator("input[type=radio]").nth(question.answer).check()
    quiz.locator("button", has_text="Check answer").click()
    feedback = quiz.locator(".widget-html-content").last
    feedback.filter(has_text="Correct").wait_for(timeout=30_000)
    quiz.screenshot(path=str(ARTIFACTS / "00_welcome-quiz.png"))

    # progress: every check cell recorded its exercise; the click recorded the quiz answer
    record = json.loads((lab.home / "progress.json").read_text(encoding="utf-8"))
    expected = {e.id for e in all_exercises() if e.notebook == "00"}
    passed = {k for k, v in record["exercises"].get("00", {}).items() if v["passed"]}
    assert expected and expected <= passed, f"exercises not recorded as passed: {expected - passed}"
    assert record["quiz"]["00"][question.id]["correct"] is True
    last_output = page.locator(".jp-CodeCell").last.locator(".jp-OutputArea-output").inner_text()
    assert f"{len(expected)} / {len(expected)}" in last_output, last_output


def test_chapter_notebook_explorer_in_jupyterlab(lab, page):
    name = _chapter_notebook().name
    result = _run_notebook(lab, page, name)
    _assert_clean_run(lab, page, name, result)
    _assert_figure(page, name)
    _exercise_explorer(page, name)

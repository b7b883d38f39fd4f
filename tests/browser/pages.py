"""Drive a notebook in JupyterLab through its user interface with Playwright (sync API).

Everything here goes through what a learner would use: the menu bar (Edit > Clear Outputs of
All Cells, Run > Run All Cells), the keyboard (Ctrl+S, arrow keys on a slider) and mouse clicks
(quiz options and buttons). The DOM classes used are JupyterLab 4 / ipywidgets 8 ones.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Flags that work for Debian's Chromium in a container without a display or GPU.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_PROMPTS_JS = "els => els.map(e => e.textContent.trim())"


@dataclass
class RunResult:
    """What running all cells of a notebook through the UI produced."""

    prompts: list[str]
    seconds: float
    console_errors: list[str] = field(default_factory=list)

    @property
    def unexecuted(self) -> list[int]:
        """Indices (among code cells) whose prompt has no execution count."""
        return [i for i, p in enumerate(self.prompts) if not p.strip("[]: ").isdigit()]


def menu(page, top: str, item: str) -> None:
    """Click ``top`` in JupyterLab's menu bar, then the menu entry labelled exactly ``item``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    label = re.compile(rf"^\s*{re.escape(item)}\s*$")
    entry = page.locator(".lm-Menu-item").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=label)
    )
    entry.first.click()


def open_notebook(page, url: str, timeout_s: float = 90) -> None:
    """Open a notebook URL and wait until its cells are shown and its kernel is idle."""
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_s * 1000)
    wait_kernel_idle(page, timeout_s)


def wait_kernel_idle(page, timeout_s: float) -> None:
    """Wait until the status bar says the kernel is Idle."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-StatusBar-TextItem, .jp-StatusBar-Item')]
                 .some(e => /\\|\\s*Idle/.test(e.textContent))""",
        timeout=timeout_s * 1000,
    )


def code_prompts(page) -> list[str]:
    return page.eval_on_selector_all(".jp-CodeCell .jp-InputArea-prompt", _PROMPTS_JS)


def run_all_cells(page, timeout_s: float) -> RunResult:
    """Clear every output, run all cells from the Run menu, wait until the queue is done.

    Returns the code cells' prompts: ``[n]:`` for a cell that ran, ``[ ]:`` for one that did
    not (JupyterLab stops the queue at the first error).
    """
    start = time.monotonic()
    menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
        ".every(e => !/\\d/.test(e.textContent))",
        timeout=30_000,
    )
    menu(page, "Run", "Run All Cells")
    # the first cell is queued or done once the click landed
    page.wait_for_function(
        "() => { const p = document.querySelector('.jp-CodeCell .jp-InputArea-prompt');"
        " return p && /[*\\d]/.test(p.textContent); }",
        timeout=60_000,
    )
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]"
        ".some(e => e.textContent.includes('*'))",
        timeout=timeout_s * 1000,
        polling=500,
    )
    wait_kernel_idle(page, 60)
    return RunResult(prompts=code_prompts(page), seconds=time.monotonic() - start)


def save_notebook(page, timeout_s: float = 30) -> None:
    """Save with Ctrl+S (autosave is off) and wait until the tab is no longer marked dirty."""
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=timeout_s * 1000,
    )


def error_outputs(path: Path) -> list[str]:
    """``ename: evalue`` (with the cell's first line) of every error output saved in ``path``."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                first = cell.source.splitlines()[0] if cell.source else ""
                found.append(f"cell {index} ({first!r}): {out.get('ename')}: {out.get('evalue')}")
    return found


def explorer_state(explorer) -> dict[str, object]:
    """What an explorer shows besides its slider: image sources and output/HTML text."""
    return explorer.evaluate(
        """root => ({
            images: [...root.querySelectorAll('img')].map(i => i.src),
            text: [...root.querySelectorAll('.widget-output, .widget-html-content, pre')]
                  .filter(e => !e.closest('.widget-slider')).map(e => e.textContent).join('\\n'),
        })"""
    )


def nudge_slider(explorer, presses: int = 2) -> tuple[str, str, str]:
    """Move the explorer's first movable slider by keyboard steps; (label, value before, after).

    The handle is focused and moved with the arrow keys (right, or left when it sits at its
    maximum), as a keyboard user would; sliders whose minimum equals their maximum are skipped.
    """
    sliders = explorer.locator(".widget-slider")
    for index in range(sliders.count()):
        slider = sliders.nth(index)
        handle = slider.locator(".noUi-handle").first
        low = handle.get_attribute("aria-valuemin")
        high = handle.get_attribute("aria-valuemax")
        if low is not None and low == high:
            continue
        label = slider.locator(".widget-label").first.inner_text().strip()
        before = handle.get_attribute("aria-valuenow") or ""
        key = "ArrowLeft" if before and before == high else "ArrowRight"
        handle.focus()
        for _ in range(presses):
            handle.press(key)
        return label, before, handle.get_attribute("aria-valuenow") or ""
    raise AssertionError("the explorer has no slider that can move (all have min == max)")

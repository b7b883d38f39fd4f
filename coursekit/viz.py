"""Plots and ipywidgets explorers, each with a static fallback.

:func:`show_widget` displays a widget *and* stores a static fallback in the same output, so a
reader without a widget front end (a static HTML render, GitHub, a terminal) still sees something
meaningful, and a headless run records a picture instead of a blank widget.
"""

from __future__ import annotations

import base64
import io
import os
from typing import Any

NO_WIDGETS_ENV = "COURSEKIT_NO_WIDGETS"


def widgets_available() -> bool:
    """True inside an IPython kernel with ipywidgets importable and widgets not disabled."""
    if os.environ.get(NO_WIDGETS_ENV, "").strip() not in ("", "0"):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def figure_png(fig: Any, dpi: int = 80) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def show_widget(widget: Any, fallback: Any = None) -> None:
    """Display ``widget`` with a static ``fallback`` (str or matplotlib Figure) in one output.

    A widget front end (JupyterLab with ipywidgets) renders the live widget; any other front end
    shows the fallback. Outside a kernel, or with ``COURSEKIT_NO_WIDGETS=1``, only the fallback
    is shown (printed, or the figure displayed).
    """
    text = fallback if isinstance(fallback, str) else None
    png = None
    if fallback is not None and not isinstance(fallback, str):
        png = figure_png(fallback)
        import matplotlib.pyplot as plt

        plt.close(fallback)
    if not widgets_available():
        if text is not None:
            print(text)
        elif png is not None:
            _display_png(png)
        return
    from IPython.display import display

    bundle: dict[str, Any] = {
        "application/vnd.jupyter.widget-view+json": {
            "version_major": 2,
            "version_minor": 0,
            "model_id": widget.model_id,
        },
        "text/plain": text if text is not None else "(interactive widget: open in JupyterLab)",
    }
    if png is not None:
        bundle["image/png"] = base64.b64encode(png).decode("ascii")
    display(bundle, raw=True)


def softmax_bar_figure(logits: Any, temperature: float, labels: list[str] | None = None) -> Any:
    """Bar chart of softmax(logits / temperature) for a 1-D tensor or list of logits."""
    import matplotlib.pyplot as plt
    import torch

    values = torch.as_tensor(logits, dtype=torch.float32)
    probs = torch.softmax(values / temperature, dim=-1)
    names = labels or [str(i) for i in range(values.numel())]
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.bar(names, probs.numpy(), color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(f"softmax(logits / T), T = {temperature:.2f}")
    fig.tight_layout()
    return fig


def softmax_temperature_explorer(logits: Any, labels: list[str] | None = None) -> None:
    """A slider for the softmax temperature and the resulting distribution (static: T = 1)."""
    fallback = softmax_bar_figure(logits, 1.0, labels)
    if not widgets_available():
        show_widget(None, fallback=fallback)
        return
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    slider = w.FloatSlider(value=1.0, min=0.1, max=5.0, step=0.1, description="temperature")
    out = w.Output()

    def redraw(change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = softmax_bar_figure(logits, slider.value, labels)
            display(fig)
            plt.close(fig)

    slider.observe(redraw, names="value")
    redraw()
    box = w.VBox([slider, out])
    box.add_class("coursekit-explorer")
    show_widget(box, fallback=fallback)


def _display_png(png: bytes) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Image, display

        if get_ipython() is not None:
            display(Image(data=png))
            return
    except ImportError:
        pass
    print(f"(figure, {len(png):,} bytes of PNG: run in Jupyter to see it)")

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


# --------------------------------------------------------------------------------------------
# attention plots and explorer (notebook 03)
# --------------------------------------------------------------------------------------------
def attention_heatmap(
    weights: Any,
    x_labels: list[str] | None = None,
    y_labels: list[str] | None = None,
    *,
    ax: Any = None,
    title: str | None = None,
    cmap: str = "viridis",
) -> Any:
    """Heatmap of a ``(Tq, Tk)`` attention matrix: rows are queries, columns keys.

    Returns the matplotlib Figure (a new one unless ``ax`` is given).
    """
    import matplotlib.pyplot as plt
    import torch

    w = torch.as_tensor(weights).detach().float().cpu()
    if w.dim() != 2:
        raise ValueError(
            f"attention_heatmap expects a (Tq, Tk) matrix, got shape {tuple(w.shape)}."
        )
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.45 * w.shape[1] + 1.8, 0.4 * w.shape[0] + 1.2))
    else:
        fig = ax.figure
    im = ax.imshow(w.numpy(), cmap=cmap, vmin=0.0, vmax=max(float(w.max()), 1e-6), aspect="auto")
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), x_labels, rotation=60, ha="right", fontsize=8)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), y_labels, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def attention_explorer(
    weights: dict[str, Any],
    tokens: dict[str, list[str]],
    *,
    fallback_key: str | None = None,
) -> None:
    """Explore attention weights: choose a sentence, a layer and a head.

    ``weights[name]`` is a ``(n_layers, n_heads, T, T)`` tensor for the sentence ``name`` whose
    tokens are ``tokens[name]``. Without a widget front end, the static fallback is a grid of every
    head of the last layer of ``fallback_key`` (default: the first sentence).
    """
    import matplotlib.pyplot as plt
    import torch

    if not weights:
        raise ValueError("attention_explorer needs at least one sentence.")
    names = list(weights)
    for name in names:
        w = torch.as_tensor(weights[name])
        if w.dim() != 4 or w.shape[-1] != len(tokens[name]) or w.shape[-2] != len(tokens[name]):
            raise ValueError(
                f"weights[{name!r}] must be (n_layers, n_heads, T, T) with T = {len(tokens[name])} "
                f"tokens; got {tuple(w.shape)}."
            )
    key = fallback_key or names[0]
    w_key = torch.as_tensor(weights[key]).detach().float().cpu()
    n_layers, n_heads = w_key.shape[:2]
    cols = min(n_heads, 4)
    rows = (n_heads + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for h in range(rows * cols):
        ax = axes[h // cols][h % cols]
        if h >= n_heads:
            ax.axis("off")
            continue
        ax.imshow(w_key[-1, h].numpy(), cmap="viridis", vmin=0.0)
        ax.set_title(f"layer {n_layers - 1}, head {h}", fontsize=8)
        toks = tokens[key]
        ax.set_xticks(range(len(toks)), toks, rotation=70, fontsize=6)
        ax.set_yticks(range(len(toks)), toks, fontsize=6)
    fig.suptitle(f"attention weights: {key!r} (static view of the explorer)", fontsize=9)
    fig.tight_layout()
    if not widgets_available():
        show_widget(None, fallback=fig)
        return
    import ipywidgets as wd
    from IPython.display import display

    sentence = wd.Dropdown(options=names, value=key, description="sentence")
    layer = wd.IntSlider(value=n_layers - 1, min=0, max=n_layers - 1, description="layer")
    head = wd.IntSlider(value=0, min=0, max=n_heads - 1, description="head")
    out = wd.Output()

    def redraw(change: object = None) -> None:
        w = torch.as_tensor(weights[sentence.value])
        layer.max, head.max = w.shape[0] - 1, w.shape[1] - 1
        toks = tokens[sentence.value]
        with out:
            out.clear_output(wait=True)
            f = attention_heatmap(
                w[layer.value, head.value],
                toks,
                toks,
                title=f"layer {layer.value}, head {head.value}",
            )
            display(f)
            plt.close(f)

    for control in (sentence, layer, head):
        control.observe(redraw, names="value")
    redraw()
    box = wd.VBox([wd.HBox([sentence, layer, head]), out])
    box.add_class("coursekit-explorer")
    show_widget(box, fallback=fig)


# --------------------------------------------------------------------------------------------
# span corruption explorer (notebook 08)
# --------------------------------------------------------------------------------------------
def span_corruption_text(
    words: list[str], *, noise_density: float = 0.15, mean_span: float = 3.0, seed: int = 0
) -> str:
    """T5's span corruption of a list of words (one word = one token), as readable text:
    the input with ``<X0>``, ``<X1>``, ... where spans were dropped, and the target."""
    import torch

    from coursekit.data.span_corruption import random_spans_noise_mask, span_corrupt

    if len(words) < 2:
        raise ValueError("span_corruption_text needs at least two words.")
    sentinels = list(range(len(words), 2 * len(words) + 1))
    mask = random_spans_noise_mask(
        len(words),
        noise_density=noise_density,
        mean_noise_span_length=mean_span,
        generator=torch.Generator().manual_seed(seed),
    )
    inputs, targets = span_corrupt(list(range(len(words))), sentinel_ids=sentinels, noise_mask=mask)

    def show(ids: list[int]) -> str:
        return " ".join(words[i] if i < len(words) else f"<X{i - len(words)}>" for i in ids)

    share = float(mask.float().mean())
    return (
        f"noise density {noise_density:.2f}, mean span {mean_span:.1f}, seed {seed}: "
        f"{int(mask.sum())} of {len(words)} words dropped ({share:.0%})\n"
        f"  input : {show(inputs)}\n  target: {show(targets)}"
    )


def span_corruption_explorer(words: list[str]) -> None:
    """Sliders for the noise density, the mean span length and the seed of T5's span
    corruption of ``words`` (static fallback: T5's settings, 15% and 3)."""
    fallback = span_corruption_text(words)
    if not widgets_available():
        show_widget(None, fallback=fallback)
        return
    import ipywidgets as wd

    density = wd.FloatSlider(value=0.15, min=0.05, max=0.5, step=0.05, description="density")
    span = wd.FloatSlider(value=3.0, min=1.0, max=8.0, step=0.5, description="mean span")
    seed = wd.IntSlider(value=0, min=0, max=20, description="seed")
    out = wd.Output()

    def redraw(change: object = None) -> None:
        with out:
            out.clear_output(wait=True)
            print(
                span_corruption_text(
                    words, noise_density=density.value, mean_span=span.value, seed=seed.value
                )
            )

    for slider in (density, span, seed):
        slider.observe(redraw, names="value")
    redraw()
    box = wd.VBox([wd.HBox([density, span, seed]), out])
    box.add_class("coursekit-explorer")
    show_widget(box, fallback=fallback)

"""coursekit: the companion package of the hands-on Transformers and LLMs course.

Notebooks import building blocks from here after writing them out once in full.
The most used helpers are re-exported at the top level::

    import coursekit as ck
    device = ck.get_device()
    steps = ck.by_profile(smoke=50, laptop=2_000, gpu=10_000)
"""

from __future__ import annotations

from coursekit.runtime import (
    by_profile,
    environment_report,
    get_device,
    get_profile,
    seed_everything,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "by_profile",
    "environment_report",
    "get_device",
    "get_profile",
    "seed_everything",
]

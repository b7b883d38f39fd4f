"""Files: the one atomic-write helper and the one checkout-root helper of the package.

Everything the course writes for a learner (downloads, checkpoints, progress, learner versions)
goes through :func:`atomic_write`: the bytes go to a temporary file in the same folder, are
flushed to disk, and then replace the final name with :func:`os.replace`. A crash or ``kill -9``
at any moment leaves either the old file or the new one, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "TMP_SUFFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_with",
    "checkout_root",
]

#: suffix of the temporary files :func:`atomic_write` creates (``.<name>.<random>.tmp``).
TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, suffix: str = TMP_SUFFIX) -> Iterator[IO[bytes]]:
    """Open a temporary binary file beside ``path``; on success it atomically becomes ``path``.

    If the ``with`` body raises, the temporary file is removed and ``path`` is untouched::

        with atomic_write("out.bin") as handle:
            handle.write(b"...")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Let ``write(tmp_path)`` produce the file (for libraries that want a path, e.g.
    ``safetensors.torch.save_file``), then move it atomically onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        write(Path(tmp_name))
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def checkout_root() -> Path | None:
    """The course repository this package runs from (an editable install), or ``None``.

    Recognised by ``pyproject.toml`` and the ``coursekit`` and ``notebooks`` folders beside it.
    """
    root = Path(__file__).resolve().parents[1]
    if (
        (root / "pyproject.toml").is_file()
        and (root / "coursekit").is_dir()
        and (root / "notebooks").is_dir()
    ):
        return root
    return None

"""Download, verify and cache the course's data files.

Where a file comes from, in order:

1. the cache folder (``COURSEKIT_DATA_DIR``, default ``data/cache`` in a source checkout, else
   ``~/.cache/coursekit``), if the file there has the registered sha256;
2. the mirror (``COURSEKIT_DATA_MIRROR``): a folder, or an ``http(s)://`` base URL, holding the
   files under their registry file names;
3. the public URL in the registry.

Every file is checked against its sha256 after download *and* on every cache hit, and is written
atomically (:func:`coursekit.files.atomic_write`): it is streamed into a temporary
``.<name>.<random>.part`` file in the cache folder and renamed into place only after it verified,
so an interrupted or corrupted download never leaves a file under the final name. A download
stops as soon as it exceeds the registered size (a zip archive: :data:`MAX_ARCHIVE_BYTES`), and
extraction of a zip member stops at the registered size, so a wrong or hostile server cannot
fill the disk. Temporary files left by a killed download are removed by the next
:func:`fetch` of that data set and by :func:`status` (``coursekit data status``); one that
another process is still writing is left alone.

Every problem, network or file system (a read-only cache, a cache path that is a file, a cached
file that cannot be read), is a :class:`DataError` naming the path and the environment variable
to set.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Any

from coursekit.data.registry import REGISTRY, DataSet, get_dataset
from coursekit.files import TMP_SUFFIX, atomic_write
from coursekit.runtime import DATA_DIR_ENV, DATA_MIRROR_ENV, data_cache_dir, data_mirror

#: the environment variables of the cache folder and the mirror (defined in coursekit.runtime,
#: whose environment report shows them too).
CACHE_ENV = DATA_DIR_ENV
MIRROR_ENV = DATA_MIRROR_ENV
#: suffix of a download in progress (``.<file name>.<random>.part`` in the cache folder).
PART_SUFFIX = ".part"
#: the most bytes downloaded for a zip archive (its members' sizes are registered, not its own).
MAX_ARCHIVE_BYTES = 512 * 1024**2
_CHUNK = 1 << 16


class DataError(RuntimeError):
    """A data file is missing, unreachable, fails its checksum, or the cache cannot be used."""


def cache_dir() -> Path:
    """The folder that holds verified data files (created on first use).

    ``COURSEKIT_DATA_DIR``, else ``data/cache`` in a source checkout, else ``~/.cache/coursekit``
    (:func:`coursekit.runtime.data_cache_dir`).
    """
    return data_cache_dir()


def mirror_location() -> str | None:
    """The mirror folder or URL from ``COURSEKIT_DATA_MIRROR``, or None
    (:func:`coursekit.runtime.data_mirror`)."""
    return data_mirror()


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# file-system problems, said plainly


def _cache_source() -> str:
    value = os.environ.get(CACHE_ENV)
    if value:
        return f"{CACHE_ENV}={value}"
    return f"the default data cache ({CACHE_ENV} is not set)"


def _cache_error(path: Path, exc: OSError, doing: str) -> DataError:
    """A :class:`DataError` for a file-system failure at ``path`` while ``doing`` something."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, NotADirectoryError):
        reason += " (a file is in the way of a folder)"
    return DataError(
        f"Cannot {doing} {path}: {reason}. The data cache is {cache_dir()}, from {_cache_source()}. "
        f"Set {CACHE_ENV} to a folder you can write, or fix that path (permissions, or a file "
        "where a folder should be)."
    )


def _usable_cache_dir() -> Path:
    """:func:`cache_dir`, created if needed; a :class:`DataError` if it cannot be."""
    folder = cache_dir()
    try:
        if folder.exists() and not folder.is_dir():
            raise FileExistsError(17, "it is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_error(folder, exc, "use the data cache folder") from exc
    return folder


def is_verified(path: Path, dataset: DataSet) -> bool:
    """True if ``path`` exists and has the registered size and sha256.

    A file that exists but cannot be read raises :class:`DataError` naming it.
    """
    try:
        return (
            path.is_file()
            and path.stat().st_size == dataset.size
            and sha256_of(path) == dataset.sha256
        )
    except OSError as exc:
        raise _cache_error(path, exc, "read the cached file") from exc


# --------------------------------------------------------------------------------------------
# leftovers of killed downloads


def _try_lock(handle: IO[bytes]) -> bool:
    """Take an exclusive lock on ``handle`` without waiting; True if taken (or locks unsupported)."""
    try:
        import fcntl
    except ImportError:  # Windows: an open file cannot be removed there anyway
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks: nothing to learn
        return True
    return True


def leftover_files(folder: Path, dataset: DataSet) -> list[Path]:
    """Temporary files of ``dataset`` in ``folder`` (``.<file name>.*.part`` / ``.tmp``)."""
    try:
        candidates = sorted(folder.glob(f".{dataset.filename}.*"))
    except OSError:
        return []
    return [p for p in candidates if p.name.endswith((PART_SUFFIX, TMP_SUFFIX)) and p.is_file()]


def _clean_leftovers(folder: Path, dataset: DataSet) -> tuple[list[Path], list[Path]]:
    """Remove the temporary files a killed download or save of ``dataset`` left behind.

    Returns (removed, kept): a file another process is still writing (it holds a lock on it)
    is kept, as is one that cannot be removed. Never raises.
    """
    removed: list[Path] = []
    kept: list[Path] = []
    for path in leftover_files(folder, dataset):
        try:
            with open(path, "rb") as handle:
                if not _try_lock(handle):
                    kept.append(path)
                    continue
                path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
        except OSError:
            kept.append(path)
    return removed, kept


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths)


# --------------------------------------------------------------------------------------------
# downloading


def _progress(total: int | None, desc: str, enabled: bool) -> Any:  # a tqdm bar
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not enabled, leave=False)


class _Sink:
    """Where fetched bytes go: a binary handle, with a byte count, an optional digest and a cap.

    A write that would pass ``limit`` raises :class:`DataError` (``what`` says what was capped);
    a write the file system refuses raises :class:`DataError` naming ``path``.
    """

    def __init__(
        self, handle: IO[bytes], *, path: Path, limit: int, what: str, digest: bool = True
    ) -> None:
        self.handle = handle
        self.path = path
        self.limit = limit
        self.what = what
        self.size = 0
        self.digest = hashlib.sha256() if digest else None

    def room(self) -> int:
        """How many bytes to ask for next: one more than the cap allows, to notice a breach."""
        return max(1, min(_CHUNK, self.limit + 1 - self.size))

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise DataError(
                f"{self.what} is larger than the {self.limit:,} bytes expected; stopped after "
                f"{self.size:,} bytes and saved nothing. The source is not the registered file "
                f"(a wrong mirror file, or a changed download): check {MIRROR_ENV} or try again "
                "later."
            )
        try:
            self.handle.write(chunk)
        except OSError as exc:
            raise _cache_error(self.path, exc, "write") from exc
        if self.digest is not None:
            self.digest.update(chunk)


def _stream_to(url: str, sink: _Sink, desc: str, progress: bool, timeout: float) -> None:
    """Copy ``url``'s body into ``sink`` with a progress bar, stopping at the sink's cap."""
    request = urllib.request.Request(url, headers={"User-Agent": "coursekit"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > sink.limit:
            raise DataError(
                f"{url} announces {total:,} bytes, more than the {sink.limit:,} bytes expected "
                f"for {sink.what}; nothing was downloaded. The source is not the registered file: "
                f"check {MIRROR_ENV}, or try again later."
            )
        received = 0
        with _progress(total, desc, progress) as bar:
            while chunk := response.read(sink.room()):
                sink.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if total is not None and received != total:
            raise DataError(
                f"Download of {url} was cut short: {received:,} of {total:,} bytes arrived."
            )


def _source_url(dataset: DataSet) -> tuple[str, bool]:
    """(where to fetch from, whether that is a zip archive needing extraction)."""
    mirror = mirror_location()
    if mirror is None:
        return dataset.url, dataset.archive_member is not None
    if mirror.startswith(("http://", "https://", "file://")):
        return f"{mirror}/{dataset.filename}", False
    return Path(mirror, dataset.filename).as_uri(), False


def _extract(archive: IO[bytes], dataset: DataSet, sink: _Sink) -> None:
    """Copy the registered member of the zip ``archive`` into ``sink`` (capped by its size)."""
    member_name = dataset.archive_member or ""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member_name)
        if info.file_size > sink.limit:
            raise DataError(
                f"{sink.what} is {info.file_size:,} bytes uncompressed, more than the "
                f"{sink.limit:,} bytes registered; nothing was extracted. The archive is not the "
                "registered one."
            )
        with zf.open(info) as member:
            while chunk := member.read(sink.room()):
                sink.write(chunk)


def _fetch_into(dataset: DataSet, sink: _Sink, progress: bool, timeout: float) -> None:
    """Fetch ``dataset`` into ``sink``, extracting from a zip if needed."""
    url, is_archive = _source_url(dataset)
    mirror = mirror_location()
    if mirror and not mirror.startswith(("http://", "https://", "file://")):
        source = Path(mirror, dataset.filename)
        if not source.is_file():
            raise DataError(
                f"The data mirror {mirror} (from {MIRROR_ENV}) has no file {dataset.filename!r}. "
                f"Put the file there, or unset {MIRROR_ENV} to download it from {dataset.url}."
            )
    archive: IO[bytes] | None = None
    if is_archive:
        try:
            archive = tempfile.TemporaryFile(dir=sink.path.parent)
        except OSError as exc:
            raise _cache_error(sink.path.parent, exc, "create a temporary file in") from exc
    try:
        if archive is None:
            _stream_to(url, sink, dataset.filename, progress, timeout)
            return
        archive_sink = _Sink(
            archive,
            path=sink.path,
            limit=MAX_ARCHIVE_BYTES,
            what=f"the archive {url}",
            digest=False,
        )
        _stream_to(url, archive_sink, f"{dataset.filename} (archive)", progress, timeout)
        archive.seek(0)
        _extract(archive, dataset, sink)
    except (
        urllib.error.URLError,
        http.client.HTTPException,
        OSError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        KeyError,
    ) as exc:
        raise DataError(
            f"Could not get {dataset.filename!r} from {url}: {exc}.\n"
            f"Without network, download it elsewhere from {dataset.url}"
            + (f" (zip member {dataset.archive_member})" if dataset.archive_member else "")
            + f" and either place it in {cache_dir()} or point {MIRROR_ENV} at a folder holding it."
        ) from exc
    finally:
        if archive is not None:
            archive.close()


def fetch(name: str, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Return the path of a verified local copy of data set ``name``, fetching it if needed.

    A cached file whose checksum no longer matches is reported and fetched again; temporary files
    a killed download left behind are removed first. Raises :class:`DataError` naming the file,
    its URL and the environment variables to set (also for a cache folder that cannot be used).
    """
    dataset = get_dataset(name)
    folder = _usable_cache_dir()
    final = folder / dataset.filename
    removed, _ = _clean_leftovers(folder, dataset)
    if removed:
        print(
            f"coursekit: removed {len(removed)} temporary file(s) left in {folder} by an "
            f"interrupted download: {_names(removed)}.",
            file=sys.stderr,
        )
    try:
        exists = final.exists() or final.is_symlink()
    except OSError as exc:
        raise _cache_error(final, exc, "look at the cached file") from exc
    if exists:
        if is_verified(final, dataset):
            return final
        print(
            f"coursekit: cached {final.name} does not match its sha256 (corrupted or "
            "truncated); fetching it again."
        )
    try:
        with atomic_write(final, suffix=PART_SUFFIX) as handle:
            _try_lock(handle)  # marks the download as in progress for other processes
            sink = _Sink(handle, path=final, limit=dataset.size, what=dataset.filename)
            _fetch_into(dataset, sink, progress, timeout)
            actual = sink.digest.hexdigest() if sink.digest is not None else ""
            if actual != dataset.sha256 or sink.size != dataset.size:
                raise DataError(
                    f"Checksum mismatch for {dataset.filename}: expected sha256 {dataset.sha256} "
                    f"({dataset.size:,} bytes), got {actual} ({sink.size:,} bytes). The download "
                    "(or mirror file) is corrupted or a different version; nothing was saved. "
                    "Try again, or replace the mirror's copy."
                )
    except OSError as exc:
        raise _cache_error(final, exc, "save the downloaded file as") from exc
    return final


def status(*, clean: bool = True) -> list[tuple[str, str]]:
    """(data set, state) for each registered file: verified, corrupted or missing in the cache.

    With ``clean`` (``coursekit data status``), temporary files left by a killed download are
    removed and the state says so; without it they are only reported. Never raises: a file or
    folder that cannot be read is a state that says why.
    """
    rows = []
    folder = cache_dir()
    for name, dataset in REGISTRY.items():
        path = folder / dataset.filename
        try:
            if not path.exists():
                state = "not downloaded"
            elif is_verified(path, dataset):
                state = "present, sha256 verified"
            else:
                state = "CORRUPTED (sha256 mismatch): `coursekit data fetch` re-fetches it"
        except (OSError, DataError) as exc:
            state = f"UNREADABLE: {exc}"
        if clean:
            removed, kept = _clean_leftovers(folder, dataset)
        else:
            removed, kept = [], leftover_files(folder, dataset)
        if removed:
            state += (
                f"; removed {len(removed)} temporary file(s) of an interrupted download "
                f"({_names(removed)})"
            )
        if kept:
            state += (
                f"; {len(kept)} temporary file(s) of a download in progress or interrupted "
                f"({_names(kept)})"
                + ("" if clean else ": `coursekit data status` removes a leftover one")
            )
        rows.append((name, state))
    return rows

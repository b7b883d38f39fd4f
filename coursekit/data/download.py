"""Download, verify and cache the course's data files.

Where a file comes from, in order:

1. the cache folder (``COURSEKIT_DATA_DIR``, default ``data/cache`` in a source checkout, else
   ``~/.cache/coursekit``), if the file there has the registered sha256;
2. the mirror (``COURSEKIT_DATA_MIRROR``): a folder, or an ``http(s)://`` base URL, holding the
   files under their registry file names;
3. the public URL in the registry.

Every file is checked against its sha256 after download *and* on every cache hit, and is written
atomically: it is downloaded to a temporary file in the cache folder and renamed into place only
after it verified, so an interrupted or corrupted download never leaves a file under the final name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from coursekit.data.registry import DataSet, get_dataset

CACHE_ENV = "COURSEKIT_DATA_DIR"
MIRROR_ENV = "COURSEKIT_DATA_MIRROR"
_CHUNK = 1 << 16


class DataError(RuntimeError):
    """A data file is missing, unreachable or fails its checksum."""


def cache_dir() -> Path:
    """The folder that holds verified data files (created on first use)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / "data" / "cache"
    return Path.home() / ".cache" / "coursekit"


def mirror_location() -> str | None:
    """The mirror folder or URL from ``COURSEKIT_DATA_MIRROR``, or None."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return None
    if value.startswith(("http://", "https://", "file://")):
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_verified(path: Path, dataset: DataSet) -> bool:
    """True if ``path`` exists and has the registered size and sha256."""
    return (
        path.is_file() and path.stat().st_size == dataset.size and sha256_of(path) == dataset.sha256
    )


def _progress(total: int | None, desc: str, enabled: bool):  # -> tqdm
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not enabled, leave=False)


def _stream_to(url: str, handle, desc: str, progress: bool, timeout: float) -> None:
    """Copy ``url``'s body into the open binary ``handle`` with a progress bar."""
    request = urllib.request.Request(url, headers={"User-Agent": "coursekit"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        received = 0
        with _progress(total, desc, progress) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                handle.write(chunk)
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


def _fetch_into(dataset: DataSet, target: Path, progress: bool, timeout: float) -> None:
    """Fetch ``dataset`` into the (temporary) file ``target``, extracting from a zip if needed."""
    url, is_archive = _source_url(dataset)
    mirror = mirror_location()
    if mirror and not mirror.startswith(("http://", "https://", "file://")):
        source = Path(mirror, dataset.filename)
        if not source.is_file():
            raise DataError(
                f"The data mirror {mirror} (from {MIRROR_ENV}) has no file {dataset.filename!r}. "
                f"Put the file there, or unset {MIRROR_ENV} to download it from {dataset.url}."
            )
    try:
        if not is_archive:
            with open(target, "wb") as handle:
                _stream_to(url, handle, dataset.filename, progress, timeout)
            return
        with tempfile.TemporaryFile(dir=target.parent) as archive:
            _stream_to(url, archive, f"{dataset.filename} (archive)", progress, timeout)
            archive.seek(0)
            with zipfile.ZipFile(archive) as zf, zf.open(dataset.archive_member) as member:
                with open(target, "wb") as handle:
                    shutil.copyfileobj(member, handle, _CHUNK)
    except (
        urllib.error.URLError,
        http.client.HTTPException,
        OSError,
        zipfile.BadZipFile,
        KeyError,
    ) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(
            f"Could not get {dataset.filename!r} from {url}: {exc}.\n"
            f"Without network, download it elsewhere from {dataset.url}"
            + (f" (zip member {dataset.archive_member})" if dataset.archive_member else "")
            + f" and either place it in {cache_dir()} or point {MIRROR_ENV} at a folder holding it."
        ) from exc


def fetch(name: str, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Return the path of a verified local copy of data set ``name``, fetching it if needed.

    A cached file whose checksum no longer matches is reported and fetched again.
    Raises :class:`DataError` naming the file, its URL and the environment variables to set.
    """
    dataset = get_dataset(name)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / dataset.filename
    if final.exists():
        if is_verified(final, dataset):
            return final
        print(
            f"coursekit: cached {final.name} does not match its sha256 (corrupted or "
            "truncated); fetching it again."
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dataset.filename}.", suffix=".part", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _fetch_into(dataset, tmp, progress, timeout)
        actual = sha256_of(tmp)
        if actual != dataset.sha256:
            raise DataError(
                f"Checksum mismatch for {dataset.filename}: expected sha256 {dataset.sha256}, "
                f"got {actual}. The download (or mirror file) is corrupted or a different "
                "version; nothing was saved. Try again, or replace the mirror's copy."
            )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def status() -> list[tuple[str, str]]:
    """(data set, state) for each registered file: verified, corrupted or missing in the cache."""
    from coursekit.data.registry import REGISTRY

    rows = []
    for name, dataset in REGISTRY.items():
        path = cache_dir() / dataset.filename
        if not path.exists():
            state = "not downloaded"
        elif is_verified(path, dataset):
            state = "present, sha256 verified"
        else:
            state = "CORRUPTED (sha256 mismatch): `coursekit data fetch` re-fetches it"
        rows.append((name, state))
    return rows

"""coursekit.data: verified downloads through a loopback HTTP server, loaders and synthetic tasks."""

from __future__ import annotations

import functools
import http.server
import os
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from coursekit.data import download, registry
from coursekit.data.download import DataError, fetch, sha256_of
from coursekit.data.synthetic import (
    BOS_ID,
    DIGIT_OFFSET,
    N_SPECIAL,
    addition_task,
    associative_recall,
    copy_task,
    needle_in_haystack,
    reverse_task,
    sort_task,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def mirror_folder() -> Path:
    """The offline mirror: COURSEKIT_DATA_MIRROR if it is a folder, else ../shared/data."""
    env = os.environ.get(download.MIRROR_ENV, "")
    folder = Path(env) if env and "://" not in env else SHARED
    if not (folder / "tinyshakespeare.txt").is_file():
        pytest.skip(f"no data mirror with tinyshakespeare.txt at {folder}")
    return folder


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate_to: int | None = None  # if set, promise the full length but send only this many bytes

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def copyfile(self, source, outputfile) -> None:  # noqa: ANN001
        if self.truncate_to is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(self.truncate_to))
        outputfile.flush()
        self.close_connection = True


@pytest.fixture
def serve():
    """Start a loopback HTTP server over a folder; yields a function folder -> base URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path, truncate_to: int | None = None) -> str:
        handler = type("Handler", (_Handler,), {"truncate_to": truncate_to})
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(download.CACHE_ENV, str(folder))
    return folder


def test_cache_and_mirror_come_from_the_runtime(tmp_path, monkeypatch):
    """One definition: data.download's names are the runtime's (its environment report uses them)."""
    from coursekit import runtime

    assert (download.CACHE_ENV, download.MIRROR_ENV) == (
        runtime.DATA_DIR_ENV,
        runtime.DATA_MIRROR_ENV,
    )
    monkeypatch.setenv(runtime.DATA_DIR_ENV, str(tmp_path / "c"))
    monkeypatch.setenv(runtime.DATA_MIRROR_ENV, "https://example.org/data/")
    assert download.cache_dir() == runtime.data_cache_dir() == (tmp_path / "c").resolve()
    assert download.mirror_location() == runtime.data_mirror() == "https://example.org/data"
    monkeypatch.setenv(runtime.DATA_MIRROR_ENV, "  ")
    assert download.mirror_location() is None


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_over_http_is_verified_and_cached(serve, cache, monkeypatch):
    monkeypatch.setenv(download.MIRROR_ENV, serve(mirror_folder()))
    path = fetch("tinyshakespeare", progress=False)
    assert path == cache / "tinyshakespeare.txt"
    assert sha256_of(path) == registry.REGISTRY["tinyshakespeare"].sha256
    assert leftovers(cache) == ["tinyshakespeare.txt"]  # no temporary file left behind
    # A cache hit does not touch the network: point the mirror at nothing and fetch again.
    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:9/")
    assert fetch("tinyshakespeare", progress=False) == path


def test_corrupted_download_is_rejected_and_leaves_nothing(serve, cache, tmp_path, monkeypatch):
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    original = (mirror_folder() / "tinyshakespeare.txt").read_bytes()
    (bad / "tinyshakespeare.txt").write_bytes(original.replace(b"ROMEO", b"ROMEX", 1))
    monkeypatch.setenv(download.MIRROR_ENV, serve(bad))
    with pytest.raises(DataError, match="Checksum mismatch for tinyshakespeare.txt"):
        fetch("tinyshakespeare", progress=False)
    assert leftovers(cache) == []


def test_corrupted_cache_file_is_detected_and_refetched(serve, cache, monkeypatch, capsys):
    monkeypatch.setenv(download.MIRROR_ENV, serve(mirror_folder()))
    path = fetch("tinyshakespeare", progress=False)
    with open(path, "r+b") as handle:  # flip one byte in place
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert not download.is_verified(path, registry.REGISTRY["tinyshakespeare"])
    again = fetch("tinyshakespeare", progress=False)
    assert "does not match its sha256" in capsys.readouterr().out
    assert download.is_verified(again, registry.REGISTRY["tinyshakespeare"])


def test_interrupted_download_leaves_no_partial_file(serve, cache, monkeypatch):
    monkeypatch.setenv(download.MIRROR_ENV, serve(mirror_folder(), truncate_to=100_000))
    with pytest.raises(DataError):
        fetch("tinyshakespeare", progress=False)
    assert not (cache / "tinyshakespeare.txt").exists()
    assert leftovers(cache) == []


def test_public_url_zip_member_is_extracted(serve, cache, tmp_path, monkeypatch):
    """The public-URL path: a zip archive whose member is the registered file."""
    site = tmp_path / "site"
    site.mkdir()
    payload = b"hello\tbonjour\n" * 100
    with zipfile.ZipFile(site / "pairs.zip", "w") as zf:
        zf.writestr("pairs/pairs.txt", payload)
    entry = replace(
        registry.REGISTRY["eng-fra"],
        name="toy",
        filename="toy.txt",
        url=serve(site) + "/pairs.zip",
        archive_member="pairs/pairs.txt",
        sha256=__import__("hashlib").sha256(payload).hexdigest(),
        size=len(payload),
    )
    monkeypatch.setitem(registry.REGISTRY, "toy", entry)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    assert fetch("toy", progress=False).read_bytes() == payload
    assert leftovers(cache) == ["toy.txt"]


def test_without_network_the_error_says_what_to_do(cache, monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)

    def offline(*args, **kwargs):
        raise download.urllib.error.URLError("no network")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as info:
        fetch("tinyshakespeare", progress=False)
    message = str(info.value)
    assert "tinyshakespeare.txt" in message
    assert registry.REGISTRY["tinyshakespeare"].url in message
    assert download.MIRROR_ENV in message
    assert leftovers(cache) == []


def test_mirror_folder_missing_file_is_named(cache, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(download.MIRROR_ENV, str(empty))
    with pytest.raises(DataError, match="has no file 'tinyshakespeare.txt'"):
        fetch("tinyshakespeare", progress=False)


def test_unknown_data_set_lists_the_known_ones():
    with pytest.raises(KeyError, match="tinyshakespeare"):
        fetch("tiny-shakespear")


def test_registry_matches_the_mirror_checksums():
    sums = {}
    for line in (mirror_folder() / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    for entry in registry.REGISTRY.values():
        assert sums[entry.filename] == entry.sha256
        assert (mirror_folder() / entry.filename).stat().st_size == entry.size


# ---------------------------------------------------------------- file-system problems, said plainly


def test_cache_path_that_is_a_file_is_a_data_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for where in (blocker, blocker / "cache"):
        monkeypatch.setenv(download.CACHE_ENV, str(where))
        with pytest.raises(DataError) as info:
            fetch("tinyshakespeare", progress=False)
        message = str(info.value)
        assert str(where) in message and download.CACHE_ENV in message
        assert "\n" not in message


def test_read_only_cache_is_a_data_error(cache, monkeypatch):
    """A cache folder where no file can be created (simulated: the tests run as root)."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setenv(download.MIRROR_ENV, "http://127.0.0.1:9/")  # never reached
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(DataError) as info:
        fetch("tinyshakespeare", progress=False)
    message = str(info.value)
    assert "Permission denied" in message and str(cache) in message
    assert download.CACHE_ENV in message


def test_unreadable_cached_file_is_a_data_error(cache, monkeypatch):
    cache.mkdir()
    cached = cache / "tinyshakespeare.txt"
    cached.write_bytes(b"x" * registry.REGISTRY["tinyshakespeare"].size)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(download, "open", refuse, raising=False)
    with pytest.raises(DataError) as info:
        fetch("tinyshakespeare", progress=False)
    message = str(info.value)
    assert str(cached) in message and "Permission denied" in message
    assert download.CACHE_ENV in message
    rows = dict(download.status())  # status reports it instead of crashing
    assert "UNREADABLE" in rows["tinyshakespeare"]


def test_cached_path_that_is_a_folder_is_a_data_error(serve, cache, monkeypatch):
    (cache / "tinyshakespeare.txt").mkdir(parents=True)
    monkeypatch.setenv(download.MIRROR_ENV, serve(mirror_folder()))
    with pytest.raises(DataError, match=download.CACHE_ENV) as info:
        fetch("tinyshakespeare", progress=False)
    assert str(cache / "tinyshakespeare.txt") in str(info.value)


def test_cli_fetch_into_an_unusable_cache_is_one_line(tmp_path, monkeypatch, capsys):
    from coursekit.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(download.CACHE_ENV, str(blocker / "cache"))
    assert main(["data", "fetch", "tinyshakespeare"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("coursekit data fetch: tinyshakespeare:") and download.CACHE_ENV in err


# ---------------------------------------------------------------- leftovers of killed downloads


def test_leftover_temporary_files_are_removed_by_the_next_fetch(serve, cache, monkeypatch, capsys):
    cache.mkdir()
    stale = [cache / ".tinyshakespeare.txt.k1ll3d.part", cache / ".tinyshakespeare.txt.x.tmp"]
    for path in stale:
        path.write_bytes(b"half a download")
    other = cache / ".sst2_dev.tsv.abc.part"  # another data set's: left for its own fetch
    other.write_bytes(b"x")
    monkeypatch.setenv(download.MIRROR_ENV, serve(mirror_folder()))
    fetch("tinyshakespeare", progress=False)
    assert leftovers(cache) == [other.name, "tinyshakespeare.txt"]
    assert "removed 2 temporary file(s)" in capsys.readouterr().err


def test_status_shows_and_removes_leftovers(cache, capsys):
    from coursekit.cli import main

    cache.mkdir()
    (cache / ".tinyshakespeare.txt.k1ll3d.part").write_bytes(b"half")
    looked = dict(download.status(clean=False))["tinyshakespeare"]
    assert ".tinyshakespeare.txt.k1ll3d.part" in looked and leftovers(cache)
    assert main(["data", "status"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 temporary file(s)" in out and ".tinyshakespeare.txt.k1ll3d.part" in out
    assert leftovers(cache) == []


@pytest.mark.skipif(os.name != "posix", reason="in-progress downloads are told apart by flock")
def test_a_download_in_progress_is_not_removed(cache):
    import fcntl

    cache.mkdir()
    busy = cache / ".tinyshakespeare.txt.busy.part"
    with open(busy, "wb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        state = dict(download.status())["tinyshakespeare"]
        assert busy.exists() and "in progress" in state
    download.status()
    assert not busy.exists()


# ---------------------------------------------------------------- size caps


class _Flood(http.server.BaseHTTPRequestHandler):
    """Answers any GET with ``total`` bytes, with or without a Content-Length header."""

    protocol_version = "HTTP/1.0"
    total = 0
    announce = True

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if self.announce:
            self.send_header("Content-Length", str(self.total))
        self.end_headers()
        block = b"x" * 65536
        try:
            for _ in range(self.total // len(block)):
                self.wfile.write(block)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def flood():
    # served by a loop of our own with a short timeout and joined with a deadline: teardown
    # never waits without bound (BaseServer.shutdown() once hung here on a loaded machine)
    running: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []
    stop = threading.Event()

    def serve(server: http.server.ThreadingHTTPServer) -> None:
        while not stop.is_set():
            server.handle_request()

    def start(total: int, announce: bool) -> str:
        handler = type("Flood", (_Flood,), {"total": total, "announce": announce})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.timeout = 0.1
        thread = threading.Thread(target=serve, args=(server,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    stop.set()
    for server, thread in running:
        thread.join(timeout=10)
        server.server_close()


def _count_bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every ``read`` on the HTTP responses that fetch opens."""
    counted: list[int] = []
    real = download.urllib.request.urlopen

    def counting(*args, **kwargs):
        response = real(*args, **kwargs)
        read = response.read

        def counted_read(*a, **k):
            data = read(*a, **k)
            counted.append(len(data))
            return data

        response.read = counted_read
        return response

    monkeypatch.setattr(download.urllib.request, "urlopen", counting)
    return counted


@pytest.mark.parametrize("announce", [False, True], ids=["no-length", "content-length"])
def test_download_stops_at_the_registered_size(flood, cache, monkeypatch, announce):
    size = 256 * 1024
    entry = replace(registry.REGISTRY["tinyshakespeare"], name="toy", filename="toy.txt", size=size)
    monkeypatch.setitem(registry.REGISTRY, "toy", entry)
    monkeypatch.setenv(download.MIRROR_ENV, flood(5 * size, announce))
    counted = _count_bytes_read(monkeypatch)
    with pytest.raises(DataError, match="than the 262,144 bytes expected"):
        fetch("toy", progress=False)
    assert sum(counted) <= size + 1  # 5x the size was on offer
    assert leftovers(cache) == []


def _toy_zip(site: Path, payload: bytes) -> None:
    with zipfile.ZipFile(site / "pairs.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pairs/pairs.txt", payload)


def test_zip_member_larger_than_registered_is_not_extracted(serve, cache, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    payload = b"hello\tbonjour\n" * 5000
    _toy_zip(site, payload)
    entry = replace(
        registry.REGISTRY["eng-fra"],
        name="toy",
        filename="toy.txt",
        url=serve(site) + "/pairs.zip",
        archive_member="pairs/pairs.txt",
        size=len(payload) // 5,
    )
    monkeypatch.setitem(registry.REGISTRY, "toy", entry)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    with pytest.raises(DataError, match="uncompressed, more than the 14,000 bytes registered"):
        fetch("toy", progress=False)
    assert leftovers(cache) == []


def test_archive_download_is_capped(flood, cache, monkeypatch):
    entry = replace(
        registry.REGISTRY["eng-fra"], name="toy", filename="toy.txt", url=flood(1 << 20, False)
    )
    monkeypatch.setitem(registry.REGISTRY, "toy", entry)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.setattr(download, "MAX_ARCHIVE_BYTES", 100_000)
    counted = _count_bytes_read(monkeypatch)
    with pytest.raises(DataError, match="the archive"):
        fetch("toy", progress=False)
    assert sum(counted) <= 100_001


# ---------------------------------------------------------------- loaders (through the mirror)


@pytest.fixture
def mirrored(cache, monkeypatch):
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror_folder()))


def test_tiny_shakespeare_split_matches_nanogpt(mirrored):
    from coursekit.data import load_tiny_shakespeare

    splits = load_tiny_shakespeare()
    assert (len(splits.train), len(splits.val)) == (1_003_854, 111_540)
    assert len(set(splits.train) | set(splits.val)) == 65


def test_translation_split_is_deterministic_and_filter_independent(mirrored):
    from coursekit.data import load_translation_pairs

    short = load_translation_pairs(max_words=6, seed=0)
    assert short == load_translation_pairs(max_words=6, seed=0)
    full = load_translation_pairs(seed=0)
    full_test = set(full.test)
    assert set(short.test) <= full_test and set(short.train).isdisjoint(full_test)
    total = sum(len(s) for s in full)
    assert 0.08 < len(full.test) / total < 0.12 and 0.08 < len(full.val) / total < 0.12
    assert all(len(fr.split()) <= 6 and len(en.split()) <= 6 for fr, en in short.train)
    assert load_translation_pairs(max_words=6, seed=1).test != short.test


def test_sst2_splits(mirrored):
    from coursekit.data import load_sst2

    data = load_sst2()
    assert len(data.test) == 872 and len(data.train) + len(data.val) == 67_349
    assert {y for _, y in data.test} == {0, 1}


# ---------------------------------------------------------------- batching and synthetic tasks


def test_random_windows_are_shifted_by_one():
    from coursekit.data import random_windows

    ids = torch.arange(100)
    x, y = random_windows(ids, 8, 4, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="1-D"):
        random_windows(ids.view(10, 10), 4, 2)


def test_pad_sequences():
    from coursekit.data import pad_sequences

    out = pad_sequences([[5, 6, 7], [8]], pad_id=0)
    assert out.tolist() == [[5, 6, 7], [8, 0, 0]]


@pytest.mark.parametrize("make", [copy_task, reverse_task, sort_task])
def test_sequence_tasks(make):
    task = make(32, 7, vocab_size=12, seed=3)
    assert task.src.shape == task.tgt.shape == (32, 7)
    assert task.src.min() >= N_SPECIAL and task.src.max() < 12
    assert torch.equal(task.src, make(32, 7, vocab_size=12, seed=3).src)
    assert not torch.equal(task.src, make(32, 7, vocab_size=12, seed=4).src)
    expected = {
        "copy": task.src,
        "reverse": task.src.flip(-1),
        "sort": task.src.sort(-1).values,
    }[task.name]
    assert torch.equal(task.tgt, expected)


def test_addition_task_is_arithmetic():
    task = addition_task(50, 3, seed=1)

    def number(digits: torch.Tensor) -> int:
        return int("".join(str(int(d) - DIGIT_OFFSET) for d in digits))

    for src, tgt in zip(task.src, task.tgt):
        assert number(src[:3]) + number(src[4:7]) == number(tgt)


def test_associative_recall_and_needle_targets():
    task = associative_recall(40, 4, seed=2)
    for src, tgt in zip(task.src, task.tgt):
        keys, values, query = src[0:8:2], src[1:8:2], src[-1]
        assert values[(keys == query).nonzero()[0, 0]] == tgt[0]
    hay = needle_in_haystack(40, 30, vocab_size=20, seed=5)
    for src, tgt in zip(hay.src, hay.tgt):
        where = (src == 20).nonzero()[0, 0]
        assert src[where + 1] == tgt[0] and src[-1] == 21
    assert BOS_ID not in hay.src


def test_find_the_needle():
    from coursekit.data.synthetic import find_the_needle

    task = find_the_needle(200, 33, n_fillers=20, n_needles=10, seed=3)
    assert task.src.shape == (200, 33) and task.vocab_size == 34
    needles = (task.src >= 23) & (task.src < 33)
    assert (needles.sum(1) == 1).all() and (task.src[:, -1] == 33).all()
    assert torch.equal(task.src[needles], task.tgt[:, 0])
    where = needles.float().argmax(1)
    assert where.min() == 0 and where.max() == 31  # anywhere but the question's place
    assert torch.equal(find_the_needle(200, 33, seed=3).src, task.src)
    with pytest.raises(ValueError, match="length"):
        find_the_needle(2, 1)

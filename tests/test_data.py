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

"""Cache stores (`daglite.cachestore`): entries, expiry, corruption, concurrent writers, and
touching only their own files, inside their root.

Real files, real symlinks, real writer processes (concurrent, and killed mid-write by
SIGKILL and SIGXFSZ from a real file-size limit), the real `daglite cache` command.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import pytest

from daglite import session
from daglite import task
from daglite.cachestore import MARKER
from daglite.cachestore import CacheStore
from daglite.cachestore import open_cache_store
from daglite.caching import CachePlan
from daglite.caching import cache_key
from daglite.errors import StoreError
from daglite.stores import ByteStore
from daglite.stores import forget_stores
from daglite.testing import ManualClock
from daglite.testing import memory_cache_store

from .support.cache_tasks import counted
from .support.cache_tasks import events_of


@task(cache=True)
def double(x: int) -> int:
    return 2 * x


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("daglite")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "daglite.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGLITE_")}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def _wait_for(condition, what: str, bound: float = 30.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# -- writes stay inside the root ----------------------------------------------------------


def test_the_cache_hot_path_refuses_a_symlink_that_leaves_the_root(tmp_path):
    root, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    f = task(lambda x: x + 1, cache=str(root))
    key = cache_key(f, 1)
    root.mkdir()
    (root / key[:2]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="a symbolic link takes it outside the store's root"):
        f(1)
    assert list(outside.iterdir()) == []


def test_a_symlink_inside_the_root_is_followed(tmp_path):
    root = tmp_path / "cache"
    f = task(lambda x: x + 1, cache=str(root))
    key = cache_key(f, 1)
    (root / "real").mkdir(parents=True)
    (root / key[:2]).symlink_to(root / "real", target_is_directory=True)
    assert f(1) == 2
    assert (root / "real" / key).is_file()


# -- opened stores are released -------------------------------------------------------------


def test_many_sessions_with_their_own_stores_leave_no_growth(tmp_path):
    def run(first: int, count: int) -> int:
        for i in range(first, first + count):
            with session(cache_store=str(tmp_path / f"s{i}")):
                double(i)
        gc.collect()
        return sum(isinstance(o, (ByteStore, CacheStore)) for o in gc.get_objects())

    forget_stores()
    after_some = run(0, 300)
    after_more = run(300, 1200)
    assert after_more <= after_some  # a bounded number of stores stays open
    assert after_some < 300


# -- only entries are daglite's -----------------------------------------------------------


def _user_files(root: Path) -> dict[str, bytes]:
    files = {
        ".git/HEAD": b"ref: refs/heads/main\n",
        "data/input.csv": b"a,b\n1,2\n",
        "notes.txt": b"my notes",
        "src/main.py": b"print('hi')\n",
        "ab/abstract.txt": b"not an entry: no header, not a key daglite makes",
        ".git/objects/ab/cdef0123456789abcdef0123456789abcdef01": b"DGLC-like git object",
        "cd/ef0123456789abcdef0123456789abcdef012345": b"DGLC but in the wrong folder",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_info_and_clear_ignore_files_that_are_not_entries(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    files = _user_files(root)
    store = CacheStore(str(root))
    store.put("0123456789abcdef0123456789abcdef01234567", [1, 2])
    assert (root / MARKER).is_file()
    assert store.keys() == ["0123456789abcdef0123456789abcdef01234567"]
    assert store.info()["entries"] == 1
    assert store.clear() == 1
    assert {name: (root / name).read_bytes() for name in files} == files


def test_clear_refuses_a_directory_that_is_not_a_store(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    files = _user_files(root)
    store = CacheStore(str(root))
    with pytest.raises(StoreError) as info:
        store.clear()
    message = str(info.value)
    assert f"'{root}' is not a daglite cache store" in message
    assert "nothing was removed" in message and "force=True" in message
    assert store.clear(force=True) == 0  # forced: still only entries are removed
    assert {name: (root / name).read_bytes() for name in files} == files


def test_cli_clear_refuses_a_foreign_directory_unless_forced(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    files = _user_files(root)
    for args in (("--older-than", "1h"), ()):
        done = _cli("cache", "clear", "--store", str(root), *args, cwd=tmp_path)
        assert done.returncode == 2, done
        assert f"'{root}' is not a daglite cache store" in done.stderr
        assert "--force" in done.stderr
    info = _cli("cache", "info", "--store", str(root), cwd=tmp_path)
    assert info.returncode == 0 and "entries: 0" in info.stdout
    assert "note: not a daglite cache store (no .daglite-cache marker, no entries)" in info.stdout
    forced = _cli("cache", "clear", "--store", str(root), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced
    assert forced.stdout.startswith("removed 0 cache entries from ")
    assert {name: (root / name).read_bytes() for name in files} == files


def test_an_empty_or_missing_directory_is_cleared_as_empty(tmp_path):
    assert CacheStore(str(tmp_path / "missing")).clear() == 0
    (tmp_path / "empty").mkdir()
    assert CacheStore(str(tmp_path / "empty")).clear() == 0


def test_a_store_written_before_the_marker_existed_is_recognised(tmp_path):
    root = tmp_path / "old"
    store = CacheStore(str(root))
    store.put("0123456789abcdef0123456789abcdef01234567", "old value")
    (root / MARKER).unlink()  # what an older daglite left: entries, no marker
    (root / "notes.txt").write_text("keep me")
    again = CacheStore(str(root))
    assert again.clear() == 1
    assert (root / MARKER).is_file()
    assert _files(root) == sorted([MARKER, "notes.txt"])


# -- temporaries of killed writers ------------------------------------------------------------


WRITER = textwrap.dedent(
    """
    import os, sys
    from daglite.cachestore import CacheStore

    store = CacheStore(sys.argv[1])
    store.put("00" + "0" * 38, "first")  # the folder and the marker exist
    writes = 0

    def pause_mid_write(frame, event, arg):
        global writes
        if event == "c_call" and arg is os.write:
            writes += 1
            if writes == 2:  # the header is written, the payload is next
                print("mid-write", flush=True)
                sys.stdin.read()

    if sys.argv[2] == "fsize":
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    else:
        sys.setprofile(pause_mid_write)
    store.put("ab" + "1" * 38, b"x" * (8 << 20))
    print("written", flush=True)
    """
)


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name]


def _killed_writer(root: Path, how: str) -> int:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        if how == "kill":
            assert proc.stdout is not None
            assert proc.stdout.readline() == "mid-write\n"
            proc.kill()
        return proc.wait(timeout=60)


@pytest.mark.parametrize("how", ["kill", "fsize"])
def test_a_writer_killed_mid_write_leaves_a_temporary_that_clear_removes(tmp_path, how):
    root = tmp_path / "cache"
    code = _killed_writer(root, how)
    assert code == (-signal.SIGKILL if how == "kill" else -signal.SIGXFSZ)
    (temp,) = _temporaries(root)
    assert temp.stat().st_size > 0
    store = CacheStore(str(root))
    assert store.keys() == ["00" + "0" * 38]  # the torn write is no entry
    assert store.info()["temporaries"] == 1
    assert store.clear() == 1  # the entry; the dead writer's temporary goes too
    assert _temporaries(root) == []
    assert _files(root) == [MARKER]


def test_cli_clear_removes_a_killed_writers_temporary(tmp_path):
    root = tmp_path / "cache"
    assert _killed_writer(root, "kill") == -signal.SIGKILL
    done = _cli("cache", "clear", "--store", str(root), "--older-than", "1h", cwd=tmp_path)
    assert done.returncode == 0, done
    assert "removed 0 cache entries older than 1h" in done.stdout
    assert "1 temporary file" in done.stdout
    assert _temporaries(root) == []
    assert len(CacheStore(str(root)).keys()) == 1


def test_a_failed_write_under_a_file_size_limit_leaves_nothing(tmp_path):
    root = tmp_path / "cache"
    script = textwrap.dedent(
        """
        import resource, signal, sys
        from daglite.cachestore import CacheStore
        from daglite.errors import StoreError

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python's default: the write fails
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            CacheStore(sys.argv[1]).put("ab" + "1" * 38, b"x" * (8 << 20))
        except StoreError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=60
    )
    assert "File too large" in done.stdout, done
    assert _temporaries(root) == []


def test_stale_temporaries_are_swept_when_a_writer_first_uses_their_folder(tmp_path):
    root = tmp_path / "cache"
    assert _killed_writer(root, "kill") == -signal.SIGKILL
    (dead,) = _temporaries(root)
    live = dead.with_name(f".{'ab' + '2' * 38}.tmp-{os.getpid()}-1-0123abcd")
    live.write_bytes(b"a live writer's temporary")  # this process is alive, and it is fresh
    forget_stores()
    CacheStore(str(root)).put("ab" + "3" * 38, "new")
    assert dead.exists()  # recent: its writer might still be running on another machine
    old = time.time() - 600
    os.utime(dead, (old, old))
    forget_stores()
    CacheStore(str(root)).put("ab" + "4" * 38, "newer")
    assert not dead.exists()  # older than the sweep age
    assert live.exists()


# -- entries ------------------------------------------------------------------------------


def test_cache_store_rejects_bad_ttl_and_specs():
    with pytest.raises(ValueError, match="ttl must be > 0"):
        CacheStore("memory://t", ttl=0)
    with pytest.raises(ValueError, match="ttl must be a number of seconds or None"):
        CacheStore("memory://t", ttl="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a cache store is a path, a URL"):
        open_cache_store(42)
    with pytest.raises(TypeError, match="a cache store is a path, a URL"):
        open_cache_store({"url": "x"})


def test_store_helpers_delete_keys_clear():
    store = memory_cache_store()
    store.put("k1", 1)
    store.put("k2", [2])
    assert store.keys() == ["k1", "k2"]
    assert store.get("k2") == (True, [2], "")
    assert store.delete("k1") and not store.delete("k1")
    assert store.clear() == 1 and store.keys() == []
    assert pickle.loads(pickle.dumps(store)).keys() == []


def test_clear_older_than_keeps_recent_entries_and_drops_corrupt_ones():
    clock = ManualClock()
    cache = memory_cache_store(clock=clock)
    cache.put("old", 1)
    clock.advance(3600)
    cache.put("new", 2)
    broken = "ba" + "0" * 38  # named like an entry daglite makes, but garbled
    cache.bytes.write(f"ba/{broken}", b"garbage")
    assert cache.clear(older_than=1800) == 2  # "old" and the corrupt entry
    assert cache.keys() == ["new"]
    assert cache.get("new") == (True, 2, "")
    assert cache.clear() == 1
    assert cache.keys() == []


def test_info_reports_entries_bytes_and_ages():
    clock = ManualClock()
    cache = memory_cache_store(clock=clock, ttl=60)
    cache.put("a", list(range(10)))
    clock.advance(30)
    cache.put("b", "x")
    clock.advance(10)
    facts = cache.info()
    assert facts["store"] == cache.bytes.safe_url
    assert facts["entries"] == 2
    assert facts["bytes"] > 0
    assert (facts["newest"], facts["oldest"], facts["ttl"]) == ("10 s ago", "40 s ago", "60 s")


# -- corruption -------------------------------------------------------------------------------


def _entry_path(root: Path, key: str) -> Path:
    return root / key[:2] / key


def _header_garbage(data: bytes) -> bytes:
    return b"\xde\xad\xbe\xef" + os.urandom(40) + data[44:]


def _good_crc_bad_pickle(data: bytes) -> bytes:
    payload = b"\x80\x05garbage that is not a pickle"
    header = struct.pack(">4sBdQIB", b"DGLC", 1, 0.0, len(payload), zlib.crc32(payload), 6)
    return header + b"pickle" + payload


CORRUPTIONS = {
    "empty": (lambda data: b"", "corrupt: empty entry"),
    "short header": (lambda data: data[:10], "corrupt: truncated header (10 bytes)"),
    "truncated": (lambda data: data[:-5], "corrupt: truncated data"),
    "garbage data": (
        lambda data: data[:-8] + bytes(b ^ 0xFF for b in data[-8:]),
        "corrupt: checksum mismatch",
    ),
    "garbage metadata": (_header_garbage, "corrupt: bad header"),
    "wrong format name": (lambda data: data[:30] + b"pockle" + data[36:], "corrupt: bad header"),
    "undecodable value": (_good_crc_bad_pickle, "corrupt: cannot unpickle"),
    "random bytes": (lambda data: os.urandom(len(data)), "corrupt: bad header"),
}


@pytest.mark.parametrize("shape", sorted(CORRUPTIONS))
def test_corrupt_entries_are_misses_with_a_warning_event(tmp_path, shape, caplog):
    spoil, reason = CORRUPTIONS[shape]
    root = tmp_path / "cache"
    f, calls = counted(cache=str(root))
    f(1)
    key = cache_key(f, 1)
    path = _entry_path(root, key)
    path.write_bytes(spoil(path.read_bytes()))
    events = []
    with caplog.at_level("WARNING", logger="daglite"), session(plugins=[events.append]):
        assert f(1) == {"sum": 1}
        assert f(1) == {"sum": 1}  # the entry was rewritten: a hit again
    assert len(calls) == 2
    missed = events_of("CacheMissed", events)
    assert len(missed) == 1 and missed[0].reason.startswith(reason), missed[0].reason
    assert key in caplog.text and "is a miss" in caplog.text
    assert len(events_of("CacheHit", events)) == 1


def test_unreadable_entry_is_a_miss(tmp_path):
    root = tmp_path / "cache"
    f, calls = counted(cache=str(root))
    f(1)
    path = _entry_path(root, cache_key(f, 1))
    path.unlink()
    path.mkdir()  # reading a directory fails with an OSError other than "not found"
    plan = CachePlan(open_cache_store(str(root)), cache_key(f, 1), None)
    assert plan.lookup() == (False, None)
    assert plan.miss_reason.startswith("unreadable: ")


# -- concurrency ------------------------------------------------------------------------------


def test_threads_writing_the_same_key_never_tear(tmp_path):
    store = CacheStore(str(tmp_path / "c"))
    values = [list(range(i, i + 20_000)) for i in range(6)]
    bad = []
    stop = threading.Event()

    def write(value):
        for _ in range(10):
            store.put("samekey", value)

    def read():
        while not stop.is_set():
            found, value, reason = store.get("samekey")
            if reason not in ("", "absent") or (found and value not in values):
                bad.append(reason)

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(v,)) for v in values]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert bad == []
    assert store.get("samekey")[1] in values
    assert store.keys() == ["samekey"]


def _process_writer(root: str, seed: int, rounds: int) -> None:
    store = CacheStore(root)
    for _ in range(rounds):
        store.put("samekey", [seed] * 20_000)


def test_processes_writing_the_same_key_never_tear(tmp_path):
    root = str(tmp_path / "c")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(root, i, 25)) for i in range(2)]
    for p in procs:
        p.start()
    store = CacheStore(root)
    bad = []
    seen = set()
    while any(p.is_alive() for p in procs):
        found, value, reason = store.get("samekey")
        if found:
            if len(set(value)) != 1 or len(value) != 20_000:
                bad.append("mixed")
            seen.add(value[0])
        elif reason != "absent":
            bad.append(reason)
        time.sleep(0.002)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert bad == []
    assert store.get("samekey")[0] is True
    assert store.keys() == ["samekey"]


def test_the_store_is_importable_from_daglite_caching_as_documented():
    from daglite import cachestore
    from daglite import caching

    assert caching.CacheStore is cachestore.CacheStore
    assert caching.open_cache_store is cachestore.open_cache_store
    assert caching.MARKER == cachestore.MARKER == ".daglite-cache"

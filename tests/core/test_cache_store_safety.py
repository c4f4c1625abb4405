"""Cache stores touch only their own files, inside their root, and are released.

Real files, real symlinks, real writer processes killed mid-write (SIGKILL, and SIGXFSZ from
a real file-size limit), the real `daglite cache` command.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from daglite import session
from daglite import task
from daglite.caching import MARKER
from daglite.caching import CacheStore
from daglite.caching import cache_key
from daglite.errors import StoreError
from daglite.stores import ByteStore
from daglite.stores import forget_stores


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
    from daglite.caching import CacheStore

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
        from daglite.caching import CacheStore
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

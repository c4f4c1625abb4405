"""`daglite.temporaries`: the names of atomic writes' temporary files, and when one is left over.

The end-to-end cases (a writer killed mid-write, the sweep and `cache clear`) are in
`test_cachestore.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys

from daglite.temporaries import TEMP_MAX_AGE
from daglite.temporaries import stale
from daglite.temporaries import temp_name
from daglite.temporaries import temp_writer


def test_a_temporary_is_hidden_next_to_its_target_and_names_its_writer():
    name = temp_name("root/ab/cdef")
    head, _, file = name.rpartition("/")
    assert head == "root/ab" and file.startswith(".cdef.tmp-")
    assert temp_writer(file) == os.getpid()
    assert temp_name("root/ab/cdef") != name  # two writes of one key never share a file


def test_only_temporary_names_have_a_writer():
    assert temp_writer("cdef") is None
    assert temp_writer(".cdef.tmp-12-34-nothex!") is None
    assert temp_writer(".cdef.tmp-12-34-0123abcd") == 12


def test_a_temporary_is_stale_once_old_enough_whoever_wrote_it():
    now = 1_000_000.0
    assert stale(os.getpid(), now - TEMP_MAX_AGE, now, None)
    assert stale(os.getpid(), now - 61, now, 60.0)
    assert not stale(os.getpid(), now - 59, now, 60.0)


def test_clear_also_takes_a_fresh_temporary_whose_writer_is_gone():
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    now = 1_000_000.0
    assert stale(int(gone.stdout), now, now, None)  # max_age None: what `clear` asks
    assert not stale(os.getpid(), now, now, None)  # this writer is alive
    assert not stale(int(gone.stdout), now, now, 60.0)  # a sweep goes by age alone

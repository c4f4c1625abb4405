"""Timeouts of task attempts: stop waiting for an attempt that overran, and stop the attempt.

A sync attempt runs in a daemon thread (`call_with_timeout`); when it overruns, the caller
stops waiting and asks the thread to stop by raising `AttemptAbandoned` inside it (an
asynchronous exception, through `ctypes`, imported only when an attempt is abandoned). An
async attempt runs as a task of its own (`await_with_timeout`) and is cancelled.

Either way the caller gets `AttemptTimedOut`, which the drivers of `daglite.drivers`
throw into the call's policy (`steps()`), where it becomes a public `TaskTimeoutError`.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any


class AttemptTimedOut(Exception):
    """Thrown into `steps()` by a driver when an attempt overran the task's timeout."""


class AttemptAbandoned(BaseException):
    """Raised asynchronously inside the thread of a timed-out attempt to stop its work."""


def call_with_timeout(func, args, kwargs, timeout: float, name: str) -> Any:
    """Run one attempt in a daemon thread and stop waiting for it after `timeout` seconds.

    The abandoned attempt cannot be killed from outside (only a process can be), so it is
    asked to stop: `AttemptAbandoned` is raised inside its thread at the next Python
    instruction. Pure-Python work stops at once; a blocking C call (a `sleep`, a socket
    read) finishes that call first. Its result, if any, is discarded.
    """
    return _Attempt(func, args, kwargs, name).wait(timeout)


class _Attempt:
    """One attempt of a task running in a daemon thread, which the caller may abandon.

    A lock makes "the attempt finished" and "the caller gave up" exclusive, so the stop
    request can only land while the attempt is still inside `_run`, where it is caught.
    """

    def __init__(self, func, args, kwargs, name: str) -> None:
        context = contextvars.copy_context()
        self._call = lambda: context.run(func, *args, **kwargs)
        self._guard = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self._outcome: tuple[bool, Any] = (False, None)
        self._thread = threading.Thread(
            target=self._run, name=f"daglite-timeout-{name}", daemon=True
        )

    def _run(self) -> None:
        try:
            try:
                outcome = (True, self._call())
            except BaseException as exc:
                outcome = (False, exc)
            with self._guard:
                if not self._abandoned:
                    self._outcome = outcome
                    self._done.set()
        except AttemptAbandoned:
            pass  # the caller stopped waiting: nothing is left to report

    def wait(self, timeout: float) -> Any:
        """Start the attempt; its value, its exception, or `AttemptTimedOut`."""
        self._thread.start()
        try:
            finished = self._done.wait(timeout)
        except BaseException:  # Ctrl-C while waiting: stop the attempt too
            self._abandon()
            raise
        if not finished and self._abandon():
            raise AttemptTimedOut(timeout)
        ok, value = self._outcome
        if ok:
            return value
        raise value

    def _abandon(self) -> bool:
        """Ask the attempt to stop unless it has just finished; True if it was abandoned."""
        import ctypes

        with self._guard:
            if self._done.is_set():
                return False
            self._abandoned = True
            if self._thread.ident is not None:  # always: the thread was started
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread.ident), ctypes.py_object(AttemptAbandoned)
                )
            return True


async def await_with_timeout(coro, timeout: float) -> Any:
    """Await `coro` as a task of its own; cancel it after `timeout` seconds.

    Waiting with `asyncio.wait` (not `wait_for`) tells our timeout apart from a
    `TimeoutError` the task raises itself, without comparing clocks.
    """
    import asyncio

    attempt = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({attempt}, timeout=timeout)
    except BaseException:  # we were cancelled ourselves: take the attempt with us
        attempt.cancel()
        raise
    if done:
        return attempt.result()
    attempt.cancel()
    await asyncio.wait({attempt})  # let it run its cleanup (finally blocks, except clauses)
    if not attempt.cancelled():
        attempt.exception()  # retrieved: it ends with the timeout, whatever it did last
    raise AttemptTimedOut(timeout)

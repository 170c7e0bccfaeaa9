"""Where cells run: in this process, in a pool of worker processes, or as Ray tasks on a cluster.

A backend only has to turn ``submit(fn, *args)`` into a :class:`concurrent.futures.Future`; the runners schedule,
save and resume the same way on every backend, so results do not depend on where the cells ran.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

__all__ = ["Backend", "InlineBackend", "PoolBackend", "RayBackend", "make_backend", "BACKENDS"]

BACKENDS = ("local", "ray")


class Backend:
    """Runs callables and returns futures. ``capacity`` is how many submissions may be in flight usefully."""

    capacity: int = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        pass

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(cancel=exc[0] is not None)


class InlineBackend(Backend):
    """Runs each call at submission, in this process (a Ctrl-C reaches the running cell at once)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future


def _ignore_interrupt() -> None:
    # Ctrl-C reaches the whole process group; only the parent decides what an interrupt means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class PoolBackend(Backend):
    """A pool of ``workers`` processes (spawned, so no torch thread pool is inherited across a fork). Workers ignore
    Ctrl-C; the parent cancels what is queued and stops the workers, whose running calls are lost."""

    def __init__(self, workers: int):
        self.capacity = workers
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_interrupt
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            # shutdown() would wait for the running calls; an interrupted run should stop now
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                process.terminate()
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class RayBackend(Backend):
    """Each call becomes a Ray task (one CPU). ``address`` joins an existing cluster ("auto" or "ray://host:port");
    None starts a local instance with ``workers`` CPUs. A task whose worker dies is retried by Ray
    (``max_retries``), so a killed worker loses only the call it was running."""

    def __init__(self, address: str | None = None, workers: int | None = None, max_retries: int = 3):
        try:
            import ray
        except ImportError as exc:
            raise RuntimeError("the ray backend needs Ray: pip install 'geodyn[ray]'") from exc
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is not None:
                kwargs["address"] = address
            elif workers is not None:
                kwargs["num_cpus"] = workers
            ray.init(**kwargs)
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._max_retries = max_retries
        self._remote: dict[Callable[..., Any], Any] = {}
        self._refs: dict[int, Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(num_cpus=1, max_retries=self._max_retries)(fn)
        ref = remote.remote(*args)
        future = ref.future()
        self._refs[id(future)] = ref  # kept only while running, so finished results are not pinned in Ray's store
        future.add_done_callback(lambda f: self._refs.pop(id(f), None))
        return future

    def close(self, cancel: bool = False) -> None:
        if cancel:
            # on a shared cluster the tasks would outlive the driver's interest in them
            for ref in list(self._refs.values()):
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # already finished or gone
                    pass
        self._refs.clear()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


def make_backend(name: str = "local", workers: int = 1, address: str | None = None) -> Backend:
    """``local`` with one worker runs inline; with more, a process pool. ``ray`` runs Ray tasks."""
    if name == "local":
        if address is not None:
            raise ValueError("--address needs --backend ray")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        return InlineBackend() if workers == 1 else PoolBackend(workers)
    if name == "ray":
        return RayBackend(address=address, workers=workers if address is None else None)
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")

"""Progress bars for long computations: ``progress=True`` on the verbs, and the batch command.

Local dask schedulers (threads, processes, synchronous) report each finished task to a bar;
under a ``distributed`` client the work is persisted on the cluster and shown with
``distributed.progress`` (a widget in a notebook, text in a terminal). The bar is
``tqdm.auto`` when tqdm is installed (a widget in Jupyter with ipywidgets), else one line of
text on standard error, redrawn in place.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TypeVar

__all__ = ["ProgressBar", "compute"]

T = TypeVar("T")


class ProgressBar:
    """A minimal progress bar: ``tqdm.auto`` when installed, else a text line on stderr.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with ProgressBar(4, "demo", stream=out, use_tqdm=False) as bar:
    ...     bar.update(4)
    >>> "demo" in out.getvalue() and "4/4" in out.getvalue()
    True
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        unit: str = "task",
        stream: Any = None,
        use_tqdm: bool = True,
    ) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.n = 0
        self._drawn = -1
        self._t0 = time.perf_counter()
        self._last = 0.0
        self._tqdm = None
        if use_tqdm and stream is None:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                pass
            else:
                self._tqdm = tqdm(total=self.total, desc=desc, unit=unit)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)
            return
        now = time.perf_counter()
        if now - self._last >= 0.5 or self.n >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        self._drawn = self.n
        frac = self.n / self.total if self.total else 1.0
        width = 30
        filled = round(width * frac)
        elapsed = now - self._t0
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        line = (
            f"\r{self.desc}: [{'#' * filled}{'.' * (width - filled)}] {self.n}/{self.total} "
            f"{self.unit}s, {elapsed:.0f} s"
            + (f", {eta:.0f} s left" if self.n < self.total else "")
        )
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            if self._drawn != self.n:
                self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _dask_callback(desc: str):
    from dask.callbacks import Callback

    class _Bar(Callback):
        def _start_state(self, dsk, state) -> None:
            total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
            self.bar = ProgressBar(max(total, 1), desc)

        def _posttask(self, key, result, dsk, state, worker_id) -> None:
            self.bar.update(1)

        def _finish(self, dsk, state, errored) -> None:
            self.bar.close()

    return _Bar()


def compute(obj: T, desc: str = "xdownscale") -> T:
    """Compute ``obj`` (a dask-backed DataArray or Dataset) with a progress bar.

    Under a distributed client the result is *persisted* on the cluster (still lazy, its
    chunks in the workers' memory) and ``distributed.progress`` shows it; otherwise it is
    computed with the local scheduler and a bar that counts finished tasks.
    """
    if getattr(obj, "__dask_graph__", lambda: None)() is None:
        return obj  # already in memory
    client = None
    if "distributed" in sys.modules:
        from .cluster import current_client

        client = current_client()
    if client is not None:
        from distributed import progress

        persisted = client.persist(obj)
        progress(persisted)
        return persisted
    with _dask_callback(desc):
        return obj.compute()  # type: ignore[attr-defined]

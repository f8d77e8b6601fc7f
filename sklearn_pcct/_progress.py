"""Progress reports of long operations, for ``verbose > 0``.

A long operation (a large ``fit`` or ``partial_fit``, a maximin ordering,
``vecchia_neighbors``, the demo) asks :func:`progress` for a reporter and
calls it with the number of units done so far between kernel calls; kernels
themselves never report. The reporter is

- silent when ``verbose <= 0`` (the default everywhere), or when
  ``verbose == 1`` and the operation is smaller than ``min_total``;
- a :mod:`tqdm` progress bar on standard error when that is a terminal, or
  in a Jupyter notebook;
- otherwise (a log file, a CI job, a pipe) a line on standard error at
  every tenth of the work, and a last line with the total time.
"""

import sys
import time

__all__ = ["progress", "LARGE"]

# The size from which verbose=1 reports (verbose >= 2 reports everything).
LARGE = 100_000

_PREFIX = "[sklearn_pcct]"


class _Silent:
    """The reporter of a silent operation: does nothing (and is falsy).

    Callers that choose a slower, reporting code path only when someone
    listens pass ``report or None``.
    """

    def __bool__(self):
        return type(self) is not _Silent

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, done):
        pass


class _Lines(_Silent):
    """Reports as lines: at every tenth of the work and at the end."""

    def __init__(self, total, desc, unit, stream):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.start = time.perf_counter()
        self.next_tenth = 1
        self._write(f"{desc}: {total:,} {unit}")

    def _write(self, text):
        self.stream.write(f"{_PREFIX} {text}\n")
        self.stream.flush()

    def __call__(self, done):
        tenth = (10 * done) // max(self.total, 1)
        if tenth >= self.next_tenth and done < self.total:
            self.next_tenth = tenth + 1
            elapsed = time.perf_counter() - self.start
            self._write(
                f"{self.desc}: {10 * tenth:3d}% ({done:,}/{self.total:,} {self.unit}, "
                f"{elapsed:.1f} s)"
            )

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            elapsed = time.perf_counter() - self.start
            self._write(f"{self.desc}: done in {elapsed:.2f} s")
        return False


class _Bar(_Silent):
    """Reports as a :mod:`tqdm` bar (a widget in a notebook)."""

    def __init__(self, total, desc, unit, stream, tqdm):
        self.bar = tqdm(total=total, desc=desc, unit=" " + unit, file=stream,
                        leave=True, mininterval=0.2, unit_scale=total >= 10_000)
        self.done = 0

    def __call__(self, done):
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def __exit__(self, exc_type, *exc):
        if exc_type is None and self.done < self.bar.total:
            self.bar.update(self.bar.total - self.done)
        self.bar.close()
        return False


def _in_notebook():
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _tqdm(interactive):
    """The tqdm class to draw with, or None for log lines."""
    if not interactive:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm


def progress(verbose, total, desc, *, unit="points", min_total=None, stream=None):
    """A progress reporter for an operation of ``total`` units.

    Parameters
    ----------
    verbose : int or bool
        The caller's ``verbose``: ``<= 0`` is silent, ``1`` reports
        operations of at least ``min_total`` units, ``>= 2`` reports all.
    total : int
        Units of work (points inserted, points ordered, queries answered).
    desc : str
        What is running, e.g. ``"PCCTNeighbors.fit"``.
    unit : str, default="points"
        Name of the units.
    min_total : int, default=None
        The smallest operation reported at ``verbose=1``; ``None`` is
        :data:`LARGE` (100,000).
    stream : file-like, default=None
        Where to report; ``None`` is ``sys.stderr`` at call time.

    Returns
    -------
    reporter : context manager and callable
        Use as ``with progress(...) as report: ... report(n_done)``; it
        closes the bar (or writes the last line) on exit.

    Examples
    --------
    >>> import io
    >>> from sklearn_pcct._progress import progress
    >>> log = io.StringIO()
    >>> with progress(1, 4, "demo", min_total=0, stream=log) as report:
    ...     for done in range(1, 5):
    ...         report(done)
    >>> print(log.getvalue().splitlines()[0])
    [sklearn_pcct] demo: 4 points
    """
    if min_total is None:
        min_total = LARGE
    if not verbose or verbose <= 0 or (verbose == 1 and total < min_total):
        return _Silent()
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    interactive = _in_notebook() or bool(isatty is not None and isatty())
    tqdm = _tqdm(interactive)
    if tqdm is None:
        return _Lines(total, desc, unit, stream)
    return _Bar(total, desc, unit, stream, tqdm)

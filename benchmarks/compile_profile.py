"""Where the cold Numba compile time goes: a pytest plugin and its report.

The test suite's cold run is mostly Numba compiling kernels. Load this file
as a pytest plugin to record every compile (function, argument types, time
with and without the nested compiles it triggered), then print the totals:

    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=benchmarks \\
        python -m pytest -o addopts="" -p compile_profile -p no:cacheprovider -q
    python benchmarks/compile_profile.py compile_profile_*.json

Only real compiles are recorded (Numba emits ``numba:compile`` after a cache
miss), so run it with an empty cache. Records go to
``compile_profile_<pid>.json`` in the working directory, one file per
process (xdist workers included).
"""

import atexit
import collections
import json
import os
import sys
import time

_stack = []
_records = []


def _install():
    from numba.core import event

    class _Listener(event.Listener):
        def on_start(self, ev):
            _stack.append([time.perf_counter(), 0.0])

        def on_end(self, ev):
            start, nested = _stack.pop()
            total = time.perf_counter() - start
            if _stack:
                _stack[-1][1] += total
            data = ev.data or {}
            func = getattr(data.get("dispatcher"), "py_func", None)
            name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"
            _records.append((name, str(data.get("args")), total, total - nested))

    event.register("numba:compile", _Listener())
    atexit.register(_dump)


def _dump():
    with open(f"compile_profile_{os.getpid()}.json", "w") as f:
        json.dump(_records, f)


def pytest_configure(config):
    """Start recording when pytest loads this file as a plugin."""
    _install()


def report(paths, top=30):
    """Print compile seconds per function (own time, nested compiles excluded)."""
    own = collections.defaultdict(float)
    count = collections.Counter()
    for path in paths:
        with open(path) as f:
            for name, _args, _total, excl in json.load(f):
                own[name] += excl
                count[name] += 1
    print(f"{sum(count.values())} compiles, {sum(own.values()):.1f} s in all")
    for name, seconds in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{seconds:8.1f} s  {count[name]:4d} versions  {name}")


if __name__ == "__main__":
    report(sys.argv[1:])

"""Command line: ``python -m sklearn_pcct demo``."""

import argparse
import sys

from ._demo import run_demo


def main(argv=None):
    """Run the command line interface.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 when every checked row was exact.

    Examples
    --------
    >>> from sklearn_pcct.__main__ import main
    >>> main(["demo", "--n-samples", "300", "--n-check", "10"])  # doctest: +ELLIPSIS
    warm-up (Numba compile or cache load): ...
    all checked rows exact
    0
    """
    parser = argparse.ArgumentParser(prog="python -m sklearn_pcct")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="exact kNN graphs of a spatial dataset and of digits, next to the peers"
    )
    demo.add_argument("--n-samples", type=int, default=100_000)
    demo.add_argument("--n-neighbors", type=int, default=15)
    demo.add_argument("--n-jobs", type=int, default=-1)
    demo.add_argument("--n-check", type=int, default=200)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="show progress (-vv: also for small datasets)",
    )
    args = parser.parse_args(argv)
    ok = run_demo(
        args.n_samples, args.n_neighbors, args.n_jobs, args.n_check, args.seed,
        verbose=args.verbose,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

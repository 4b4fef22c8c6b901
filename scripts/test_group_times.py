"""Seconds per xdist group of the test suite, from a JUnit file of a run (``pytest --junitxml=F``):
the groups as ``tests/conftest.py`` forms them (one per module; the Spark, broker and influxd users
one each, joined where a module uses two), the longest first, and the ``LONG_GROUPS`` tuple that
deals them in that order (``make test`` deals the listed groups first, the rest by number of tests;
a slow module of one or two tests left to the end of the deal is the run's tail on one worker).

    python scripts/test_group_times.py JUNIT.xml [--top 30] [--list 25]

It also plays the deal of the two workers (pytest-xdist's ``loadgroup``: a worker left with two
tests or fewer is sent the next group) with the tests' times of that run, in the order the
conftest deals and in the order of the printed tuple, and prints each worker's end: the later one
is the run's length, the gap between them a worker idle at the end.
"""

from __future__ import annotations

import argparse
import collections
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


class _Groups:
    """A pytest plugin that records each collected item's xdist group (as the conftest marks it)."""

    def __init__(self) -> None:
        self.group: dict[str, str] = {}
        self.count: collections.Counter = collections.Counter()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items) -> None:
        for item in items:
            g = item.get_closest_marker("xdist_group")
            name = g.args[0] if g is not None else item.nodeid.split("::")[0]
            self.group[item.nodeid.split("::")[0]] = name
            self.count[name] += 1


def _module_times(junit: Path) -> dict[str, list[float]]:
    """Each test module's tests' seconds, in the run's order: a test case's ``classname`` is its
    module's dotted path (plus a class, if any)."""
    times: dict[str, list[float]] = collections.defaultdict(list)
    for case in ET.parse(junit).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")
        for k in range(len(parts), 0, -1):    # the longest prefix that is a file: the module
            path = "/".join(parts[:k]) + ".py"
            if Path(path).is_file():
                times[path].append(float(case.get("time", 0.0)))
                break
    return times


def _deal(groups: list[tuple[str, list[float]]], workers: int = 2) -> list[float]:
    """When each worker ends if ``groups`` (name, its tests' seconds) are dealt in this order as
    xdist's LoadScopeScheduling does: one group to each worker, another to a worker whenever it has
    two tests or fewer pending (``_reschedule``), a worker runs its tests in the order received."""
    queue = list(groups)
    pending: list[list[float]] = [[] for _ in range(workers)]
    clock = [0.0] * workers
    for w in range(workers):
        if queue:
            pending[w] += queue.pop(0)[1]
    for w in range(workers):
        if queue and len(pending[w]) <= 2:
            pending[w] += queue.pop(0)[1]
    while any(pending):
        w = min((k for k in range(workers) if pending[k]), key=lambda k: clock[k] + pending[k][0])
        clock[w] += pending[w].pop(0)
        if queue and len(pending[w]) <= 2:
            pending[w] += queue.pop(0)[1]
    return clock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("junit", type=Path)
    ap.add_argument("--top", type=int, default=30, help="groups to print")
    ap.add_argument("--list", type=int, default=25, help="groups to name in LONG_GROUPS")
    args = ap.parse_args()
    rec = _Groups()
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests"], plugins=[rec])
    secs: collections.Counter = collections.Counter()
    times: dict[str, list[float]] = collections.defaultdict(list)   # each group's tests
    for module, t in _module_times(args.junit).items():
        secs[rec.group.get(module, module)] += sum(t)
        times[rec.group.get(module, module)] += t
    total = sum(secs.values())
    print(f"\n{total:.0f} s of tests in {len(secs)} groups; the longest:")
    for name, s in secs.most_common(args.top):
        print(f"{s:8.1f} s {rec.count[name]:5d} tests  {name}")
    print("\nLONG_GROUPS = (" + ", ".join(repr(n) for n, _ in secs.most_common(args.list)) + ")")
    sys.path.insert(0, str(Path.cwd()))
    from tests.conftest import _rank    # the conftest's deal: its listed groups, then by number of tests

    dealt = sorted(times, key=lambda g: (_rank(g), -rec.count[g]))
    longest = [n for n, _ in secs.most_common(args.list)]
    listed = sorted(times, key=lambda g: (longest.index(g) if g in longest else len(longest), -rec.count[g]))
    for what, order in (("the conftest's deal", dealt), ("the printed tuple's deal", listed)):
        ends = _deal([(g, times[g]) for g in order])
        print(f"{what}: workers end at " + ", ".join(f"{e:.0f} s" for e in ends)
              + f" (last groups: {', '.join(order[-3:])})")


if __name__ == "__main__":
    main()

"""Shared fixtures: a fresh store per test and one small simulated fleet per session."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The xdist workers are the parallelism (one per core): torch's and BLAS's own thread pools on top
    # of them oversubscribe the cores (on a loaded machine the torch tests slowed from seconds to minutes).
    # Set before anything imports torch or numpy's BLAS; subprocesses inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

# Hypothesis profiles. `make test` (what CI runs, .ci/run) loads "repeatable" (`--hypothesis-profile`
# in the Makefile): the examples are derived from each test's own code (`derandomize`), not drawn anew
# each run, so the same commit gives the same result on every run and machine (the project rule:
# re-running the same input gives the same result); no example database (one run's failures do not
# change the next run's examples); no deadline and no too_slow health check (both depend on the
# machine's speed). A run of pytest without the option explores: Hypothesis's default profile draws
# new examples each run and replays failures from .hypothesis/ (Hypothesis loads its own
# derandomized "ci" profile instead when CI is set). A failure in `make test` prints the example
# and a reproduce blob (`print_blob`).
settings.register_profile("repeatable", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "t.duckdb")
    yield s
    s.close()


@pytest.fixture(scope="session")
def small_fleet(tmp_path_factory) -> dict:
    """12 meters x 4 days at 5 min, every fault type switched on (messy by default)."""
    out = tmp_path_factory.mktemp("fleet")
    result = simulate(SimConfig(meters=12, days=4, seed=11, fault_share=0.5, profile_days=1.0,
                                         reset_share=0.5, outage_share=0.5), out)
    result["dir"] = out
    return result


@pytest.fixture(scope="session")
def clean_fleet() -> dict:
    """In-memory clean fleet (no jitter, duplicates, holes or disorder) for physics checks."""
    cfg = SimConfig(meters=30, days=5, seed=3, fault_share=0.6, profile_days=1.0, jitter_s=0, duplicate_rate=0,
                    nan_rate=0, disorder_rate=0, background_loss=0)
    result = simulate(cfg)
    result["config"] = cfg
    return result


def frame_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Assert two store query results hold the same readings (order and dtype independent)."""
    cols = sorted(set(a.columns) | set(b.columns))
    a = a.reindex(columns=cols).sort_values(["meter_id", "ts"]).reset_index(drop=True)
    b = b.reindex(columns=cols).sort_values(["meter_id", "ts"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory):
    """One real mosquitto per test run on 127.0.0.1 and a free port (tests use their own topics).
    A test that restarts a broker starts its own ``tests.support.services.Mosquitto``."""
    from tests.support.services import Mosquitto, free_port

    broker = Mosquitto(free_port(), tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


def _build_each_cli_command_once() -> None:
    """``typer.testing.CliRunner.invoke(app)`` builds the Click command from the Typer app on every
    call: 0.1-0.25 s for wattwatch's ~40 commands (inspecting each one's signature), a third of an
    in-process ``wattwatch ingest`` (the hostile corpus: 651 of them). A process builds it once; so
    do the tests now, per app object and what is registered on it (an app that gains a command, a
    sub-app or a callback after its first run is built again, as Typer would: rtt)."""
    import typer.testing

    build = getattr(typer.testing, "_get_command", None)
    if build is None:                   # another Typer: build per call, as it does
        return
    built: dict[int, tuple[object, tuple, object]] = {}

    def registered(typer_app) -> tuple:
        """What building reads off the app, by identity: its commands, callbacks, sub-apps (theirs too)."""
        return (tuple(map(id, typer_app.registered_commands)), id(typer_app.registered_callback),
                id(typer_app.info), tuple((id(g), registered(g.typer_instance)) if g.typer_instance is not None
                                          else (id(g),) for g in typer_app.registered_groups))

    def get_command(typer_app):
        key = registered(typer_app)
        hit = built.get(id(typer_app))
        if hit is None or hit[0] is not typer_app or hit[1] != key:
            hit = built[id(typer_app)] = (typer_app, key, build(typer_app))
        return hit[2]

    typer.testing._get_command = get_command


_build_each_cli_command_once()


def pytest_configure(config):
    # pytest puts its own warning filters around every test, so the store's module-level filter for
    # DuckDB's hint on the live path's Arrow result (src/wattwatch/store/duck.py) needs saying here
    # too (it made ~1,750 warnings of the suite's summary).
    config.addinivalue_line("filterwarnings", r"ignore:Arrow output on a DB-API result:UserWarning")


# The test session's driver JVM (tt10): the C1 compiler only and the serial collector. A test run
# is hundreds of small Spark jobs, each compiling its own generated code; the C2 compiler's threads
# (and G1's, which the JVM picks on this 2-core box) spent about 40 % of the JVM's CPU optimising
# code that runs for milliseconds (9 reader and feature tests at -n 1, alternated, load 19-26: JVM
# CPU 134 s -> 76 s). Neither changes what a job computes; users' sessions keep the JVM's defaults.
SPARK_TEST_CONF = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session per test run, driver bound to 127.0.0.1 (``SPARK_TEST_CONF``)."""
    from wattwatch.runners.spark import session

    s = session("local[2]", app="wattwatch-tests", conf=SPARK_TEST_CONF)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    """One real InfluxDB 1.x per test run on 127.0.0.1 and a free port (tests use their own
    databases). A test that stops the server starts its own ``tests.support.services.Influxd``."""
    from tests.support.services import Influxd, free_port

    server = Influxd(free_port(), tmp_path_factory.mktemp("influxd")).start()
    yield server
    server.stop()



# Two pytest-xdist workers (`make test`: ``-n 2 --dist loadgroup``). A worker is a process with its own
# session fixtures, so every module that uses one of the shared services below runs on the worker that
# holds it: the modules using the Spark session are one group, those using the broker another, those
# using influxd a third (groups that share a module are joined), so there is still one Spark session,
# one mosquitto and one influxd per run. Every other module is a group of its own, so its
# module-scoped fixtures are built once. Without xdist the marks do nothing.
SHARED_SERVICES = ("spark", "mqtt_broker", "influxd")


@pytest.hookimpl(tryfirst=True)        # before xdist's own, which reads the marks into the node ids
def pytest_collection_modifyitems(config, items):
    used: dict[str, set[str]] = {}
    for item in items:
        used.setdefault(item.nodeid.split("::")[0], set()).update(
            f for f in getattr(item, "fixturenames", ()) if f in SHARED_SERVICES)
    joined = {f: {f} for f in SHARED_SERVICES}            # services a module uses together share a worker
    for fixtures in used.values():
        merged = set().union(*(joined[f] for f in fixtures)) if fixtures else set()
        for f in merged:
            joined[f] = merged
    group_of = {}
    for item in items:
        fixtures = used[item.nodeid.split("::")[0]]
        group_of[item.nodeid] = "+".join(sorted(joined[min(fixtures)])) if fixtures else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group_of[item.nodeid]))
    if hasattr(config, "workerinput"):
        # On an xdist worker (the workers' orders must agree, and `make test` passes
        # --no-loadscope-reorder so the groups are dealt in this order): the longest groups first, so no
        # worker is left with a long one at the end; the rest by number of tests, as xdist would.
        sizes = Counter(group_of.values())
        items.sort(key=lambda it: (_rank(group_of[it.nodeid]), -sizes[group_of[it.nodeid]]))
    if getattr(config.option, "loadgroup", False):
        _name_groups(items, group_of)


def _name_groups(items, group_of) -> None:
    """xdist's loadgroup reads an item's group from an ``@group`` suffix of its node id, which its own
    hook adds by writing ``item._nodeid``; pytest 9.2 keeps the id in ``item._id`` and that write is
    lost, so every test was dealt alone (pytest-xdist issue #1386). Add the suffix here on such a
    pytest, and refuse to run rather than start a second Spark session or broker if it did not take."""
    for item in items:
        want = f"{item.nodeid}@{group_of[item.nodeid]}"
        if hasattr(item, "_id") and "_nodeid" not in getattr(item, "__dict__", {}):
            from _pytest.nodeid import coerce_node_id

            item._id = coerce_node_id(want)
        else:
            continue                        # an older pytest: xdist's own hook adds the suffix
        if item.nodeid != want:
            raise pytest.UsageError(f"cannot give {item.nodeid} its xdist group: run `make test TEST_WORKERS=0`")


# Groups that took the longest at the last measurement (`--durations`, 2026-12-03), dealt first; then
# the modules of a few slow tests (2026-12-06: the CI run's slowest tests and the modules of six tests
# or fewer timed side by side, the longest first). The rest are dealt by number of tests, so these
# came last, and one of them (20-70 s on CI) was the run's tail on one worker while the other idled.
# `python scripts/test_group_times.py JUNIT.xml` prints this tuple from a run's JUnit file.
LONG_GROUPS = ("spark", "influxd", "mqtt_broker", "tests/app/test_cli.py", "tests/live/test_rejudge.py",
               "tests/dashboard/test_browser.py", "tests/edge/test_tamper.py", "tests/live/test_stream.py",
               "tests/store/test_faults.py", "tests/store/test_store.py", "tests/dashboard/test_models.py",
               "tests/live/test_rev50.py", "tests/detect/test_fleet_quality.py",
               "tests/detect/test_packets_calm_sparse.py", "tests/live/test_stream_imbalance_hold.py",
               "tests/live/test_stream_calm_edges.py", "tests/detect/test_cadence_twice.py", "tests/test_readme.py",
               "tests/detect/test_stitch_calm.py", "tests/live/test_rejudge_hours.py",
               "tests/live/test_stream_gap_cuts.py", "tests/detect/test_engine.py", "tests/live/test_demo_snmp.py",
               "tests/detect/test_stitch_hours.py", "tests/detect/test_stitch_hours_building.py",
               "tests/live/test_stream_tiers.py", "tests/detect/test_learned_busy_review.py",
               "tests/dashboard/test_live_browser.py", "tests/detect/test_stitch_bins.py",
               "tests/grid/test_cli_grid.py", "tests/detect/test_stitch_staggered.py", "tests/ingest/test_messy.py",
               "tests/live/test_stream_calm.py", "tests/app/test_progress.py", "tests/report/test_browser.py",
               "tests/report/test_cli_report.py", "tests/store/test_properties.py",
               "tests/detect/test_imbalance_hold_stitch.py", "tests/detect/test_macd_standby.py",
               "tests/live/test_health_restart.py", "tests/report/test_scale.py",
               "tests/detect/test_macd_building_floor.py")


def _rank(group: str) -> int:
    return LONG_GROUPS.index(group) if group in LONG_GROUPS else len(LONG_GROUPS)

"""One place that starts Spark the way wattwatch needs it.

Local mode binds the driver to 127.0.0.1 (never another address), runs the Python workers with
the interpreter that runs wattwatch (``PYSPARK_PYTHON``), switches the web UI off and keeps
shuffles small; a cluster master (``spark://…``, ``yarn``) gets the same settings minus the
local-only ones. Every Spark path in wattwatch asks :func:`session` for its session, so tests
share one per run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from wattwatch.errors import WattwatchError


class SparkUnavailable(WattwatchError):
    """pyspark or a Java 17 runtime is missing."""


def java_major() -> int | None:
    """The major version of the ``java`` on the PATH (or under ``JAVA_HOME``), None if none."""
    home = os.environ.get("JAVA_HOME")
    exe = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not exe or not os.path.exists(exe):
        return None
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    for token in out.split():
        token = token.strip('"')
        if token[:1].isdigit():
            return int(token.split(".")[0])
    return None


def session(master: str = "local[2]", app: str = "wattwatch", conf: dict[str, str] | None = None):
    """The active SparkSession, or a new one on ``master``.

    Reuses a running session whatever its master (Spark allows one per process); pass
    ``conf`` for extra ``spark.*`` settings of a new session.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is a dependency
        raise SparkUnavailable("pyspark is not installed: run `make setup` (it installs pyspark)") from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    major = java_major()
    if major is None or major < 17:
        raise SparkUnavailable(
            f"Spark needs a Java 17 runtime; found {'none' if major is None else f'Java {major}'}: "
            "run `make setup` (it installs openjdk-17-jre-headless) or set JAVA_HOME")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    local = master.startswith("local")
    if local:
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    b = SparkSession.builder.master(master).appName(app)
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.shuffle.partitions": "8" if local else "200",
        "spark.python.worker.reuse": "true",
    }
    if local:
        settings.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                         "spark.driver.memory": "2g"})
    settings.update(conf or {})
    for k, v in settings.items():
        b = b.config(k, v)
    s = b.getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    return s

"""The dashboard's settings, from the environment the ``wattwatch dashboard`` command sets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV = {
    "db": "WATTWATCH_DB",
    "users_file": "WATTWATCH_DASHBOARD_USERS_FILE",
    "read_only": "WATTWATCH_DASHBOARD_READ_ONLY",
    "session_minutes": "WATTWATCH_DASHBOARD_SESSION_MINUTES",
    "idle_minutes": "WATTWATCH_DASHBOARD_IDLE_MINUTES",
    "uploads": "WATTWATCH_DASHBOARD_UPLOADS",
    "fleet": "WATTWATCH_DASHBOARD_FLEET",
    "grid": "WATTWATCH_DASHBOARD_GRID",
    "events": "WATTWATCH_DASHBOARD_EVENTS",
    "status": "WATTWATCH_DASHBOARD_STATUS",
    "refresh_s": "WATTWATCH_DASHBOARD_REFRESH_S",
    "log": "WATTWATCH_DASHBOARD_LOG",
    "models_dir": "WATTWATCH_DASHBOARD_MODELS_DIR",
    "proxy_header": "WATTWATCH_DASHBOARD_PROXY_HEADER",
}
# The headers a proxy on this host may name the client in (``--proxy-header``).
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP")


@dataclass(frozen=True)
class Settings:
    db: Path | None = None
    users_file: Path | None = None
    read_only: bool = False
    session_minutes: float = 480.0
    idle_minutes: float = 30.0
    uploads: Path | None = None
    fleet: Path | None = None
    grid: Path | None = None
    events: Path | None = None
    status: Path | None = None
    refresh_s: float = 5.0
    log: Path | None = None
    models_dir: Path | None = None   # model folders (`wattwatch train --out`) the Data page may use
    # The header a TLS proxy on this host names the client in (one of PROXY_HEADERS); None: no proxy,
    # a connection from this host is "local" whatever headers it sends.
    proxy_header: str | None = None

    @classmethod
    def from_env(cls, environ=None) -> "Settings":
        e = os.environ if environ is None else environ
        path = lambda k: Path(e[ENV[k]]) if e.get(ENV[k]) else None  # noqa: E731
        num = lambda k, d: float(e[ENV[k]]) if e.get(ENV[k]) else d  # noqa: E731
        db = path("db")
        return cls(db=db, users_file=path("users_file"),
                   read_only=e.get(ENV["read_only"], "").lower() in ("1", "true", "yes"),
                   session_minutes=num("session_minutes", 480.0), idle_minutes=num("idle_minutes", 30.0),
                   uploads=path("uploads") or (db.parent / (db.name + ".uploads") if db else None),
                   fleet=path("fleet"), grid=path("grid"), events=path("events"), status=path("status"),
                   refresh_s=num("refresh_s", 5.0), log=path("log"), models_dir=path("models_dir"),
                   proxy_header=e.get(ENV["proxy_header"]) or None)

    def to_env(self) -> dict[str, str]:
        out = {}
        for k, var in ENV.items():
            v = getattr(self, k)
            if v is None or v is False:
                continue
            out[var] = "1" if v is True else str(v)
        return out


_LOGGING: set = set()


def configure_logging(log: Path | None) -> None:
    """Sign-ins, refusals and every write (``wattwatch.dashboard.*`` loggers) to stderr and, with
    ``log``, appended to that file; once per process."""
    import logging
    import sys

    key = str(log)
    if key in _LOGGING:
        return
    _LOGGING.add(key)
    logger = logging.getLogger("wattwatch.dashboard")
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    if not any(getattr(h, "_wattwatch", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h._wattwatch = True
        h.setFormatter(fmt)
        logger.addHandler(h)
    if log is not None:
        fh = logging.FileHandler(log, encoding="utf-8")
        fh._wattwatch = True
        fh.setFormatter(fmt)
        logger.addHandler(fh)

"""One reader for every TOML file a user hands wattwatch (site, edge, detector, devices, grid, users,
column-mapping configs and register maps).

Each of these files is only ever *read* (``tomllib`` builds plain dicts, lists, strings and numbers; no
code runs), and whatever is wrong with it becomes one clear error naming the file: missing, a folder,
unreadable, not UTF-8 (a leading byte-order mark, as some Windows editors write, is accepted), not TOML
(``tomllib``'s message carries the line and column), or nested so deeply that parsing it would exhaust
the interpreter's stack (``tomllib`` recurses once per level and raises :class:`RecursionError`, which
used to escape as a traceback from most callers)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from wattwatch.errors import ConfigError


def read_toml(path: str | Path, what: str, error: type[Exception] = ConfigError) -> dict:
    """The document in *path*; *what* names the file's kind in messages ("site config", "devices
    file"); *error* is the exception type the caller's users already catch."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{p}: is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: not UTF-8 text (byte {exc.start}); a {what} is a UTF-8 TOML file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: cannot read {what}: {exc}") from None
    except RecursionError:
        raise error(f"{p}: cannot read {what}: nested too deeply") from None

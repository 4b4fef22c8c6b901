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
from wattwatch.userfile import read_text


def read_toml(path: str | Path, what: str, error: type[Exception] = ConfigError) -> dict:
    """The document in *path*; *what* names the file's kind in messages ("site config", "devices
    file"); *error* is the exception type the caller's users already catch. The file is read by
    :func:`wattwatch.userfile.read_text` (missing, folder, unreadable, not UTF-8)."""
    p = Path(path)
    text = read_text(p, what, error, expect=f"a {what} is a UTF-8 TOML file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{p}: cannot read {what}: {exc}") from None
    except RecursionError:
        raise error(f"{p}: cannot read {what}: nested too deeply") from None


def did_you_mean(unknown, known, form: str = "{!r}") -> str:
    """" (did you mean 'x'?)" for the first of ``unknown`` one typo from a name in ``known``, else ""
    (``form`` writes the name as the file does: "[{}]" for a table)."""
    import difflib

    for name in sorted(unknown):
        close = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.75)
        if close:
            return f" (did you mean {form.format(close[0])}?)"
    return ""


def only(spec: dict, keys: set, where: str = "") -> None:
    """ValueError when a table ``spec`` read from a config has a key outside ``keys`` (naming the table
    ``where``, if given, and the keys it knows). Sources, devices, sinks and actions share it."""
    unknown = set(spec) - keys
    if unknown:
        raise ValueError(f"{where + ': ' if where else ''}unknown key(s) {sorted(unknown)}; "
                         f"known: {', '.join(sorted(keys))}{did_you_mean(unknown, keys)}")

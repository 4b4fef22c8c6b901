"""One reader for every TOML file a user hands wattwatch (site, edge, detector, devices, grid, users,
column-mapping configs and register maps).

Each of these files is only ever *read* (``tomllib`` builds plain dicts, lists, strings and numbers; no
code runs), and whatever is wrong with it becomes one clear error naming the file: missing, a folder,
unreadable, not UTF-8 (a leading byte-order mark, as some Windows editors write, is accepted), not TOML
(``tomllib``'s message carries the line and column), or nested so deeply that parsing it would exhaust
the interpreter's stack (``tomllib`` recurses once per level and raises :class:`RecursionError`, which
used to escape as a traceback from most callers)."""

from __future__ import annotations

import math
import numbers
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


def _bound(x: float) -> str:
    return f"{x:g}"


def _finite(v: int | float) -> bool:
    # tomllib reads an integer of any length: math.isfinite(10**400) raises OverflowError (a traceback
    # out of `watch --config`), and such a value has no float (hold_s) or sane count (max_pending)
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def number(name: str, v, *, whole: bool = False, lo: float | None = None, hi: float | None = None,
           lo_in: bool = True, hi_in: bool = True, note: str = ""):
    """``v``, the number a config gives for ``name`` ("[stream] hold_s", "post.min_duration_s"),
    checked: a number (numpy's too, as a library caller may pass; not a bool: ``true`` is no count;
    not a string), finite (TOML's ``nan`` and
    ``inf`` are floats), whole when ``whole`` (2.5 batches is no count; 64.0 is 64), and within ``lo``
    .. ``hi`` (``lo_in``/``hi_in`` False: the bound itself is out). Returned as ``int`` when ``whole``,
    else ``float``. Otherwise ValueError "NAME: must be a whole number >= 1, got 2.5" (every failure
    says the whole of what is asked; ``note`` is added to it; the caller adds the file)."""
    ok = not isinstance(v, bool) and isinstance(v, numbers.Real) and _finite(v) \
        and (not whole or v == int(v)) \
        and (lo is None or (v >= lo if lo_in else v > lo)) and (hi is None or (v <= hi if hi_in else v < hi))
    if ok:
        return int(v) if whole else float(v)
    what = "a whole number" if whole else "a finite number"
    if lo is not None and hi is not None:
        what += f" within {'[' if lo_in else '('}{_bound(lo)}, {_bound(hi)}{']' if hi_in else ')'}"
    elif lo is not None:
        what += f" {'>=' if lo_in else '>'} {_bound(lo)}"
    elif hi is not None:
        what += f" {'<=' if hi_in else '<'} {_bound(hi)}"
    raise ValueError(f"{name}: must be {what}{note}, got {v!r}")


def flag(name: str, v) -> bool:
    """``v``, the true-or-false a config gives for ``name``, checked (``"false"`` is no bool: ``bool("false")``
    is True). ValueError "NAME: must be true or false, got 'false'"."""
    if not isinstance(v, bool):
        raise ValueError(f"{name}: must be true or false, got {v!r}")
    return v

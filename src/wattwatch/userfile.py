"""Reading a file a user names (a config, an events or alerts file, a label file, a table): whatever
stops the read becomes one error naming the file, in the caller's own exception type.

The messages, with *what* the kind of file ("site config", "events file") and *article* its article
("a", "an", "the"):

- missing: ``<path>: no such <what>``
- a folder: ``<path>: is a folder, not <article> <what>``
- unreadable otherwise (permissions, a broken link...): ``<path>: cannot read <what>: <reason>``
- not UTF-8 (:func:`read_text`; a leading byte-order mark, as some Windows editors write, is
  accepted): ``<path>: not UTF-8 text (byte N); <expect>``

The loaders (:func:`wattwatch.tomlfile.read_toml`, :func:`wattwatch.evaluate.events.load_events`,
:func:`wattwatch.alerts.model.read_jsonl`, the NAB corpus, the grid monitor's tables...) parse what
these return and name the file again for what is wrong inside it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from wattwatch.errors import ConfigError


@contextmanager
def open_file(path: str | Path, what: str, error: type[Exception] = ConfigError, *,
              article: str = "a") -> Iterator[BinaryIO]:
    """*path* opened for reading bytes (for readers that take a file, such as pandas'); the
    ladder of errors above for a missing, folder or unreadable file."""
    p = Path(path)
    try:
        fh = open(p, "rb")
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{p}: is a folder, not {article} {what}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    with fh:
        yield fh


def read_bytes(path: str | Path, what: str, error: type[Exception] = ConfigError, *, article: str = "a") -> bytes:
    """The bytes of *path*; see :func:`open_file` for the errors."""
    p = Path(path)
    with open_file(p, what, error, article=article) as fh:
        try:
            return fh.read()
        except OSError as exc:
            raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None


def read_text(path: str | Path, what: str, error: type[Exception] = ConfigError, *, article: str = "a",
              expect: str | None = None) -> str:
    """The text of *path* decoded as UTF-8 (a leading byte-order mark dropped); *expect* ends the
    message of a file that is not UTF-8 (what the file should be), by default "<article> <what>
    is UTF-8 text"."""
    p = Path(path)
    data = read_bytes(p, what, error, article=article)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        tail = expect or f"{article} {what} is UTF-8 text"
        raise error(f"{p}: not UTF-8 text (byte {exc.start}); {tail}") from None

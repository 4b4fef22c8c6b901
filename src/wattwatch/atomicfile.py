"""Replacing a file whole: one writer for every file wattwatch rewrites in place (a report, a score
table, a saved model, the sign-in counts, the watcher's control answers, the Influx buffer's cursor,
the tamper log's compaction, the Live page's status file, the CLI's outputs).

What :func:`atomic_file` (and :func:`write_bytes` / :func:`write_text` on it) does:

1. creates a new file beside the destination (same folder, so the rename cannot cross a file
   system), named ``.<name>.tmp-<random hex>``, with ``O_CREAT | O_EXCL | O_NOFOLLOW``: a file or a
   symlink already at that name is never opened or followed;
2. gives it *mode* exactly (``fchmod``, whatever the umask) when one is given, e.g. ``0o600`` for a
   file only its owner may read; else the mode ``open()`` gives (``0o666`` less the umask);
3. lets the caller write it, then flushes it and ``fsync``\\ s it (its bytes are on disk before its name is);
4. renames it over the destination (``os.replace``): a reader sees the old file or the new one, never
   half of one; a symlink at the destination is replaced by the file, never written through;
5. ``fsync``\\ s the folder, so the rename itself survives a power cut (a folder whose file system
   cannot sync a folder, ``EINVAL``, or a folder that may be written but not read is let be).

On any failure before the rename (a full disk, an error in the caller's writing, an interrupt) the
temporary file is removed and the destination is as it was; the exception is the caller's (each
caller words its own message). *durable* False leaves out both ``fsync`` calls, for a file rewritten
so often that losing the last copies to a power cut costs nothing (it is still replaced whole).

The destination's folder must exist (callers that make it do so themselves); a destination that is a
device or a FIFO cannot be replaced (``os.replace`` would put a file in its place): callers that
write to ``/dev/stdout`` and the like check for that first and write there in place."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def fsync_dir(folder: str | Path) -> None:
    """``fsync`` a folder: the names created, removed or renamed in it reach the disk. A file system
    that cannot sync a folder (``EINVAL``) is let be, and so is a folder this process may write in
    but not read (mode ``0333``, a drop folder: it cannot be opened to be synced; its file was
    written all the same)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except PermissionError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def temp_name(path: str | Path) -> Path:
    """A fresh temporary name beside *path*: ``.<name>.tmp-<16 random hex digits>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(8)}")


@contextmanager
def atomic_file(path: str | Path, *, text: bool = False, mode: int | None = None, encoding: str = "utf-8",
                durable: bool = True) -> Iterator[IO]:
    """A new file opened for writing (bytes, or *text* in *encoding*); when the block ends without
    an exception it replaces *path* whole (see the module). The file object is yielded; write to it,
    do not close it."""
    path = Path(path)
    tmp = temp_name(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        fh = os.fdopen(fd, "w" if text else "wb", **({"encoding": encoding} if text else {}))
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes, *, mode: int | None = None, durable: bool = True) -> Path:
    """*data* as the whole of *path*, replaced atomically (:func:`atomic_file`); *path*."""
    with atomic_file(path, mode=mode, durable=durable) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, mode: int | None = None, encoding: str = "utf-8",
               durable: bool = True) -> Path:
    """*text* as the whole of *path*, replaced atomically (:func:`atomic_file`); *path*."""
    with atomic_file(path, text=True, mode=mode, encoding=encoding, durable=durable) as fh:
        fh.write(text)
    return Path(path)


def read_regular(path: str | Path, limit: int, *, follow: bool = True) -> bytes:
    """The bytes of *path*, a file the writers above replace: opened without blocking (a FIFO at the
    path would hold the reader for ever), only a regular file (``ValueError("not a regular file")``
    for a FIFO, a device or a folder, whose ``stat`` size says nothing), and at most *limit* bytes
    (``ValueError`` naming the size). *follow* False: a symlink at *path* is not followed
    (``OSError`` ``ELOOP``)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{st.st_size:,} bytes, larger than {limit:,}")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes")
    return data

"""The one writer that replaces a file whole (wattwatch.atomicfile): the new file's bytes and name
are fsync'd, its mode is the one asked for, a symlink at the destination is replaced and never
written through, and a failure leaves the old file and no temporary one."""

from __future__ import annotations

import os
import stat

import pytest

from wattwatch import atomicfile
from wattwatch.atomicfile import atomic_file, write_bytes, write_text


def _leftovers(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.tmp-"))


def test_bytes_and_text_replace_the_file_whole(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("old")
    assert write_bytes(p, b"\x00new bytes") == p and p.read_bytes() == b"\x00new bytes"
    write_text(p, "caf\u00e9\n")
    assert p.read_bytes() == "caf\u00e9\n".encode("utf-8")
    write_text(p, "caf\u00e9", encoding="latin-1")
    assert p.read_bytes() == b"caf\xe9"
    assert _leftovers(tmp_path, "a.json") == []


def test_the_mode_asked_for_is_the_mode_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "secret", "x", mode=0o600)
        write_text(tmp_path / "shared", "x", mode=0o644)
        write_text(tmp_path / "plain", "x")
        os.umask(0o077)
        write_text(tmp_path / "shared2", "x", mode=0o644)      # asked for: kept even under umask 077
    finally:
        os.umask(old)
    modes = {n: stat.S_IMODE((tmp_path / n).stat().st_mode) for n in ("secret", "shared", "plain", "shared2")}
    assert modes == {"secret": 0o600, "shared": 0o644, "plain": 0o644, "shared2": 0o644}


def test_a_replaced_0600_file_never_shows_its_bytes_under_a_looser_mode(tmp_path, monkeypatch):
    """The temporary file is created with the mode asked for (not opened wider and then narrowed)."""
    seen = []
    real = os.open

    def spy(path, flags, mode=0o777, *a, **k):
        fd = real(path, flags, mode, *a, **k)
        if flags & os.O_CREAT:
            seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd

    monkeypatch.setattr(atomicfile.os, "open", spy)
    write_text(tmp_path / "s", "secret", mode=0o600)
    assert seen == [0o600]


def test_the_file_then_its_folder_are_fsynced_and_not_when_durable_is_off(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(atomicfile.os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real(fd)))
    write_bytes(tmp_path / "f", b"1")
    assert synced == [False, True]             # the bytes, then the name
    write_bytes(tmp_path / "f", b"2", durable=False)
    assert synced == [False, True] and (tmp_path / "f").read_bytes() == b"2"


def test_a_symlink_at_the_destination_is_replaced_never_written_through(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    link = tmp_path / "out.txt"
    link.symlink_to(target)
    write_text(link, "new", mode=0o600)
    assert not link.is_symlink() and link.read_text() == "new"
    assert target.read_text() == "keep me"
    dangling = tmp_path / "d.txt"
    dangling.symlink_to(tmp_path / "nowhere" / "x")
    write_text(dangling, "y")
    assert not dangling.is_symlink() and dangling.read_text() == "y" and not (tmp_path / "nowhere").exists()


def test_a_symlink_planted_at_a_temporary_name_is_not_followed(tmp_path, monkeypatch):
    target = tmp_path / "victim"
    target.write_text("keep me")
    planted = tmp_path / ".out.tmp-planted"
    planted.symlink_to(target)
    monkeypatch.setattr(atomicfile, "temp_name", lambda p: planted)
    with pytest.raises(FileExistsError):
        write_text(tmp_path / "out", "new")
    assert target.read_text() == "keep me" and planted.is_symlink() and not (tmp_path / "out").exists()


def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary_one(tmp_path):
    p = tmp_path / "t.parquet"
    p.write_bytes(b"old")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_file(p) as fh:
            fh.write(b"half of it")
            raise Boom
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(p, text=True) as fh:
            fh.write("half")
            raise KeyboardInterrupt
    with pytest.raises(UnicodeEncodeError):
        write_text(p, "\u20ac", encoding="ascii")
    assert p.read_bytes() == b"old" and _leftovers(tmp_path, "t.parquet") == []


def test_a_failed_rename_or_a_full_disk_leaves_no_temporary_file(tmp_path, monkeypatch):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):         # os.replace cannot put a file over a folder
        write_text(folder, "x")
    assert _leftovers(tmp_path, "a-folder") == [] and folder.is_dir()
    p = tmp_path / "disk"
    p.write_text("old")

    def no_space(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomicfile.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        write_text(p, "new")
    assert p.read_text() == "old" and _leftovers(tmp_path, "disk") == []


def test_a_missing_folder_is_an_error_not_made(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_text(tmp_path / "no" / "f", "x")
    assert not (tmp_path / "no").exists()


def test_a_folder_that_cannot_be_synced_is_let_be(tmp_path, monkeypatch):
    import errno

    real = os.fsync

    def einval_on_folders(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd)

    monkeypatch.setattr(atomicfile.os, "fsync", einval_on_folders)
    write_text(tmp_path / "f", "x")
    assert (tmp_path / "f").read_text() == "x"


def test_a_folder_it_may_write_but_not_read_takes_the_file_without_an_error(tmp_path, monkeypatch):
    """rev54: a folder of mode 0333 (write and search, no read: a drop folder) lets a file be
    created and renamed in it, but not be opened to fsync it. The file was replaced, so that is
    not a failure to write it (atw54 raised PermissionError after the rename: the CLI then said
    "cannot write --out" of a file it had written, the dashboard "counts not written")."""
    import errno

    real = os.open
    folder = str(tmp_path)

    def no_read_of_the_folder(path, flags, *a, **k):
        if os.fspath(path) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", folder)
        return real(path, flags, *a, **k)

    monkeypatch.setattr(atomicfile.os, "open", no_read_of_the_folder)
    write_text(tmp_path / "f", "x")
    assert (tmp_path / "f").read_text() == "x" and _leftovers(tmp_path, "f") == []


def test_a_full_disk_while_the_caller_writes_leaves_the_old_file(tmp_path, monkeypatch):
    """ENOSPC from the write itself (the file object's, not the fsync): the old file stays, no
    temporary file is left, the error is the caller's to word."""
    import errno
    import io

    p = tmp_path / "disk"
    p.write_text("old")

    class Full(io.FileIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_fdopen = os.fdopen

    def full_fdopen(fd, mode="r", *a, **k):
        if "b" in mode:
            return Full(fd, "w")
        return real_fdopen(fd, mode, *a, **k)

    monkeypatch.setattr(atomicfile.os, "fdopen", full_fdopen)
    with pytest.raises(OSError) as err:
        write_bytes(p, b"new" * 10000)
    assert err.value.errno == errno.ENOSPC
    assert p.read_text() == "old" and _leftovers(tmp_path, "disk") == []


def test_read_regular_reads_a_bounded_regular_file_only(tmp_path):
    from wattwatch.atomicfile import read_regular

    f = tmp_path / "f.json"
    f.write_bytes(b"x" * 10)
    assert read_regular(f, 10) == b"x" * 10
    with pytest.raises(ValueError, match="larger than"):
        read_regular(f, 9)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):   # returns at once, never blocks
        read_regular(fifo, 10)
    link = tmp_path / "link"
    link.symlink_to(f)
    assert read_regular(link, 10) == b"x" * 10
    with pytest.raises(OSError):
        read_regular(link, 10, follow=False)

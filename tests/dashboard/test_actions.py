"""The functions that write check the session themselves: an anonymous visitor, a viewer, an
expired session or a read-only dashboard changes nothing in the store (or the upload folder)."""

from __future__ import annotations

import time

import pytest

from tests.dashboard.conftest import snapshot
from wattwatch.dashboard import actions
from wattwatch.dashboard.auth import PermissionDenied, Session


def _sessions():
    now = time.time()
    return {"anonymous": None, "signed-out": Session(),
            "viewer": Session("victor", "viewer", now, now),
            "expired operator": Session("olga", "operator", now - 10 * 3600, now - 10),
            "read-only operator": Session("olga", "operator", now, now, read_only=True)}


def test_nobody_but_an_operator_writes(store_copy, sim_store, tmp_path):
    before = snapshot(store_copy)
    ids = [a[0] for a in before["alerts"]]
    uploads = tmp_path / "uploads"
    for name, s in _sessions().items():
        for status in ("acknowledged", "cleared"):
            with pytest.raises(PermissionDenied):
                actions.set_status(s, store_copy, ids, status, "note")
        with pytest.raises(PermissionDenied):
            actions.save_upload(s, uploads, "t.csv", sim_store[2].read_bytes())
        with pytest.raises(PermissionDenied):
            actions.ingest(s, store_copy, sim_store[2])
        with pytest.raises(PermissionDenied):
            actions.run_detection(s, store_copy, ["outage"])
        assert snapshot(store_copy) == before, name
    assert not uploads.exists()


def test_operator_acks_in_bulk_with_the_cli_lifecycle(store_copy):
    from wattwatch.alerts import store as alert_store
    from wattwatch.store import Store

    now = time.time()
    op = Session("olga", "operator", now, now)
    ids = [a[0] for a in snapshot(store_copy)["alerts"]][:2]
    res = actions.set_status(op, store_copy, ids, "acknowledged", "crew sent")
    assert [r["status"] for r in res] == ["acknowledged"] * 2
    with Store(store_copy, read_only=True) as s:
        df = alert_store.list_alerts(s.con, "acknowledged")
        assert set(df["id"]) == set(ids) and set(df["note"]) == {"[olga] crew sent"}
        assert s.con.execute("SELECT count(*) FROM rule_resets").fetchone()[0] == 2
    # A cleared alert cannot be acknowledged: said per id, the others still done.
    actions.set_status(op, store_copy, ids[:1], "cleared")
    res = actions.set_status(op, store_copy, ids, "acknowledged")
    assert "already cleared" in res[0]["error"] and res[1]["unchanged"]


def test_upload_names_never_become_paths(tmp_path):
    now = time.time()
    op = Session("olga", "operator", now, now)
    p = actions.save_upload(op, tmp_path / "up", "../../etc/passwd.csv", b"meter_id,ts,p_kw\n")
    assert p.parent == tmp_path / "up" and p.name.startswith("upload-") and p.suffix == ".csv"
    with pytest.raises(ValueError, match="not a telemetry file"):
        actions.save_upload(op, tmp_path / "up", "evil.py", b"print(1)")


def test_uploads_are_removed_after_their_lifetime_and_beyond_the_folders_cap(tmp_path, caplog):
    """adv42 Left: every upload (and its .mapping.toml) stayed in the upload folder for ever. Now
    saving one removes the uploads older than UPLOAD_LIFETIME_S and then the oldest until the folder's
    uploads fit UPLOAD_FOLDER_BYTES; the new one and files that are not uploads are never removed."""
    import logging
    import os

    caplog.set_level(logging.INFO, "wattwatch.dashboard.audit")
    now = time.time()
    op = Session("olga", "operator", now, now)
    folder = tmp_path / "up"
    folder.mkdir()
    (folder / "notes.txt").write_text("the operator's own file")
    old = actions.save_upload(op, folder, "old.csv", b"x" * 10)
    old_map = old.with_suffix(".mapping.toml")
    old_map.write_text("[columns]\n")
    day = 86400
    for p in (old, old_map, folder / "notes.txt"):
        os.utime(p, (now - actions.UPLOAD_LIFETIME_S - day, now - actions.UPLOAD_LIFETIME_S - day))
    mids = []
    for k in range(3):
        p = actions.save_upload(op, folder, f"m{k}.csv", b"y" * 100)
        os.utime(p, (now - 3600 * (3 - k), now - 3600 * (3 - k)))
        mids.append(p)
    assert not old.exists() and not old_map.exists() and (folder / "notes.txt").exists()
    assert all(p.exists() for p in mids)
    cap = actions.UPLOAD_FOLDER_BYTES
    actions.UPLOAD_FOLDER_BYTES = 250
    try:
        new = actions.save_upload(op, folder, "new.csv", b"z" * 100)
    finally:
        actions.UPLOAD_FOLDER_BYTES = cap
    assert new.exists() and not mids[0].exists() and not mids[1].exists() and mids[2].exists()
    assert any("removed upload" in r.message and old.name in r.message for r in caplog.records)


def test_removing_old_uploads_never_touches_a_link_a_folder_or_a_name_it_did_not_give(tmp_path):
    """rev52: the sweep removes only regular files named as ``_safe_name`` names uploads: an old symlink
    named like an upload (pointing out of the folder) stays and so does its target, as do a folder so
    named, a name one hex digit short, and a file outside the upload folder."""
    import os

    now = time.time()
    old = now - actions.UPLOAD_LIFETIME_S - 86400
    folder, outside = tmp_path / "up", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    target = outside / "upload-0123456789ab.csv"
    target.write_text("not the dashboard's")
    link = folder / "upload-aaaaaaaaaaaa.csv"
    link.symlink_to(target)
    sub = folder / "upload-bbbbbbbbbbbb.d"
    sub.mkdir()
    short = folder / "upload-ccccccccccc.csv"
    short.write_text("x")
    mine = folder / "upload-dddddddddddd.csv"
    mine.write_text("x")
    for p in (target, short, mine, sub):
        os.utime(p, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    assert actions.prune_uploads(folder, now=now) == [mine.name]
    assert link.is_symlink() and target.exists() and sub.is_dir() and short.exists() and not mine.exists()

"""The Data page runs detection with a chosen state: the store's kept state or a model folder
(``wattwatch train --out``) listed under ``--models-dir``. The run gives the alerts ``api.detect``
gives with the same folder; a viewer cannot run; a folder outside the root is never used."""

from __future__ import annotations

import shutil
import time

import pandas as pd
import pytest

from tests.dashboard.conftest import OPERATOR, VIEWER, snapshot
from tests.dashboard.test_pages import app, button_keys, frame_with, goto, sign_in  # noqa: F401 - fixture
from wattwatch.dashboard import actions, models
from wattwatch.dashboard.auth import PermissionDenied, Session

RULES = ["supply_outage", "neutral_tamper", "phase_imbalance"]
FITTED = [*RULES, "baseline_macd"]   # baseline_macd's alerts depend on the period its state is fitted on


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(models root, a model folder outside it, the store it was trained on): a folder written by
    `wattwatch train` under root/site/ens, a symlink inside the root to a copy outside it, and a
    folder of an old model format."""
    from typer.testing import CliRunner

    from wattwatch import api
    from wattwatch.app.cli import app as cli
    from wattwatch.sim import SimConfig, simulate

    base = tmp_path_factory.mktemp("models")
    db = base / "site.duckdb"
    api.ingest(simulate(SimConfig(meters=6, days=10, seed=21, fault_share=0.7))["frame"], db)
    root = base / "root"
    (root / "site").mkdir(parents=True)
    res = CliRunner().invoke(cli, ["train", "--db", str(db), "--out", str(root / "site" / "ens"), "--days", "5",
                                   "--json"])
    assert res.exit_code == 0, res.output
    (root / "fits").mkdir()
    shutil.copy(db, root / "fits" / "ref.duckdb")
    res = CliRunner().invoke(cli, ["fit", "--db", str(root / "fits" / "ref.duckdb"), "--detectors", ",".join(FITTED),
                                   "--days", "3", "--json"])
    assert res.exit_code == 0, res.output
    shutil.copy(db, root / "fits" / "unfitted.duckdb")               # a store without state: not listed
    (root / "fits" / "far.duckdb").symlink_to(root / "fits" / "ref.duckdb")   # symlinks are not followed
    outside = base / "outside"
    shutil.copytree(root / "site" / "ens", outside)
    (root / "elsewhere").symlink_to(outside, target_is_directory=True)
    (root / "old").mkdir()
    (root / "old" / "manifest.json").write_text('{"format": 3, "schema": 1, "detectors": {}}')
    return root, outside, db


def _operator():
    now = time.time()
    return Session(OPERATOR[0], "operator", now, now)


def test_folders_under_the_root_are_listed_and_nothing_else(trained):
    root, outside, _ = trained
    found = {f.name: f for f in models.folders(root)}
    assert set(found) == {"site/ens", "old", "fits/ref.duckdb"}       # the symlink out is not followed
    assert found["fits/ref.duckdb"].kind == "state" and found["fits/ref.duckdb"].trained_on["meters"] == 6
    assert set(found["fits/ref.duckdb"].detectors) == set(FITTED)
    assert "fits/ref.duckdb" not in {f.name for f in models.folders(root, exclude=root / "fits" / "ref.duckdb")}
    assert found["site/ens"].detectors == ("learned_ensemble",) and found["site/ens"].problem is None
    assert "model format 3" in found["old"].problem
    for name in ("../outside", str(outside), "elsewhere", "site/../../outside", "site/ens/manifest.json", "nope",
                 "fits/far.duckdb", "fits/unfitted.duckdb"):
        with pytest.raises(models.OutsideRoot):
            models.resolve(root, name)
    assert models.resolve(root, "site/ens").path == (root / "site" / "ens").resolve()
    with pytest.raises(models.OutsideRoot, match="--models-dir"):
        models.resolve(None, "site/ens")


def test_operator_picks_a_model_folder_and_gets_detects_alerts(app, trained, tmp_path):
    from wattwatch import api
    from wattwatch.alerts import store as alert_store
    from wattwatch.store import Store

    root, _, db = trained
    mine, twin = tmp_path / "mine.duckdb", tmp_path / "twin.duckdb"
    shutil.copy(db, mine)
    shutil.copy(db, twin)
    at = goto(sign_in(app(WATTWATCH_DASHBOARD_MODELS_DIR=root, WATTWATCH_DB=mine), OPERATOR), "Data")
    box = at.selectbox(key="run_state")
    assert box.options[0] == "state kept in the store (`wattwatch fit`)" and len(box.options) == 3
    assert box.options[1].startswith("fits/ref.duckdb: state of 6 meter(s)")
    assert box.options[2].startswith("site/ens: learned_ensemble (trained on meters 6")
    assert any("old: cannot be used" in w.value and "model format 3" in w.value for w in at.warning)
    box.set_value("site/ens").run()
    at.multiselect(key="detectors").set_value(RULES).run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with Store(mine, read_only=True) as s:
        kept = alert_store.list_alerts(s.con, "all")
    expected = api.detect(twin, detectors=RULES, models=root / "site" / "ens")
    assert "learned_ensemble" in {a.detector for a in expected.alerts}   # the folder's detector ran
    got = sorted(zip(kept["id"], kept["code"], kept["score"].round(9),
                     kept["start"].astype(str), kept["end"].astype(str)))
    want = sorted((a.id, a.code, round(a.score, 9), str(pd.Timestamp(a.start)), str(pd.Timestamp(a.end)))
                  for a in expected.alerts)
    assert got == want
    flash = " ".join(s.value for s in at.success)
    assert f"detection: {len(expected.alerts)} alert(s)" in flash and "model folder `site/ens`" in flash
    last = frame_with(at, "state")
    assert last["state"].iloc[0] == "model folder site/ens" and last["alerts"].iloc[0] == len(expected.alerts)
    assert "learned_ensemble" in last["detectors"].iloc[0]


def test_the_store_state_is_the_default_choice(app, store_copy):
    at = goto(sign_in(app(), OPERATOR), "Data")
    assert at.selectbox(key="run_state").value == "(store)"
    assert any("have kept state" in c.value for c in at.caption)    # the rules' profiles the fixture's run kept
    at.multiselect(key="detectors").set_value(["supply_outage"]).run()
    at.button(key="run").click().run()
    assert not at.error and any("with the state kept in the store" in s.value for s in at.success)
    assert frame_with(at, "state")["state"].iloc[0] == "kept in the store"


def test_a_viewer_cannot_run_and_outside_folders_are_refused(app, trained, store_copy):
    root, outside, _ = trained
    before = snapshot(store_copy)
    at = goto(sign_in(app(WATTWATCH_DASHBOARD_MODELS_DIR=root), VIEWER), "Data")
    assert "run" not in button_keys(at) and not at.selectbox
    now = time.time()
    with pytest.raises(PermissionDenied):
        actions.run_detection(Session(VIEWER[0], "viewer", now, now), store_copy, RULES, model_folder="site/ens",
                              models_root=root)
    for name in ("../outside", str(outside), "elsewhere"):
        with pytest.raises(models.OutsideRoot):
            actions.run_detection(_operator(), store_copy, RULES, model_folder=name, models_root=root)
    assert snapshot(store_copy) == before


def test_operator_picks_a_fitted_store_and_gets_detects_alerts_with_that_fit(app, trained, tmp_path):
    from wattwatch import api
    from wattwatch.alerts import store as alert_store
    from wattwatch.store import Store

    root, _, db = trained
    mine, twin, plain = (tmp_path / f"{n}.duckdb" for n in ("mine", "twin", "plain"))
    for p in (mine, twin, plain):
        shutil.copy(db, p)
    at = goto(sign_in(app(WATTWATCH_DASHBOARD_MODELS_DIR=root, WATTWATCH_DB=mine), OPERATOR), "Data")
    at.selectbox(key="run_state").set_value("fits/ref.duckdb").run()
    assert any("keeps (read-only" in c.value for c in at.caption)
    at.multiselect(key="detectors").set_value(FITTED).run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with Store(mine, read_only=True) as s:
        kept = alert_store.list_alerts(s.con, "all")
    # The same fit (each meter's first 3 days), in memory, then detect with it.
    expected = api.detect(twin, state=api.fit(twin, detectors=FITTED, days=3, keep=False))
    got = sorted(zip(kept["id"], kept["code"], kept["score"].round(9)))
    assert got == sorted((a.id, a.code, round(a.score, 9)) for a in expected.alerts) and got
    # ... not what the store's own profiling (its first 5 days) gives.
    default = api.detect(plain, detectors=FITTED)
    assert got != sorted((a.id, a.code, round(a.score, 9)) for a in default.alerts)
    assert frame_with(at, "state")["state"].iloc[0] == "fitted store fits/ref.duckdb"
    assert any("with fitted store `fits/ref.duckdb`" in s.value for s in at.success)
    with Store(root / "fits" / "ref.duckdb", read_only=True) as s:     # the fitted store was only read
        assert s.con.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0

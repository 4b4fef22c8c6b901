"""The model storage format (serialize.py) and model folders (persist.py): round trips are exact,
and nothing read from a file or a blob ever runs."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from wattwatch.detect import registry
from wattwatch.detect.frame import prepare, profile_mask
from wattwatch.detect.learned import models as M
from wattwatch.detect.learned.features import Baseline
from wattwatch.detect.learned.persist import (MANIFEST, MODEL_FORMAT, ModelFormatError, dumps_state, load_models,
                                              loads_state, save_models)
from wattwatch.detect.learned.serialize import CLASSES, VERSION, dumps, loads
from wattwatch.sim import SimConfig, simulate

from .conftest import HEALTHY

# ------------------------------------------------------------------------------ helpers


class _Boom:
    """Unpickling this creates ``path``: a stand-in for the `touch` a crafted model folder ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def live_pickle(marker) -> bytes:
    """A pickle that creates ``marker`` when loaded; checked to be live, so a test that it is *not*
    loaded can fail."""
    payload = pickle.dumps(_Boom(marker))
    pickle.loads(payload).close()
    assert marker.exists()
    marker.unlink()
    return payload


def npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, a, allow_pickle=allow_pickle)
    return out.getvalue()


def archive(root, arrays=(), version=VERSION, extra=None, doc=None, compress=zipfile.ZIP_STORED,
            edit=lambda text: text) -> bytes:
    """An archive built by hand, as an attacker would (``edit``: a change to doc.json's text)."""
    doc = doc if doc is not None else {"format": "wattwatch-state", "version": version, "arrays": len(arrays),
                                       "root": root}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        zf.writestr("doc.json", edit(json.dumps(doc)))
        for i, a in enumerate(arrays):
            zf.writestr(f"arrays/{i}.npy", a if isinstance(a, bytes) else npy(a))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def rebuild(parts: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for n, b in parts.items():
            zf.writestr(n, b)
    return buf.getvalue()


def find_objs(node, tag):
    """Every ``$obj`` of class ``tag`` in a decoded doc.json tree."""
    if isinstance(node, dict):
        if node.get("$obj") == tag:
            yield node
        for v in node.values():
            yield from find_objs(v, tag)
    elif isinstance(node, list):
        for v in node:
            yield from find_objs(v, tag)


def same(a, b) -> bool:
    """Exact equality of arrays (dtype, shape, bits; NaN equal to NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ------------------------------------------------------------------------------ models


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    X = rng.standard_t(4, size=(3000, 9)).astype(np.float32)
    return M.GaussianScaler().fit(X, 0).transform(X)


def sequences(X: np.ndarray, steps: int) -> np.ndarray:
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(X, steps, axis=0).transpose(0, 2, 1))


MODELS = {
    "iforest": lambda: M.IsolationForestModel(n_estimators=40),
    "lof": lambda: M.LOFModel(n_neighbors=10, max_fit_rows=1500),
    "pca": lambda: M.PCAModel(),
    "dense_ae": lambda: M.DenseAEModel(hidden=8, code=3, epochs=2),
    "lstm_ae": lambda: M.LSTMAEModel(steps=5, hidden=6, epochs=1, max_fit_rows=800),
}


@pytest.mark.parametrize("kind", list(MODELS))
def test_models_round_trip_exactly(kind, rows):
    m = MODELS[kind]()
    X = sequences(rows, m.steps) if m.sequence else rows
    m.fit(X, 7)
    data = dumps(m)
    back = loads(data)
    assert type(back) is type(m)
    assert same(back.raw(X), m.raw(X))
    assert same(back.contributions(X), m.contributions(X))
    # Everything came back: stored again, the bytes are the same.
    assert dumps(back) == data
    # Unfitted models store their settings only.
    fresh = loads(dumps(MODELS[kind]()))
    assert type(fresh) is type(m) and fresh.to_state() == MODELS[kind]().to_state()


def test_lof_rebuilds_the_same_neighbour_tree(rows):
    m = M.LOFModel(n_neighbors=10, max_fit_rows=1500).fit(rows, 1)
    back = loads(dumps(m))
    assert back.est_._tree is not m.est_._tree
    for a, b in zip(m.est_._tree.get_arrays(), back.est_._tree.get_arrays()):
        assert same(a, b)


def test_scaler_and_calibrator_round_trip(rows):
    rng = np.random.default_rng(4)
    X = rng.standard_t(3, size=(5000, 4))
    X[:, 2] = np.where(rng.random(5000) < 0.4, 0.0, X[:, 2])  # ties: the scaler's jump knots
    s = M.GaussianScaler().fit(X, 0)
    back = loads(dumps(s))
    probe = np.concatenate([X, X * 40])  # beyond the training range too
    assert same(back.transform(probe), s.transform(probe))
    assert all(type(k) is tuple for k in back.knots_)
    cal = M.TailCalibrator(tail=0.05).fit(rng.normal(size=3000))
    cback = loads(dumps(cal))
    x = np.linspace(-5, 30, 1000)
    assert same(cback.log10_exceedance(x), cal.log10_exceedance(x))
    assert cback.to_state().keys() == cal.to_state().keys() and cback.k_ == cal.k_
    # A calibration stored before the tail counted its events (no k_) loads as the exponential.
    old = {k: v for k, v in cal.to_state().items() if k != "k_"}
    legacy = M.TailCalibrator.from_state(old)
    assert not hasattr(legacy, "k_") and legacy.log10_exceedance(x)[-1] > cal.log10_exceedance(x)[-1]


def test_forest_of_100_trees_loads_without_a_walk_per_node(rows):
    # The trees are validated with array operations (a loop per level, never per node): forests
    # of 100 trees on 64 and on 2,048 samples (~4,800 and ~40,000 nodes, depths 6 and 11) load
    # running Python lines of wattwatch in numbers ~20 per tree apart (4 a level), not one or
    # more per node. How fast a model loads is `wattwatch bench learned`'s "model load" figure.
    import wattwatch
    from tests.support.pylines import lines_run

    lines, nodes = {}, {}
    for samples in (64, 2048):
        m = M.IsolationForestModel(n_estimators=100, max_samples=samples).fit(rows, 0)
        back, lines[samples] = lines_run(lambda: loads(dumps(m)), wattwatch)
        nodes[samples] = sum(t.tree_.node_count for t in back.est_.estimators_)
        assert nodes[samples] == sum(t.tree_.node_count for t in m.est_.estimators_)
    assert nodes[2048] > 8 * nodes[64]
    assert lines[2048] - lines[64] < (nodes[2048] - nodes[64]) / 5, (lines, nodes)


# ------------------------------------------------------------------------------ values


def test_plain_values_round_trip():
    rec = np.zeros(3, dtype=[("a", "<i8"), ("b", "<f4"), ("c", "u1")])
    rec["a"], rec["b"] = [1, -2, 3], [0.5, np.nan, np.inf]
    obj = {
        "none": None, "t": True, "f": False, "int": -(2 ** 70), "float": 0.1, "neg0": -0.0,
        "nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "str": "kWh ∑ \"$ref\"",
        "list": [1, [2, (3, "x")]], "tuple": (1.5, None), "empty": ((), [], {}),
        "$weird": {"$ref": 0, "$obj": "os.system"},  # keys that look like tags are data
        "arrays": [np.arange(6, dtype=np.int32).reshape(2, 3), np.asfortranarray(np.ones((3, 2))),
                   np.array(3.5), np.zeros((0, 4), np.float32), np.array([True, False]), np.array([1 + 2j]),
                   np.arange(10, dtype=">u2")[::3], rec],
        "scalars": [np.float32(0.1), np.float64("nan"), np.int64(-5), np.uint64(2 ** 64 - 1), np.bool_(True),
                    np.float16(1.5), np.int8(-128)],
    }
    back = loads(dumps(obj))
    assert list(back) == list(obj)
    for k in ("none", "t", "f", "int", "float", "str", "list", "tuple", "empty", "$weird"):
        assert back[k] == obj[k] and type(back[k]) is type(obj[k]), k
    assert type(back["list"][1][1]) is tuple and type(back["t"]) is bool
    assert np.copysign(1, back["neg0"]) == -1 and np.isnan(back["nan"]) and back["-inf"] == float("-inf")
    for a, b in zip(obj["arrays"], back["arrays"]):
        assert same(a, b) and b.flags.writeable
    assert back["arrays"][1].flags.f_contiguous
    for a, b in zip(obj["scalars"], back["scalars"]):
        assert type(a) is type(b) and same(a, b)


def test_shared_objects_stay_shared_and_bytes_are_deterministic():
    cal = M.TailCalibrator().fit(np.arange(100.0))
    arr = np.arange(5.0)
    back = loads(dumps({"a": cal, "b": [cal], "x": arr, "y": arr}))
    assert back["a"] is back["b"][0] and back["x"] is back["y"]
    assert dumps({"a": cal}) == dumps({"a": cal})


@pytest.mark.parametrize("bad", [
    np.array([object()]), np.array(["abc"]), {1: "int key"}, {"s": {1, 2}}, object(), b"bytes",
    np.array([1.0], dtype=np.longdouble), np.datetime64("2025-01-01"), M._Trainer(1, 2, 0.1),
])
def test_dumps_refuses_what_it_cannot_store(bad):
    with pytest.raises(TypeError, match="cannot store"):
        dumps({"x": bad})


def test_dumps_refuses_cycles():
    loop = []
    loop.append(loop)
    with pytest.raises(TypeError, match="nested"):
        dumps(loop)


# ------------------------------------------------------------------------------ hostile archives


def test_hand_built_archives_load():
    # The control for the refusals below: the hand-built form itself is accepted.
    assert loads(archive({"a": {"$array": 0}, "b": {"$tuple": [1]}}, [np.arange(3)]))["b"] == (1,)
    cal = loads(archive({"$obj": "wattwatch.TailCalibrator", "id": 0, "state": {"tail": 0.1, "n_quantiles": 11}}))
    assert type(cal) is M.TailCalibrator and cal.tail == 0.1


def test_loads_refuses_pickles(tmp_path):
    marker = tmp_path / "ran"
    payload = live_pickle(marker)
    with pytest.raises(ValueError, match="pickle"):
        loads(payload)
    import joblib

    joblib.dump(_Boom(marker), tmp_path / "m.joblib")
    with pytest.raises(ValueError, match="not a wattwatch state archive"):
        loads((tmp_path / "m.joblib").read_bytes())
    # An object array whose items are pickles, inside an otherwise valid archive.
    obj = np.empty(1, object)
    obj[0] = _Boom(marker)
    with pytest.raises(ValueError, match="dtype object"):
        loads(archive({"$array": 0}, [npy(obj, allow_pickle=True)]))
    assert not marker.exists()


@pytest.mark.parametrize("tag", ["builtins.eval", "os.system", "posix:system", "sklearn.svm.SVC",
                                 "wattwatch.detect.learned.models.TailCalibrator", "_Trainer", 3])
def test_loads_refuses_classes_outside_the_whitelist(tag):
    data = archive({"$obj": tag, "id": 0, "state": {"tail": 0.1, "n_quantiles": 11}})
    with pytest.raises(ValueError, match="is not one wattwatch loads"):
        loads(data)
    assert str(tag) not in CLASSES


@pytest.mark.parametrize("version", [VERSION + 1, 0, "1", None])
def test_loads_refuses_other_versions(version):
    with pytest.raises(ValueError, match="format version"):
        loads(archive([1, 2], version=version))
    with pytest.raises(ValueError, match="not a wattwatch-state document"):
        loads(archive(None, doc={"format": "other", "version": VERSION, "arrays": 0, "root": None}))


@pytest.mark.parametrize("case, match", [
    ("unknown_tag", "unexpected tagged value"),
    ("dangling_ref", "not .yet. defined"),
    ("array_index", "unexpected tagged value"),
    ("nan_literal", "non-JSON constant"),
    ("stray_member", "unexpected members"),
    ("missing_array", "unexpected members"),
    ("compressed", "compressed"),
    ("string_array", "dtype <U3"),
    ("short_array", "data bytes"),
    ("scalar_dtype", "scalar dtype"),
    ("bad_state", "TailCalibrator: unexpected state"),
    ("duplicate_key", "duplicate keys"),
])
def test_loads_refuses_malformed_archives(case, match):
    good = np.arange(4.0)
    data = {
        "unknown_tag": lambda: archive({"$eval": "1"}),
        "dangling_ref": lambda: archive({"$ref": 0}),
        "array_index": lambda: archive({"$array": 1}, [good]),
        "nan_literal": lambda: archive(None, edit=lambda t: t.replace('"root": null', '"root": NaN')),
        "stray_member": lambda: archive(None, extra={"payload.pkl": pickle.dumps(1)}),
        "missing_array": lambda: rebuild({"doc.json": members(archive({"$array": 0}, [good]))["doc.json"]}),
        "compressed": lambda: archive({"$array": 0}, [good], compress=zipfile.ZIP_DEFLATED),
        "string_array": lambda: archive({"$array": 0}, [np.array(["abc"])]),
        "short_array": lambda: archive({"$array": 0}, [npy(good)[:-8]]),
        "scalar_dtype": lambda: archive({"$scalar": ["O", 1]}),
        "bad_state": lambda: archive({"$obj": "wattwatch.TailCalibrator", "id": 0, "state": {"tail": 0.1}}),
        "duplicate_key": lambda: archive(None, edit=lambda t: t.replace('"root": null', '"root": {"a": 1, "a": 2}')),
    }[case]()
    with pytest.raises(ValueError, match=match):
        loads(data)


def _left_twice(nodes, tree):
    nodes["right_child"][0] = nodes["left_child"][0]


def _shallower(nodes, tree):
    tree["state"]["state"]["max_depth"] -= 1


@pytest.mark.parametrize("edit, match", [
    # The Cython walk would read far outside the node array:
    (lambda nodes, tree: nodes["left_child"].__setitem__(0, 10 ** 9), "out of range"),
    # a cycle: the walk would never end:
    (lambda nodes, tree: nodes["right_child"].__setitem__(0, 0), "out of range"),
    # it would read X[:, 999]:
    (lambda nodes, tree: nodes["feature"].__setitem__(0, 999), "out of range"),
    (_left_twice, "one tree"),
    # decision_path would write past a buffer sized by max_depth:
    (_shallower, "max_depth"),
], ids=["child", "cycle", "feature", "not_a_tree", "max_depth"])
def test_loads_refuses_trees_that_point_outside_themselves(rows, edit, match):
    data = dumps(M.IsolationForestModel(n_estimators=3).fit(rows, 0))
    parts = members(data)
    assert loads(rebuild(parts)) is not None  # the control: untouched, it loads
    doc = json.loads(parts["doc.json"])
    tree = next(find_objs(doc, "sklearn.Tree"))
    name = f"arrays/{tree['state']['state']['nodes']['$array']}.npy"
    nodes = np.load(io.BytesIO(parts[name]))
    edit(nodes, tree)
    parts[name], parts["doc.json"] = npy(nodes), json.dumps(doc).encode()
    with pytest.raises(ValueError, match=match):
        loads(rebuild(parts))


def test_loads_refuses_a_forest_reading_features_its_input_lacks(rows):
    data = dumps(M.IsolationForestModel(n_estimators=3).fit(rows, 0))
    parts = members(data)
    doc = json.loads(parts["doc.json"])
    forest = next(find_objs(doc, "sklearn.IsolationForest"))
    forest["state"]["n_features_in_"] = 4  # but its trees read 9 columns
    parts["doc.json"] = json.dumps(doc).encode()
    with pytest.raises(ValueError, match="IsolationForest"):
        loads(rebuild(parts))


# ------------------------------------------------------------------------------ model folders


@pytest.fixture(scope="module")
def fleet():
    sim = simulate(SimConfig(meters=12, days=12, seed=8, fault_share=0.5,
                             faults=("theft_under_registration", "level_shift"), **{
                                 k: v for k, v in HEALTHY.items() if k not in ("fault_share",)}))
    frame = prepare(sim["frame"])
    return frame, prepare(frame[profile_mask(frame, 6)])


FAST = {"max_train_rows": 4000}
CONFIGS = {"isolation_forest": FAST, "local_outlier_factor": {**FAST, "max_fit_rows": 2000},
           "pca_reconstruction": FAST, "autoencoder": {**FAST, "epochs": 3},
           "lstm_autoencoder": {**FAST, "epochs": 1, "max_fit_rows": 2000}, "learned_ensemble": FAST}


def fitted_parts(state):
    """Every fitted (scaler, model, calibrator, persistence calibrator) in a detector's
    ``model_state()``, in a fixed order: a dict holding ``model_`` (the detector's own, or each
    ensemble member's, at whatever level the state keeps them)."""
    from wattwatch.detect.learned.detectors import LearnedDetector

    if isinstance(state, LearnedDetector):  # members kept as detectors
        yield from fitted_parts(state.model_state())
    elif isinstance(state, dict):
        if isinstance(state.get("model_"), M.Model):
            yield state["scaler_"], state["model_"], state["calibrator_"], state["persist_cal_"]
        for k in sorted(state):
            yield from fitted_parts(state[k])
    elif isinstance(state, (list, tuple)):
        for v in state:
            yield from fitted_parts(v)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_trained_detectors_round_trip_through_a_model_folder(name, fleet, tmp_path):
    frame, prof = fleet
    d = registry.build(name, CONFIGS[name]).train(prof)
    folder = save_models([d], tmp_path / "m", {"period": "test"})
    assert not list(folder.glob("*.joblib"))
    (loaded,) = load_models(folder)
    assert type(loaded) is type(d) and loaded.config == d.config and loaded.locked
    assert dumps_state(loaded.model_state()) == dumps_state(d.model_state())  # everything came back
    X = Baseline(d.config.features()).fit(prof).features(frame).rows()  # feature rows of every meter
    parts, back = list(fitted_parts(d.model_state())), list(fitted_parts(loaded.model_state()))
    assert len(parts) == len(back) == (len(d.config.members) if name == "learned_ensemble" else 1)
    for (scaler, model, cal, pcal), (lscaler, lmodel, lcal, lpcal) in zip(parts, back):
        assert type(lmodel) is type(model) and lmodel is not model
        Xs = scaler.transform(X)
        assert same(lscaler.transform(X), Xs)
        if model.sequence:
            Xs = sequences(Xs, model.steps)
        raw = model.raw(Xs)
        assert same(lmodel.raw(Xs), raw)
        assert same(lmodel.contributions(Xs[:200]), model.contributions(Xs[:200]))
        for a, b in ((cal, lcal), (pcal, lpcal)):
            sa, sb = a.to_state(), b.to_state()
            assert sa.keys() == sb.keys() and all(same(sa[k], sb[k]) for k in sa)
        assert same(lcal.log10_exceedance(raw), cal.log10_exceedance(raw))
    # Objects shared in training stay shared (the ensemble's one scaler for every member).
    assert [[a[0] is b[0] for b in parts] for a in parts] == [[a[0] is b[0] for b in back] for a in back]
    # The blob form: the same bytes, the same state.
    blob = dumps_state(d.model_state())
    assert dumps_state(loads_state(blob)) == blob


@pytest.fixture
def folder(fleet, tmp_path):
    _, prof = fleet
    d = registry.build("pca_reconstruction", FAST).train(prof)
    out = save_models([d], tmp_path / "m")
    # Named as before content names (b1): `pca_reconstruction.wwm`, which the tests below edit.
    file = json.loads((out / MANIFEST).read_text())["detectors"]["pca_reconstruction"]["file"]
    (out / file).rename(out / "pca_reconstruction.wwm")
    edit_manifest(out, file="pca_reconstruction.wwm")
    load_models(out)  # the control: as saved, it loads
    return out


def edit_manifest(folder, **entry):
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["detectors"]["pca_reconstruction"].update(entry)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("where", ["../x.wwm", "ABS", "sub/x.wwm", "..", "."])
def test_manifest_may_only_name_files_in_its_folder(folder, where):
    data = (folder / "pca_reconstruction.wwm").read_bytes()
    if where == "ABS":
        where = str(folder.parent / "abs.wwm")
    target = (folder / where)
    if where not in ("..", "."):
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(data)  # a valid model with the right hash: only the path rule refuses it
    edit_manifest(folder, file=where, sha256=sha(data))
    with pytest.raises(ModelFormatError, match="plain names inside the model folder"):
        load_models(folder)


def test_symlinks_may_not_leave_the_folder(folder):
    data = (folder / "pca_reconstruction.wwm").read_bytes()
    (folder.parent / "outside.wwm").write_bytes(data)
    (folder / "inside.wwm").symlink_to(folder / "pca_reconstruction.wwm")
    edit_manifest(folder, file="inside.wwm", sha256=sha(data))
    load_models(folder)  # a link within the folder is fine
    (folder / "link.wwm").symlink_to(folder.parent / "outside.wwm")
    edit_manifest(folder, file="link.wwm")
    with pytest.raises(ModelFormatError, match="leads outside the model folder"):
        load_models(folder)


def test_changed_files_are_refused_before_they_are_read(folder):
    path = folder / "pca_reconstruction.wwm"
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="does not match the sha256"):
        load_models(folder)
    edit_manifest(folder, sha256=None)
    with pytest.raises(ModelFormatError, match="records no sha256"):
        load_models(folder)


def test_a_pickle_in_a_model_folder_is_never_loaded(folder, tmp_path):
    marker = tmp_path / "ran"
    payload = live_pickle(marker)
    (folder / "pca_reconstruction.wwm").write_bytes(payload)
    edit_manifest(folder, sha256=sha(payload))  # even with a matching hash
    with pytest.raises(ModelFormatError, match="pickle"):
        load_models(folder)
    assert not marker.exists()


def test_old_joblib_folders_fail_clearly_without_unpickling(folder, tmp_path):
    import joblib

    marker = tmp_path / "ran"
    live_pickle(marker)
    joblib.dump(_Boom(marker), folder / "pca_reconstruction.joblib")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["format"] = 3
    manifest["detectors"]["pca_reconstruction"]["file"] = "pca_reconstruction.joblib"
    del manifest["detectors"]["pca_reconstruction"]["sha256"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=rf"model format 3, .* \(model format {MODEL_FORMAT}, .* retrain"):
        load_models(folder)
    # A current manifest naming the pickle, with its hash: refused all the same.
    manifest["format"] = MODEL_FORMAT
    manifest["detectors"]["pca_reconstruction"]["sha256"] = sha((folder / "pca_reconstruction.joblib").read_bytes())
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="not a wattwatch state archive"):
        load_models(folder)
    assert not marker.exists()


def test_state_blobs_are_checked(folder):
    with pytest.raises(ValueError, match="not a learned detector's fleet state"):
        loads_state(dumps({"scaler_": None}))
    # A valid archive whose state is not one a detector takes: refused, not set on the detector.
    evil = dumps_state({"300": {"score": [1, 2]}})
    (folder / "pca_reconstruction.wwm").write_bytes(evil)
    edit_manifest(folder, sha256=sha(evil))
    with pytest.raises(ModelFormatError, match="pca_reconstruction.wwm"):
        load_models(folder)

"""A safe storage format for fitted models: nothing in it is executed when it is read.

``dumps(obj) -> bytes`` and ``loads(data) -> obj`` replace pickles (joblib) for the learned
detectors' state, both in model folders and as blobs in the store. Loading a pickle runs whatever
callables the file names; loading this format only ever builds plain values, numeric arrays and
the classes of a fixed whitelist (:data:`CLASSES`), from their stored state.

The archive is an uncompressed zip (bytes are deterministic: same object, same bytes)::

    doc.json         {"format": "wattwatch-state", "version": 1, "arrays": n, "root": <value>}
    arrays/0.npy     numpy's .npy format, written and read without pickles
    arrays/1.npy ...

A value in ``doc.json`` is JSON null / bool / int / float / str / list, a JSON object (a dict with
str keys) or one of these tagged forms (an object with a key starting with ``$``):

    {"$tuple": [...]}                    a tuple
    {"$dict": {...}}                     a dict some of whose keys start with "$"
    {"$float": "nan" | "inf" | "-inf"}   the floats JSON has no literal for
    {"$array": i}                        arrays/<i>.npy (bool, int, uint, float, complex, or a
                                         structured dtype of those: sklearn's tree nodes)
    {"$scalar": [dtype, value]}          a numpy scalar (np.float32(0.5), np.int64(3), ...)
    {"$obj": tag, "id": k, "state": v}   an instance of the whitelisted class ``tag``, rebuilt from
                                         its state ``v`` by that class's own code
    {"$ref": k}                          the same instance as ``$obj`` number ``k`` (shared objects,
                                         e.g. one scaler for every ensemble member, stay shared)

``loads`` never unpickles, never imports a name read from the data (a tag is only a key into
:data:`CLASSES`, whose modules are fixed here) and raises ``ValueError`` saying what it did not
expect for anything else: another version, a stray archive member, an object or string array, a
class outside the whitelist, a tree whose node indices point outside it (scikit-learn's Cython
tree walk trusts them). ``dumps`` raises ``TypeError`` for a value it cannot store.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import zipfile
from typing import Any, Callable, NamedTuple

import numpy as np

FORMAT = "wattwatch-state"
VERSION = 1  # bump when a stored form changes meaning; loads refuses any other
DOC = "doc.json"
_ARRAY_NAME = "arrays/{}.npy"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same object always gives the same bytes
_MAX_DEPTH = 100  # nesting of lists / dicts / objects; deeper is a cycle or a crafted document


# ------------------------------------------------------------------------------ public API


def dumps(obj: Any) -> bytes:
    """``obj`` as archive bytes (see the module doc for what can be stored)."""
    enc = _Encoder()
    root = enc.value(obj, 0)
    doc = {"format": FORMAT, "version": VERSION, "arrays": len(enc.arrays), "root": root}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo(DOC, _ZIP_DATE),
                    json.dumps(doc, allow_nan=False, separators=(",", ":")).encode())
        for i, arr in enumerate(enc.arrays):
            out = io.BytesIO()
            np.lib.format.write_array(out, arr, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(_ARRAY_NAME.format(i), _ZIP_DATE), out.getvalue())
    return buf.getvalue()


def loads(data: bytes) -> Any:
    """The object ``dumps`` stored in ``data``; ``ValueError`` if ``data`` is anything else."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads expects bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(b"PK\x03\x04"):
        what = "a pickle" if data[:1] == b"\x80" else f"data starting {data[:8]!r}"
        raise ValueError(f"not a wattwatch state archive: {what} (pickles are never loaded)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a wattwatch state archive: unreadable zip ({exc})") from None
    with zf:
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise ValueError(f"state archive: duplicate members {sorted({n for n in names if names.count(n) > 1})}")
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise ValueError(f"state archive: member {info.filename!r} is compressed or encrypted; "
                                 "dumps writes stored members only")
        if DOC not in names:
            raise ValueError(f"state archive: no {DOC}; members are {names[:10]}")
        doc = _read_doc(_member(zf, DOC))
        n = doc["arrays"]
        expected = {DOC} | {_ARRAY_NAME.format(i) for i in range(n)}
        if set(names) != expected:
            extra, missing = sorted(set(names) - expected), sorted(expected - set(names))
            raise ValueError(f"state archive: unexpected members {extra[:10]}, missing {missing[:10]}")
        arrays = [_read_npy(_member(zf, _ARRAY_NAME.format(i)), _ARRAY_NAME.format(i)) for i in range(n)]
    try:
        return _Decoder(arrays).value(doc["root"], 0)
    except RecursionError:
        raise ValueError("state archive: document nested too deeply") from None


def _member(zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ValueError(f"state archive: member {name} is unreadable ({exc})") from None


# ------------------------------------------------------------------------------ the whitelist


class _Class(NamedTuple):
    module: str  # imported by this fixed name, never by one read from an archive
    name: str
    state: Callable[[Any], dict]  # instance -> its state (a dict of storable values)
    build: Callable[[type, dict], Any]  # (class, decoded state) -> instance, validated


def _model_state(obj) -> dict:
    return obj.to_state()


def _model_build(cls, state):
    return cls.from_state(state)


def _sk_state(obj) -> dict:
    """A scikit-learn estimator's pickle state (its ``__dict__`` plus ``_sklearn_version``)."""
    return obj.__getstate__()


def _sk_build(cls, state, check: Callable[[Any], None] | None = None):
    for k in state:
        if not (k.isidentifier() and not k.startswith("__")):
            raise ValueError(f"{cls.__name__}: unexpected attribute name {k!r}")
    obj = cls.__new__(cls)
    obj.__setstate__(dict(state))  # BaseEstimator's: warns if saved by another scikit-learn version
    if check is not None:
        check(obj)
    return obj


def _lof_state(obj) -> dict:
    state = _sk_state(obj)
    state.pop("_tree", None)  # rebuilt from the training rows on load (a KDTree holds C structures)
    return state


# Distances LOF may use here: the Minkowski family (no weight or matrix parameters to check).
_LOF_METRICS = ("euclidean", "l2", "manhattan", "cityblock", "l1", "chebyshev", "infinity", "minkowski", "p")


def _lof_build(cls, state):
    if "_tree" in state:
        raise ValueError("LocalOutlierFactor: unexpected attribute _tree (it is rebuilt, never stored)")
    obj = _sk_build(cls, state)
    method = getattr(obj, "_fit_method", None)
    if method is None:  # not fitted
        return obj
    from sklearn.neighbors import BallTree, KDTree

    X = getattr(obj, "_fit_X", None)
    metric, params = getattr(obj, "effective_metric_", None), getattr(obj, "effective_metric_params_", None)
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype.kind != "f":
        raise ValueError("LocalOutlierFactor: _fit_X must be a 2-D float array")
    if metric not in _LOF_METRICS or not isinstance(params, dict) or set(params) - {"p"} \
            or not all(type(v) in (int, float) and v >= 1 for v in params.values()):
        raise ValueError(f"LocalOutlierFactor: unexpected metric {metric!r:.50} with parameters {params!r:.100}")
    if obj.n_samples_fit_ != len(X) or obj.n_features_in_ != X.shape[1]:
        raise ValueError("LocalOutlierFactor: n_samples_fit_ / n_features_in_ disagree with _fit_X")
    # As NearestNeighbors._fit builds it: same rows, same arguments, so the same tree.
    if type(obj.leaf_size) is not int or obj.leaf_size < 1:
        raise ValueError("LocalOutlierFactor: unexpected leaf_size")
    if method == "kd_tree":
        obj._tree = KDTree(X, obj.leaf_size, metric=metric, **params)
    elif method == "ball_tree":
        obj._tree = BallTree(X, obj.leaf_size, metric=metric, **params)
    elif method == "brute":
        obj._tree = None
    else:
        raise ValueError(f"LocalOutlierFactor: unexpected _fit_method {method!r}")
    return obj


def _check_extra_tree(est) -> None:
    from sklearn.tree._tree import Tree

    tree = getattr(est, "tree_", None)
    if tree is None:
        return
    if type(tree) is not Tree or getattr(est, "n_features_in_", None) != tree.n_features:
        raise ValueError("ExtraTreeRegressor: n_features_in_ disagrees with its tree")


def _check_iforest(est) -> None:
    """The forest scores with ``tree.apply(X[:, features], check_input=False)``: every tree must
    read only columns that its feature subset (and the forest's input) has."""
    from sklearn.tree import ExtraTreeRegressor

    trees = getattr(est, "estimators_", None)
    if trees is None:
        return
    feats = getattr(est, "estimators_features_", None)
    d, k = getattr(est, "n_features_in_", None), getattr(est, "_max_features", None)
    if not (isinstance(trees, list) and isinstance(feats, list) and len(trees) == len(feats)):
        raise ValueError("IsolationForest: estimators_ and estimators_features_ must be lists of one length")
    if not (type(d) is int and type(k) is int and 1 <= k <= d):
        raise ValueError("IsolationForest: unexpected n_features_in_ / _max_features")
    for name in ("_decision_path_lengths", "_average_path_length_per_tree"):
        t = getattr(est, name, None)  # indexed by leaf in numpy (bounds checked), when this version has them
        if t is not None and (len(t) != len(trees) or not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in t)):
            raise ValueError(f"IsolationForest: {name} does not match the trees")
    for tree, f in zip(trees, feats):
        if type(tree) is not ExtraTreeRegressor or not hasattr(tree, "tree_"):
            raise ValueError("IsolationForest: estimators_ must be fitted ExtraTreeRegressors")
        if not (isinstance(f, np.ndarray) and f.ndim == 1 and f.dtype.kind in "iu" and len(f) == k
                and (len(f) == 0 or (f.min() >= 0 and f.max() < d))):
            raise ValueError("IsolationForest: a tree's feature subset is out of range")
        if tree.tree_.n_features != k:
            raise ValueError("IsolationForest: a tree reads more features than its subset holds")


def _tree_state(tree) -> dict:
    cls, (n_features, n_classes, n_outputs), state = tree.__reduce__()
    return {"n_features": int(n_features), "n_classes": np.asarray(n_classes), "n_outputs": int(n_outputs),
            "state": dict(state)}


def _tree_build(cls, s):
    from sklearn.tree._tree import NODE_DTYPE

    _keys("Tree", s, {"n_features", "n_classes", "n_outputs", "state"})
    n_features, n_classes, n_outputs, state = s["n_features"], s["n_classes"], s["n_outputs"], s["state"]
    _keys("Tree state", state, {"max_depth", "node_count", "nodes", "values"})
    nodes, values, count, depth = state["nodes"], state["values"], state["node_count"], state["max_depth"]
    if not (type(n_features) is int and type(n_outputs) is int and 1 <= n_features and 1 <= n_outputs <= 1 << 16):
        raise ValueError("Tree: unexpected n_features / n_outputs")
    if not (isinstance(n_classes, np.ndarray) and n_classes.shape == (n_outputs,) and n_classes.dtype.kind in "iu"
            and n_classes.min() >= 1 and n_classes.max() <= 1 << 20):
        raise ValueError("Tree: unexpected n_classes")
    if not (isinstance(nodes, np.ndarray) and nodes.dtype == NODE_DTYPE and nodes.ndim == 1):
        raise ValueError(f"Tree: nodes must be a 1-D array of {NODE_DTYPE}")
    if not (type(count) is int and count == len(nodes) >= 1 and type(depth) is int and 0 <= depth < count):
        raise ValueError("Tree: node_count / max_depth disagree with the nodes")
    if not (isinstance(values, np.ndarray) and values.dtype == np.float64
            and values.shape == (count, n_outputs, int(n_classes.max()))):
        raise ValueError("Tree: values do not match the nodes")
    # The Cython code trusts these: a walk follows child indices and reads X[:, feature] unchecked,
    # decision_path sizes its buffer from max_depth. So: children lie after their parent inside the
    # array (every walk ends), every node but the root is the child of exactly one node (a tree),
    # features lie in [0, n_features), and max_depth is the depth of the deepest leaf.
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == -1
    idx = np.arange(count)
    inner_ok = ((left > idx) & (left < count) & (right > idx) & (right < count) & (feature >= 0)
                & (feature < n_features))
    if not np.all(np.where(leaf, right == -1, inner_ok)):
        raise ValueError("Tree: node children or features out of range")
    kids = np.concatenate([left[~leaf], right[~leaf]])
    if len(kids) != count - 1 or np.any(np.bincount(kids, minlength=count)[1:] != 1):
        raise ValueError("Tree: nodes do not form one tree")
    level, frontier = 0, np.zeros(1, np.int64)
    while True:
        inner = frontier[~leaf[frontier]]
        if not len(inner):
            break
        frontier, level = np.concatenate([left[inner], right[inner]]), level + 1
    if level != depth:
        raise ValueError(f"Tree: max_depth {depth} but its deepest leaf is at depth {level}")
    tree = cls(n_features, n_classes.astype(np.intp), n_outputs)
    tree.__setstate__({"max_depth": depth, "node_count": count, "nodes": np.ascontiguousarray(nodes),
                       "values": np.ascontiguousarray(values)})
    return tree


_WW = "wattwatch.detect.learned.models"

#: tag -> class: the only classes ``loads`` builds.
CLASSES: dict[str, _Class] = {
    "wattwatch.TailCalibrator": _Class(_WW, "TailCalibrator", _model_state, _model_build),
    "wattwatch.GaussianScaler": _Class(_WW, "GaussianScaler", _model_state, _model_build),
    "wattwatch.IsolationForestModel": _Class(_WW, "IsolationForestModel", _model_state, _model_build),
    "wattwatch.LOFModel": _Class(_WW, "LOFModel", _model_state, _model_build),
    "wattwatch.PCAModel": _Class(_WW, "PCAModel", _model_state, _model_build),
    "wattwatch.DenseAEModel": _Class(_WW, "DenseAEModel", _model_state, _model_build),
    "wattwatch.LSTMAEModel": _Class(_WW, "LSTMAEModel", _model_state, _model_build),
    "sklearn.IsolationForest": _Class("sklearn.ensemble", "IsolationForest", _sk_state,
                                      lambda c, s: _sk_build(c, s, _check_iforest)),
    "sklearn.ExtraTreeRegressor": _Class("sklearn.tree", "ExtraTreeRegressor", _sk_state,
                                         lambda c, s: _sk_build(c, s, _check_extra_tree)),
    "sklearn.Tree": _Class("sklearn.tree._tree", "Tree", _tree_state, _tree_build),
    "sklearn.LocalOutlierFactor": _Class("sklearn.neighbors", "LocalOutlierFactor", _lof_state, _lof_build),
    "sklearn.PCA": _Class("sklearn.decomposition", "PCA", _sk_state, _sk_build),
}

_by_type: dict[type, str] = {}


def _class(tag: str) -> type:
    c = CLASSES[tag]
    return getattr(importlib.import_module(c.module), c.name)


def _tag_of(t: type) -> str | None:
    if t in _by_type:
        return _by_type[t]
    root = t.__module__.partition(".")[0]
    for tag, c in CLASSES.items():
        # Only look in the library the type comes from: storing a TailCalibrator imports no sklearn.
        if c.module.partition(".")[0] == root and _class(tag) is t:
            _by_type[t] = tag
            return tag
    return None


def _keys(what: str, state, expected: set[str], optional: set[str] = frozenset()) -> None:
    if not isinstance(state, dict):
        raise ValueError(f"{what}: expected a dict, got {type(state).__name__}")
    missing, unknown = expected - set(state), set(state) - expected - set(optional)
    if missing or unknown:
        raise ValueError(f"{what}: unexpected state (missing {sorted(missing)}, unknown {sorted(unknown)})")


# ------------------------------------------------------------------------------ arrays

_FLOAT_SIZES = {"f": (2, 4, 8), "c": (8, 16)}  # no long double: its layout is the platform's


def _plain_dtype(dt: np.dtype) -> bool:
    return (dt.fields is None and dt.subdtype is None and dt.kind in "biufc"
            and dt.itemsize in _FLOAT_SIZES.get(dt.kind, (dt.itemsize,)))


def _array_dtype_ok(dt: np.dtype) -> bool:
    if dt.fields is not None:
        return len(dt.fields) > 0 and all(_plain_dtype(f[0]) for f in dt.fields.values())
    return _plain_dtype(dt)


def _read_npy(raw: bytes, name: str) -> np.ndarray:
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"npy version {version}")
    except (ValueError, TypeError, SyntaxError, OverflowError, MemoryError) as exc:
        raise ValueError(f"state archive: {name} is not a readable .npy array ({exc})") from None
    if not _array_dtype_ok(dtype):
        raise ValueError(f"state archive: {name} has dtype {dtype}; only bool / int / float / complex arrays "
                         "(or records of them) are stored")
    if any(n < 0 for n in shape):
        raise ValueError(f"state archive: {name} has shape {shape}")
    count = math.prod(shape)
    offset = fp.tell()
    if len(raw) - offset != count * dtype.itemsize:
        raise ValueError(f"state archive: {name} holds {len(raw) - offset} data bytes, its header says "
                         f"{count * dtype.itemsize}")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C").copy(order="K")  # writable, own memory


# ------------------------------------------------------------------------------ encoding


_SCALAR_KINDS = "biuf"


def _float(x: float):
    if math.isfinite(x):
        return x
    return {"$float": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


class _Encoder:
    def __init__(self):
        self.arrays: list[np.ndarray] = []
        self.array_ids: dict[int, int] = {}
        self.obj_ids: dict[int, int] = {}
        self.keep: list[Any] = []  # referenced objects stay alive, so their id() stays theirs
        self.open: set[int] = set()

    def value(self, x, depth: int):
        if depth > _MAX_DEPTH:
            raise TypeError(f"cannot store: nested more than {_MAX_DEPTH} deep (a cycle?)")
        t = type(x)
        if x is None or t is bool or t is int or t is str:
            return x
        if t is float:
            return _float(x)
        if t is list:
            return [self.value(v, depth + 1) for v in x]
        if t is tuple:
            return {"$tuple": [self.value(v, depth + 1) for v in x]}
        if t is dict:
            bad = [k for k in x if type(k) is not str]
            if bad:
                raise TypeError(f"cannot store a dict with non-str key {bad[0]!r}")
            out = {k: self.value(v, depth + 1) for k, v in x.items()}
            return {"$dict": out} if any(k.startswith("$") for k in out) else out
        if t is np.ndarray:
            return {"$array": self.array(x)}
        if isinstance(x, np.generic):
            if not _plain_dtype(x.dtype) or x.dtype.kind not in _SCALAR_KINDS:
                raise TypeError(f"cannot store numpy scalar of dtype {x.dtype}")
            v = x.item()
            return {"$scalar": [x.dtype.str, _float(v) if isinstance(v, float) else v]}
        tag = _tag_of(t)
        if tag is None:
            raise TypeError(f"cannot store {t.__module__}.{t.__qualname__}: not a plain value, numeric array or "
                            f"a whitelisted class ({', '.join(CLASSES)})")
        if id(x) in self.obj_ids:
            return {"$ref": self.obj_ids[id(x)]}
        if id(x) in self.open:
            raise TypeError(f"cannot store {t.__qualname__}: it contains itself")
        self.open.add(id(x))
        state = CLASSES[tag].state(x)
        if type(state) is not dict:
            raise TypeError(f"{t.__qualname__}: its state must be a dict, got {type(state).__name__}")
        enc = self.value(state, depth + 1)
        self.open.discard(id(x))
        k = len(self.obj_ids)
        self.obj_ids[id(x)] = k
        self.keep.append(x)
        return {"$obj": tag, "id": k, "state": enc}

    def array(self, a: np.ndarray) -> int:
        if id(a) in self.array_ids:
            return self.array_ids[id(a)]
        if not _array_dtype_ok(a.dtype):
            raise TypeError(f"cannot store an array of dtype {a.dtype}: only bool / int / float / complex arrays "
                            "(or records of them)")
        self.array_ids[id(a)] = len(self.arrays)
        self.keep.append(a)
        if a.dtype.fields is not None:
            # Records copied field by field: padding bytes (uninitialised memory in sklearn's tree
            # nodes) are written as zeros, not as whatever the heap held.
            out = np.zeros(a.shape, a.dtype, order="F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C")
            for f in a.dtype.names:
                out[f] = a[f]
            a = out
        self.arrays.append(a)
        return len(self.arrays) - 1


# ------------------------------------------------------------------------------ decoding


def _no_constant(name):
    raise ValueError(f"state archive: {DOC} holds the non-JSON constant {name}")


def _unique_keys(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError(f"state archive: {DOC} has an object with duplicate keys")
    return d


def _read_doc(raw: bytes) -> dict:
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"state archive: {DOC} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"state archive: {DOC} is not a {FORMAT} document")
    if doc.get("version") != VERSION:
        raise ValueError(f"state archive: format version {doc.get('version')!r}; this wattwatch reads version "
                         f"{VERSION} only (retrain, or load it with the wattwatch that wrote it)")
    _keys(DOC, doc, {"format", "version", "arrays", "root"})
    if type(doc["arrays"]) is not int or not 0 <= doc["arrays"] <= 1_000_000:
        raise ValueError(f"state archive: unexpected array count {doc['arrays']!r}")
    return doc


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class _Decoder:
    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays
        self.objs: dict[int, Any] = {}

    def value(self, v, depth: int):
        if depth > _MAX_DEPTH:
            raise ValueError(f"state archive: document nested more than {_MAX_DEPTH} deep")
        t = type(v)
        if v is None or t is bool or t is int or t is float or t is str:
            return v
        if t is list:
            return [self.value(x, depth + 1) for x in v]
        if t is not dict:  # pragma: no cover - json gives no other types
            raise ValueError(f"state archive: unexpected JSON value of type {t.__name__}")
        tags = [k for k in v if k.startswith("$")]
        if not tags:
            return {k: self.value(x, depth + 1) for k, x in v.items()}
        tag = tags[0]
        if tag == "$obj":
            return self.obj(v, depth)
        if len(v) != 1:
            raise ValueError(f"state archive: unexpected keys {sorted(v)} in a tagged value")
        x = v[tag]
        if tag == "$tuple" and type(x) is list:
            return tuple(self.value(e, depth + 1) for e in x)
        if tag == "$dict" and type(x) is dict:
            return {k: self.value(e, depth + 1) for k, e in x.items()}
        if tag == "$float" and x in _NONFINITE:
            return _NONFINITE[x]
        if tag == "$array" and type(x) is int and 0 <= x < len(self.arrays):
            return self.arrays[x]
        if tag == "$scalar":
            return self.scalar(x)
        if tag == "$ref" and type(x) is int:
            if x not in self.objs:
                raise ValueError(f"state archive: reference to object {x}, which is not (yet) defined")
            return self.objs[x]
        raise ValueError(f"state archive: unexpected tagged value {json.dumps(v)[:200]}")

    def scalar(self, x):
        if not (type(x) is list and len(x) == 2 and type(x[0]) is str and len(x[0]) <= 8):
            raise ValueError(f"state archive: unexpected numpy scalar {x!r:.200}")
        try:
            dt = np.dtype(x[0])
        except (TypeError, ValueError):
            raise ValueError(f"state archive: unexpected numpy scalar dtype {x[0]!r}") from None
        if not _plain_dtype(dt) or dt.kind not in _SCALAR_KINDS:
            raise ValueError(f"state archive: unexpected numpy scalar dtype {dt}")
        val = x[1]
        if type(val) is dict and set(val) == {"$float"} and val["$float"] in _NONFINITE:
            val = _NONFINITE[val["$float"]]
        ok = {"b": (bool,), "i": (int,), "u": (int,), "f": (float, int)}[dt.kind]
        if type(val) not in ok:
            raise ValueError(f"state archive: numpy scalar {dt} with a {type(val).__name__} value")
        try:
            return dt.type(val)
        except OverflowError:
            raise ValueError(f"state archive: {val} does not fit {dt}") from None

    def obj(self, v, depth: int):
        if set(v) != {"$obj", "id", "state"}:
            raise ValueError(f"state archive: an object needs exactly $obj, id and state; got {sorted(v)}")
        tag, k = v["$obj"], v["id"]
        if type(tag) is not str or tag not in CLASSES:
            raise ValueError(f"state archive: class {str(tag)[:100]!r} is not one wattwatch loads "
                             f"(whitelist: {', '.join(CLASSES)})")
        if type(k) is not int or k in self.objs:
            raise ValueError(f"state archive: object id {k!r} is not a new integer")
        state = self.value(v["state"], depth + 1)
        if type(state) is not dict:
            raise ValueError(f"state archive: the state of {tag} must be a dict")
        try:
            obj = CLASSES[tag].build(_class(tag), state)
        except ValueError:
            raise
        except (TypeError, KeyError, AttributeError, IndexError) as exc:
            raise ValueError(f"state archive: cannot rebuild {tag} from its state: {type(exc).__name__}: {exc}") \
                from None
        self.objs[k] = obj
        return obj

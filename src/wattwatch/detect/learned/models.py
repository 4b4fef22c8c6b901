"""The models behind the learned detectors, and the calibration that puts their scores on one scale.

Each model takes scaled feature rows (or sequences of rows) and returns a raw outlier score,
higher = more abnormal, plus per-feature contributions for explanations. The algorithms are the
libraries': scikit-learn's IsolationForest, LocalOutlierFactor and PCA, torch for the two
autoencoders; what is here is the wiring (seeds, sample sizes, batching) and the calibration.

Calibration (``TailCalibrator``): a raw score becomes the probability that a *normal* row scores
at least as high (its exceedance probability), read off the training scores; beyond their top
``tail`` share the exceedance follows an exponential tail fitted to the excesses (so a score far
beyond anything seen in training still ranks, instead of saturating at 1/n). The tail's scale is
known only as well as the number of independent tail events ``k_`` the training held: the tail
used is the exponential's posterior predictive, ``(1 + x / (k_ beta))^-k_`` (Lomax), which is the
exponential for a fleet's hundreds of events and decays only like a power of ``x`` when a model
was trained on a few days of one meter (whose trailing-mean scores exceed the tail in one or two
runs): a short history is judged cautiously, not extrapolated to p = 1e-89. Every detector's
score is then ``log10(1 / p) / log10(1 / alpha)``: 1.0 means "a normal row scores this high once
in 1/alpha", whichever model produced it, for every meter.

Storage: every class here has ``to_state()`` (its constructor arguments and fitted attributes as
plain values, numeric arrays and the scikit-learn objects :mod:`serialize` rebuilds) and
``from_state(state)`` (the inverse, checking what it is given); :mod:`serialize` stores them
without pickles.
"""

from __future__ import annotations

import numpy as np

# torch is imported inside the autoencoders: `import wattwatch` and the rules stay light.


def _check_state(cls, state, required: tuple = (), fitted: tuple = ()) -> bool:
    """``state`` has the keys ``required``, and either all of ``fitted`` or none (an unfitted
    model); ``ValueError`` naming what is missing or unknown otherwise. True when fitted."""
    if not isinstance(state, dict):
        raise ValueError(f"{cls.__name__}: state must be a dict, got {type(state).__name__}")
    keys = set(state)
    missing, unknown = set(required) - keys, keys - set(required) - set(fitted)
    partial = sorted(set(fitted) - keys) if keys & set(fitted) else []
    if missing or unknown or partial:
        raise ValueError(f"{cls.__name__}: unexpected state (missing {sorted(missing) + partial}, unknown "
                         f"{sorted(unknown)})")
    return bool(fitted) and set(fitted) <= keys


def _array(cls, name: str, a, ndim: int, kind: str = "f") -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim != ndim or a.dtype.kind not in kind:
        raise ValueError(f"{cls.__name__}: {name} must be a {ndim}-D array of kind {kind!r}")
    return a


def _number(cls, name: str, x, types=(int, float)):
    if type(x) not in types:
        raise ValueError(f"{cls.__name__}: {name} must be {' or '.join(t.__name__ for t in types)}, got {x!r:.50}")
    return x


def runs(flags: np.ndarray, gap: int) -> int:
    """Number of runs of True along axis 1 of a meters x bins matrix, a run ending only after more
    than ``gap`` bins without a True (the same meter); vectorised over meters."""
    flags = np.atleast_2d(np.asarray(flags, bool))
    m, b = np.nonzero(flags)
    if not len(m):
        return 0
    pos = m.astype(np.int64) * (flags.shape[1] + int(gap) + 1) + b  # meters never join one run
    return int(1 + np.count_nonzero(np.diff(pos) > int(gap) + 1))


class TailCalibrator:
    """Monotone map from raw scores to exceedance probability under the training distribution."""

    def __init__(self, tail: float = 0.02, n_quantiles: int = 2001):
        self.tail = tail
        self.n_quantiles = n_quantiles

    def fit(self, raw: np.ndarray, series: np.ndarray | None = None, gap: int = 0) -> "TailCalibrator":
        """Fit on training scores ``raw``. ``series``, ``gap``: the same scores as a meters x bins
        matrix in time order (NaN: no score), when neighbouring scores share their data (a
        trailing mean): tail events are then counted as runs of exceedances, a new one only after
        more than ``gap`` bins without one (runs declustering); otherwise each excess counts."""
        raw = np.asarray(raw, float)
        raw = raw[np.isfinite(raw)]
        if len(raw) < 10:
            raise ValueError(f"calibration needs at least 10 finite training scores, got {len(raw)}")
        probs = np.linspace(0.0, 1.0, self.n_quantiles)
        self.levels_ = np.quantile(raw, probs)
        self.exceed_ = 1.0 - probs
        self.u_ = float(np.quantile(raw, 1 - self.tail))
        excess = raw[raw > self.u_] - self.u_
        spread = float(np.std(raw)) or 1.0
        self.beta_ = float(excess.mean()) if len(excess) and excess.mean() > 0 else spread
        self.k_ = float(max(1, len(excess) if series is None else runs(series > self.u_, gap)))
        return self

    def log10_exceedance(self, raw: np.ndarray) -> np.ndarray:
        """-log10 P(normal score >= raw): 0 for typical rows, growing without bound in the tail."""
        raw = np.asarray(raw, float)
        # Body: interpolate on the quantile table (levels may repeat: take the upper side).
        p = np.interp(raw, self.levels_, self.exceed_)
        out = -np.log10(np.maximum(p, self.tail))
        tail = raw > self.u_
        x = (raw[tail] - self.u_) / self.beta_
        k = getattr(self, "k_", np.inf)
        # Lomax: k log1p(x / k) -> x as k grows (a model stored before k_ was kept: the exponential).
        out[tail] = -np.log10(self.tail) + (k * np.log1p(x / k) if np.isfinite(k) else x) / np.log(10)
        return np.where(np.isfinite(raw), out, np.nan)

    _FITTED = ("levels_", "exceed_", "u_", "beta_")

    def to_state(self) -> dict:
        state = {"tail": self.tail, "n_quantiles": self.n_quantiles}
        if hasattr(self, "levels_"):
            state.update({k: getattr(self, k) for k in self._FITTED})
            if hasattr(self, "k_"):
                state["k_"] = self.k_
        return state

    @classmethod
    def from_state(cls, state: dict) -> "TailCalibrator":
        state = dict(state) if isinstance(state, dict) else state
        k = state.pop("k_", None) if isinstance(state, dict) and "levels_" in state else None
        fitted = _check_state(cls, state, ("tail", "n_quantiles"), cls._FITTED)
        obj = cls(_number(cls, "tail", state["tail"]), _number(cls, "n_quantiles", state["n_quantiles"], (int,)))
        if k is not None:
            obj.k_ = _number(cls, "k_", k, (float,))
            if not obj.k_ >= 1:
                raise ValueError(f"{cls.__name__}: k_ must be at least 1, got {obj.k_!r}")
        if fitted:
            obj.levels_ = _array(cls, "levels_", state["levels_"], 1)
            obj.exceed_ = _array(cls, "exceed_", state["exceed_"], 1)
            if len(obj.levels_) != len(obj.exceed_):
                raise ValueError(f"{cls.__name__}: levels_ and exceed_ differ in length")
            obj.u_, obj.beta_ = _number(cls, "u_", state["u_"]), _number(cls, "beta_", state["beta_"])
        return obj


class GaussianScaler:
    """Each feature mapped to a standard normal through its training quantiles (scikit-learn's
    QuantileTransformer): consumption features are heavy tailed (an appliance burst is a 50-sigma
    hour), and a model on raw or IQR-scaled values spends itself on them. Beyond the training range
    the map goes on linearly (in units of the feature's robust spread) instead of saturating, so a
    load halved for a day stays further out than anything normal; clipped at +-``clip``."""

    def __init__(self, clip: float = 12.0):
        self.clip = clip

    def fit(self, X: np.ndarray, seed: int) -> "GaussianScaler":
        from scipy.stats import norm
        from sklearn.preprocessing import QuantileTransformer

        flat = X.reshape(-1, X.shape[-1])
        qt = QuantileTransformer(n_quantiles=min(1000, len(flat)), output_distribution="normal",
                                 subsample=200_000, random_state=seed).fit(flat)
        # Its fitted quantiles, read back with one interpolation per column straight onto the
        # normal quantiles (precomputed): its transform up to interpolating in z instead of in
        # probability, without an inverse-normal call per value. Repeated quantiles (a feature
        # that is often exactly 0) map as in scikit-learn: the tied value itself to the middle of
        # its run's z, values just below / above it to the run's first / last z. Three knots one
        # ulp apart encode that jump, so one interpolation per value does it all.
        quantiles = np.asarray(qt.quantiles_, float)
        z = norm.ppf(np.clip(np.asarray(qt.references_, float), 1e-7, 1 - 1e-7))
        self.knots_ = []
        for j in range(quantiles.shape[1]):
            u, first, count = np.unique(quantiles[:, j], return_index=True, return_counts=True)
            last = first + count - 1
            tie = count > 1
            xs = np.concatenate([u, np.nextafter(u[tie], -np.inf), np.nextafter(u[tie], np.inf)])
            zs = np.concatenate([0.5 * (z[first] + z[last]), z[first][tie], z[last][tie]])
            order = np.argsort(xs, kind="stable")
            self.knots_.append((xs[order], zs[order]))
        self.lo_, self.hi_ = quantiles[0], quantiles[-1]
        iqr = np.quantile(flat, 0.75, axis=0) - np.quantile(flat, 0.25, axis=0)
        self.spread_ = np.where(iqr > 1e-9, iqr / 1.349, np.maximum(self.hi_ - self.lo_, 1e-3))
        self.edge_ = float(z[-1])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        shape = X.shape
        flat = X.reshape(-1, shape[-1])
        Z = np.empty(flat.shape, np.float32)
        for j, (u, zk) in enumerate(self.knots_):  # a loop over features (about ten), not rows
            x = flat[:, j]
            z = np.interp(x, u, zk)
            # Beyond the training range: on linearly, in units of the feature's robust spread.
            out = (x > self.hi_[j]) | (x < self.lo_[j])
            if out.any():
                edge = np.where(x[out] > self.hi_[j], self.edge_ + (x[out] - self.hi_[j]) / self.spread_[j],
                                -self.edge_ + (x[out] - self.lo_[j]) / self.spread_[j])
                z[out] = edge
            Z[:, j] = np.clip(z, -self.clip, self.clip)
        return Z.reshape(shape)

    _FITTED = ("knots_", "lo_", "hi_", "spread_", "edge_")

    def to_state(self) -> dict:
        state = {"clip": self.clip}
        if hasattr(self, "knots_"):
            state.update({k: getattr(self, k) for k in self._FITTED})
            state["knots_"] = [tuple(k) for k in self.knots_]
        return state

    @classmethod
    def from_state(cls, state: dict) -> "GaussianScaler":
        fitted = _check_state(cls, state, ("clip",), cls._FITTED)
        obj = cls(_number(cls, "clip", state["clip"]))
        if fitted:
            knots = state["knots_"]
            if not isinstance(knots, list) or not all(isinstance(k, tuple) and len(k) == 2 for k in knots):
                raise ValueError(f"{cls.__name__}: knots_ must be a list of (levels, z) pairs")
            for u, z in knots:
                if len(_array(cls, "knots_", u, 1)) != len(_array(cls, "knots_", z, 1)):
                    raise ValueError(f"{cls.__name__}: a knot's levels and z differ in length")
            obj.knots_ = knots
            for k in ("lo_", "hi_", "spread_"):
                if len(_array(cls, k, state[k], 1)) != len(knots):
                    raise ValueError(f"{cls.__name__}: {k} has {len(state[k])} features, knots_ {len(knots)}")
                setattr(obj, k, state[k])
            obj.edge_ = _number(cls, "edge_", state["edge_"])
        return obj


def seeded_rows(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``X`` itself, or ``n`` of its rows drawn without replacement by ``seed`` (in their order)."""
    if len(X) <= n:
        return X
    return X[np.sort(np.random.default_rng(seed).choice(len(X), n, replace=False))]


class Model:
    """Base: ``fit(X, seed)``, ``raw(X)`` (higher = worse) and ``contributions(X)``.
    ``X`` is scaled (robust z) float32; the default contributions are the squared z-scores."""

    sequence = False  # True: rows are (n, steps, features) sequences

    def fit(self, X: np.ndarray, seed: int) -> "Model":  # pragma: no cover - overridden
        raise NotImplementedError

    def raw(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def contributions(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float) ** 2

    def to_state(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict) -> "Model":  # pragma: no cover - overridden
        raise NotImplementedError


class IsolationForestModel(Model):
    def __init__(self, n_estimators: int = 100, contamination: float = 0.01, max_samples: int | str = "auto"):
        self.params = dict(n_estimators=n_estimators, contamination=contamination, max_samples=max_samples)

    def fit(self, X, seed):
        from sklearn.ensemble import IsolationForest

        self.est_ = IsolationForest(**self.params, random_state=seed, n_jobs=1).fit(X)
        return self

    def raw(self, X):
        return -self.est_.score_samples(X)

    def to_state(self) -> dict:
        return {"params": dict(self.params), **({"est_": self.est_} if hasattr(self, "est_") else {})}

    @classmethod
    def from_state(cls, state: dict) -> "IsolationForestModel":
        from sklearn.ensemble import IsolationForest

        fitted = _check_state(cls, state, ("params",), ("est_",))
        params = state["params"]
        _check_state(cls, params, ("n_estimators", "contamination", "max_samples"))
        obj = cls(**params)
        if fitted:
            obj.est_ = _estimator(cls, state["est_"], IsolationForest)
        return obj


class LOFModel(Model):
    def __init__(self, n_neighbors: int = 20, max_fit_rows: int = 10_000):
        self.n_neighbors = n_neighbors
        self.max_fit_rows = max_fit_rows

    def fit(self, X, seed):
        from sklearn.neighbors import LocalOutlierFactor

        X = seeded_rows(X, self.max_fit_rows, seed)  # neighbour queries cost grows with the reference set
        self.est_ = LocalOutlierFactor(n_neighbors=self.n_neighbors, novelty=True, n_jobs=1).fit(X)
        return self

    def raw(self, X):
        return -self.est_.score_samples(X)

    def to_state(self) -> dict:
        state = {"n_neighbors": self.n_neighbors, "max_fit_rows": self.max_fit_rows}
        return {**state, **({"est_": self.est_} if hasattr(self, "est_") else {})}

    @classmethod
    def from_state(cls, state: dict) -> "LOFModel":
        from sklearn.neighbors import LocalOutlierFactor

        fitted = _check_state(cls, state, ("n_neighbors", "max_fit_rows"), ("est_",))
        obj = cls(_number(cls, "n_neighbors", state["n_neighbors"], (int,)),
                  _number(cls, "max_fit_rows", state["max_fit_rows"], (int,)))
        if fitted:
            obj.est_ = _estimator(cls, state["est_"], LocalOutlierFactor)
        return obj


class PCAModel(Model):
    """Reconstruction error from the principal subspace plus the distance inside it, each in units
    of its components' variance (the Q and Hotelling T² statistics of process monitoring, summed:
    what PyOD's weighted PCA computes, over all components). A bypass moves every level feature
    together, along a normal direction, so reconstruction error alone would miss it; the
    in-subspace distance does not."""

    def fit(self, X, seed):
        from sklearn.decomposition import PCA

        self.est_ = PCA(n_components=None, svd_solver="full", random_state=seed).fit(X)
        var = np.maximum(self.est_.explained_variance_, 1e-9)
        self.weights_ = (1.0 / var).astype(np.float32)
        return self

    def raw(self, X):
        # float64: a float32 BLAS product rounds differently with the number of rows in the batch
        # (seen: 1e-6), so a bin's score would depend on what else was scored with it.
        Y = (np.asarray(X, np.float64) - self.est_.mean_) @ self.est_.components_.T
        return (Y * Y) @ self.weights_.astype(np.float64)

    def to_state(self) -> dict:
        return {"est_": self.est_, "weights_": self.weights_} if hasattr(self, "est_") else {}

    @classmethod
    def from_state(cls, state: dict) -> "PCAModel":
        from sklearn.decomposition import PCA

        obj = cls()
        if _check_state(cls, state, (), ("est_", "weights_")):
            obj.est_ = _estimator(cls, state["est_"], PCA)
            obj.weights_ = _array(cls, "weights_", state["weights_"], 1)
        return obj


def _estimator(cls, est, expected: type):
    if type(est) is not expected:
        raise ValueError(f"{cls.__name__}: est_ must be a {expected.__name__}, got {type(est).__name__}")
    return est


def _torch():
    import torch

    return torch


class _Trainer:
    """Mini-batch Adam on the reconstruction loss, seeded; CPU."""

    def __init__(self, epochs: int, batch: int, lr: float):
        self.epochs, self.batch, self.lr = epochs, batch, lr

    def to_state(self) -> dict:
        return {"epochs": self.epochs, "batch": self.batch, "lr": self.lr}

    @classmethod
    def from_state(cls, state: dict) -> "_Trainer":
        _check_state(cls, state, ("epochs", "batch", "lr"))
        return cls(_number(cls, "epochs", state["epochs"], (int,)), _number(cls, "batch", state["batch"], (int,)),
                   _number(cls, "lr", state["lr"]))

    def train(self, net, X: np.ndarray, seed: int):
        torch = _torch()
        gen = torch.Generator().manual_seed(seed)
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        net.train()
        for _ in range(self.epochs):
            perm = torch.randperm(len(Xt), generator=gen)
            for k in range(0, len(Xt), self.batch):
                xb = Xt[perm[k:k + self.batch]]
                opt.zero_grad()
                loss = ((net(xb) - xb) ** 2).mean()
                loss.backward()
                opt.step()
        net.eval()
        return net


def _reconstruct(net, X: np.ndarray, batch: int = 262_144, error: bool = False) -> np.ndarray:
    """The net's reconstruction of ``X``, batch by batch; ``error``: instead, each row's mean
    squared reconstruction error, reduced inside torch (no copy of the reconstruction)."""
    torch = _torch()
    out = np.empty(len(X) if error else X.shape, np.float32)
    with torch.inference_mode():
        for k in range(0, len(X), batch):
            x = torch.from_numpy(np.ascontiguousarray(X[k:k + batch], dtype=np.float32))
            y = net(x)
            out[k:k + batch] = (((y - x) ** 2).mean(dim=tuple(range(1, x.dim()))) if error else y).numpy()
    return out


class _TorchModel(Model):
    """Pickles as the net's architecture arguments and ``state_dict`` (not the module object), so
    a saved model does not depend on how torch pickles modules."""

    def __getstate__(self):
        state = dict(self.__dict__)
        net = state.pop("net_", None)
        if net is not None:
            state["net_state_"] = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        return state

    def __setstate__(self, state):
        torch = _torch()
        weights = state.pop("net_state_", None)
        self.__dict__.update(state)
        if weights is not None:
            self.net_ = self._net(self.d_)
            self.net_.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
            self.net_.eval()

    _ARGS: tuple[str, ...] = ()  # constructor arguments kept as attributes of the same name

    def to_state(self) -> dict:
        state = {k: getattr(self, k) for k in self._ARGS}
        state["trainer"] = self.trainer.to_state()
        if getattr(self, "net_", None) is not None:
            state["d_"] = self.d_
            state["weights"] = {k: v.detach().cpu().numpy().copy() for k, v in self.net_.state_dict().items()}
        return state

    @classmethod
    def from_state(cls, state: dict) -> "_TorchModel":
        fitted = _check_state(cls, state, cls._ARGS + ("trainer",), ("d_", "weights"))
        obj = cls.__new__(cls)
        for k in cls._ARGS:
            setattr(obj, k, _number(cls, k, state[k], (int,)))
        obj.trainer = _Trainer.from_state(state["trainer"])
        if fitted:
            torch = _torch()
            weights = state["weights"]
            if not isinstance(weights, dict):
                raise ValueError(f"{cls.__name__}: weights must be a dict of arrays")
            obj.d_ = _number(cls, "d_", state["d_"], (int,))
            if not 1 <= obj.d_ <= 1 << 16:
                raise ValueError(f"{cls.__name__}: unexpected input width d_={obj.d_}")
            tensors = {}
            for k, v in weights.items():
                if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
                    raise ValueError(f"{cls.__name__}: weights[{k!r}] must be a float array")
                tensors[k] = torch.from_numpy(v)
            net = obj._net(obj.d_)
            try:
                net.load_state_dict(tensors)
            except RuntimeError as exc:  # missing / unexpected / misshapen weights
                raise ValueError(f"{cls.__name__}: weights do not fit the network: {exc}") from None
            obj.net_ = net.eval()
        return obj


class DenseAEModel(_TorchModel):
    """A dense autoencoder (d -> hidden -> code -> hidden -> d, ReLU), trained on normal rows
    only; the score is the mean squared reconstruction error."""

    _ARGS = ("hidden", "code")

    def __init__(self, hidden: int = 32, code: int = 4, epochs: int = 12, batch: int = 1024, lr: float = 1e-2):
        self.hidden, self.code = hidden, code
        self.trainer = _Trainer(epochs, batch, lr)

    def _net(self, d: int):
        nn = _torch().nn
        return nn.Sequential(nn.Linear(d, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.code), nn.ReLU(),
                             nn.Linear(self.code, self.hidden), nn.ReLU(), nn.Linear(self.hidden, d))

    def fit(self, X, seed):
        torch = _torch()
        torch.manual_seed(seed)
        self.d_ = X.shape[1]
        self.net_ = self.trainer.train(self._net(self.d_), X, seed)
        return self

    def raw(self, X):
        R = _reconstruct(self.net_, X)
        return ((R - X) ** 2).mean(axis=1)

    def contributions(self, X):
        return np.asarray((_reconstruct(self.net_, X) - X) ** 2, float)


class _LSTMAE:
    """Encoder LSTM -> last hidden state repeated -> decoder LSTM -> linear: a sequence back."""

    def __new__(cls, d: int, hidden: int):
        nn = _torch().nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.enc = nn.LSTM(d, hidden, batch_first=True)
                self.dec = nn.LSTM(hidden, hidden, batch_first=True)
                self.out = nn.Linear(hidden, d)

            def forward(self, x):
                _, (h, _) = self.enc(x)
                z = h[-1].unsqueeze(1).expand(-1, x.shape[1], -1)
                y, _ = self.dec(z)
                return self.out(y)

        return Net()


class LSTMAEModel(_TorchModel):
    """An LSTM autoencoder over the last ``steps`` bins of features (trained on normal sequences
    only); the score is the mean squared reconstruction error of the sequence."""

    sequence = True
    _ARGS = ("steps", "hidden", "max_fit_rows")

    def __init__(self, steps: int = 12, hidden: int = 16, epochs: int = 8, batch: int = 256, lr: float = 5e-3,
                 max_fit_rows: int = 20_000):
        self.steps, self.hidden, self.max_fit_rows = steps, hidden, max_fit_rows
        self.trainer = _Trainer(epochs, batch, lr)

    def fit(self, X, seed):
        torch = _torch()
        torch.manual_seed(seed)
        X = seeded_rows(X, self.max_fit_rows, seed)
        self.d_ = X.shape[2]
        self.net_ = self.trainer.train(self._net(self.d_), X, seed)
        return self

    def _net(self, d: int):
        return _LSTMAE(d, self.hidden)

    def raw(self, X):
        return _reconstruct(self.net_, X, batch=65_536, error=True)

    def contributions(self, X):
        return np.asarray(((_reconstruct(self.net_, X, batch=65_536) - X) ** 2).mean(axis=1), float)

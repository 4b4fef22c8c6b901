"""Every parameter of the neighbour watch (SPEC §5) and of a grid scenario, as frozen dataclasses
that round-trip through TOML. A bad value raises :class:`ConfigError` naming the file and field."""

from __future__ import annotations

import dataclasses
import math
from wattwatch.tomlfile import read_toml
from dataclasses import dataclass, field
from pathlib import Path

from wattwatch.errors import ConfigError


@dataclass(frozen=True)
class WatchConfig:
    """The neighbour-watch model.

    Energies are in MWh (``d`` = (T/K)·Σ(p_probe − p_ref) with T in hours and p in MW).

    interval_min
        T, the length of one interval z in minutes.
    samples
        K, measurements per interval.
    delta_mwh
        δ, the dead zone: |d| ≤ δ counts as no mismatch (forecast error, noise, losses).
    d_th_mwh
        d_th, the mismatch that counts as one unit of anomaly.
    lam
        λ in (0, 1): the return-to-normal factor (F(z) = λ·F(z−1) + u(z)).
    kappa
        κ: weight of a change of |d̃| (the prosumer adjusting) against a persisting mismatch.
        With κ(1 − λ) > 1 the onset of a deviation overshoots F's persisting level, so the
        penalty falls while the deviation persists; keep κ ≤ 1/(1 − λ) for a penalty that grows
        monotonically under a persistent deviation.
    beta
        β: the penalty growth, P = exp(β·max(F, 0)) − 1.
    c_th
        C_th: a neighbour signals isolation when its P exceeds it.
    rho
        ρ: the utility isolates when more than this share of the neighbours signal.
    change_tol_mwh
        A change of d̃ between two intervals smaller than this is "persisting at a constant
        value" (SPEC: measured mismatches are never exactly equal). Default: δ.
    signed_persistence
        ``False`` (default): a persisting mismatch adds |d̃|/d_th whatever its sign, so under- and
        over-delivery are both penalised (the paper's scenario penalises both). ``True``: the
        literal u = sign(d̃)·|d̃|/d_th = d̃/d_th, under which under-delivery never raises F.
    """

    interval_min: float = 5.0
    samples: int = 5
    delta_mwh: float = 1.0
    d_th_mwh: float = 2.0
    lam: float = 0.85
    kappa: float = 0.5
    beta: float = 0.5
    c_th: float = 10.0
    rho: float = 0.5
    change_tol_mwh: float | None = None
    signed_persistence: bool = False

    def __post_init__(self):
        try:
            _check_types(self)
        except ConfigError as exc:
            raise ConfigError(f"watch.{exc}") from None
        checks = {
            "interval_min": self.interval_min > 0, "samples": isinstance(self.samples, int) and self.samples >= 1,
            "delta_mwh": self.delta_mwh >= 0, "d_th_mwh": self.d_th_mwh > 0, "lam": 0 < self.lam < 1,
            "kappa": self.kappa >= 0, "beta": self.beta > 0, "c_th": self.c_th > 0, "rho": 0 <= self.rho < 1,
            "change_tol_mwh": self.change_tol_mwh is None or self.change_tol_mwh >= 0,
        }
        for name, ok in checks.items():
            v = getattr(self, name)
            if isinstance(v, bool) or (v is not None and not isinstance(v, (int, float))) or \
                    (isinstance(v, float) and not math.isfinite(v)) or not ok:
                raise ConfigError(f"watch.{name} = {v!r} is out of range ({_RANGES[name]})")

    @property
    def tol_mwh(self) -> float:
        return self.delta_mwh if self.change_tol_mwh is None else self.change_tol_mwh

    @property
    def sample_min(self) -> float:
        return self.interval_min / self.samples


_RANGES = {"interval_min": "> 0", "samples": "an integer ≥ 1", "delta_mwh": "≥ 0", "d_th_mwh": "> 0",
           "lam": "0 < λ < 1", "kappa": "≥ 0", "beta": "> 0", "c_th": "> 0", "rho": "0 ≤ ρ < 1",
           "change_tol_mwh": "≥ 0"}


@dataclass(frozen=True)
class Deviation:
    """A prosumer not delivering what it agreed, from ``start_min`` to ``end_min`` (minutes from
    the start; ``None`` = to the end). ``kind``: ``deviation`` (it reports what it produces) or
    ``fdi`` (false data injection: it reports its agreed value while producing another; its own
    reported net power then lies, only the neighbours' tie-line measurements tell)."""

    prosumer: str
    delta_mw: float
    start_min: float = 0.0
    end_min: float | None = None
    kind: str = "deviation"

    def __post_init__(self):
        _check_types(self)
        if self.kind not in ("deviation", "fdi"):
            raise ConfigError(f"deviation kind must be deviation or fdi, not {self.kind!r}")


@dataclass(frozen=True)
class Scenario:
    """A simulated day (or hours) on a pandapower case.

    case
        ``case5``, ``case30``, ``case118``, ``case300`` (pandapower.networks).
    hours
        Length of the run.
    prosumers
        Bus indices that are prosumers; empty = every bus but the slack's.
    profile
        ``flat``: fixed loads (the paper's setting); ``real``: PV (NREL PVDAQ) and household load
        (OPSD) profiles drive each prosumer's reference, resampled and scaled per prosumer.
    pv_share, load_share
        With ``real``: each prosumer gets PV of this share of its bus's load (or of the case's mean
        load on a bus without load) and household-shaped load variation of this share.
    profile_mix_mw
        With ``real``: each prosumer's PV and load shapes average one real day per this many MW
        of its base load (1 to 100 days): a 300 MW bus aggregates many homes and PV sites, a 2 MW
        one few.
    dispatch_hours
        With ``real``: the reference is re-agreed (OPF) every so many hours.
    line_noise_mw
        σ of the measurement noise of each tie-line flow measurement.
    probe_noise_mw
        σ of each neighbour's own probing error (per watcher and watched prosumer).
    start
        UTC start of the simulated time axis.
    """

    case: str = "case5"
    hours: float = 2.0
    prosumers: tuple[int, ...] = ()
    profile: str = "flat"
    pv_share: float = 0.3
    load_share: float = 0.2
    profile_mix_mw: float = 10.0
    dispatch_hours: float = 1.0
    line_noise_mw: float = 0.5
    probe_noise_mw: float = 0.0
    seed: int = 0
    start: str = "2024-06-01T00:00:00Z"
    deviations: tuple[Deviation, ...] = ()
    watch: WatchConfig = field(default_factory=WatchConfig)

    def __post_init__(self):
        _check_types(self)
        if self.case not in CASES:
            raise ConfigError(f"case must be one of {', '.join(CASES)}, not {self.case!r}")
        if self.profile not in ("flat", "real"):
            raise ConfigError(f"profile must be flat or real, not {self.profile!r}")
        for name in ("hours", "dispatch_hours", "profile_mix_mw"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0")
        for name in ("line_noise_mw", "probe_noise_mw", "pv_share", "load_share"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be ≥ 0")
        import pandas as pd

        try:
            if pd.Timestamp(self.start) is pd.NaT:
                raise ValueError
        except (ValueError, TypeError):
            raise ConfigError(f"start {self.start!r} is not a time (ISO-8601, UTC)") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CASES = ("case5", "case30", "case118", "case300")


def _check_types(obj) -> None:
    """Numbers are numbers, strings strings (TOML gives whatever the user wrote)."""
    import typing

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        t = str(hints[f.name])
        if t in ("<class 'float'>", "float | None", "typing.Optional[float]"):
            if v is None and "None" in t:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"{f.name} must be a finite number, not {v!r}")
        elif t == "<class 'int'>":
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{f.name} must be an integer, not {v!r}")
        elif t == "<class 'str'>":
            if not isinstance(v, str):
                raise ConfigError(f"{f.name} must be a string, not {v!r}")
        elif t == "<class 'bool'>":
            if not isinstance(v, bool):
                raise ConfigError(f"{f.name} must be true or false, not {v!r}")


def _build(cls, d: dict, where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(d) - names)
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {extra}; known: {sorted(names)}")
    try:
        return cls(**d)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def watch_from_dict(d: dict | None, where: str = "watch") -> WatchConfig:
    return _build(WatchConfig, dict(d or {}), where)


def scenario_from_dict(d: dict, where: str = "scenario") -> Scenario:
    d = dict(d)
    d["watch"] = watch_from_dict(d.get("watch"), f"{where}: [watch]")
    devs = d.get("deviations", [])
    if not isinstance(devs, list):
        raise ConfigError(f"{where}: deviations must be an array of tables")
    d["deviations"] = tuple(_build(Deviation, x, f"{where}: deviations[{n}]") for n, x in enumerate(devs))
    if "prosumers" in d:
        p = d["prosumers"]
        if not isinstance(p, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in p):
            raise ConfigError(f"{where}: prosumers must be a list of bus indices")
        d["prosumers"] = tuple(p)
    return _build(Scenario, d, where)


def load_toml(path: str | Path) -> dict:
    return read_toml(path, "grid config")


def scenario_from_toml(path: str | Path) -> Scenario:
    doc = load_toml(path)
    body = doc.get("scenario", doc)
    if "watch" in doc and "scenario" in doc:
        body = {**body, "watch": doc["watch"]}
    return scenario_from_dict(body, str(path))


# ------------------------------------------------------------------------------ built-in scenarios
#
# case5 as in the paper: every substation a prosumer, fixed loads, 2 hours at 1 sample a minute,
# T = 5 min. The slack (bus 3, index; P4 in the paper's numbering) balances and is not watched.
# Prosumer P3 (bus 2) first over-generates by 60 MW for 15 min and corrects; later it
# under-generates by 25 MW (smaller) and does not stop.

_ACCIDENTAL = Deviation(prosumer="P3", delta_mw=60.0, start_min=15.0, end_min=25.0)
_PERSISTENT = Deviation(prosumer="P3", delta_mw=-25.0, start_min=60.0, end_min=None)


def builtin(name: str, case: str = "case5", seed: int = 0) -> Scenario:
    """``paper`` (both incidents), ``accidental``, ``persistent``, ``fdi`` (P3 reports its agreed
    value while producing 25 MW less)."""
    base = dict(case=case, seed=seed)
    if name == "paper":
        return Scenario(**base, hours=2.0, deviations=(_ACCIDENTAL, _PERSISTENT))
    if name == "accidental":
        return Scenario(**base, hours=2.0, deviations=(_ACCIDENTAL,))
    if name == "persistent":
        return Scenario(**base, hours=2.0, deviations=(dataclasses.replace(_PERSISTENT, start_min=15.0),))
    if name == "fdi":
        return Scenario(**base, hours=2.0, deviations=(Deviation(prosumer="P3", delta_mw=-25.0, start_min=15.0,
                                                                 kind="fdi"),))
    raise ConfigError(f"scenario must be paper, accidental, persistent, fdi or a .toml file, not {name!r}")

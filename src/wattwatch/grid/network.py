"""The grid: a pandapower case, its prosumers (one per bus), tie-lines and neighbour sets; the
reference operating point from the optimal power flow and the re-dispatch after an isolation.

The paper agrees the operating point with a distributed OPF (ALADIN); here a centralised
``pandapower.runopp(init="pf")`` gives the same kind of point (the optimum of the same problem):
the neighbour watch only consumes the agreed reference per prosumer, not how it was computed.
When PIPS does not converge on the AC OPF (case300 does not), the DC OPF gives the dispatch and
an AC power flow at that dispatch gives the reference; which one was used is reported.

Within a dispatch period, flows follow injection changes through the PTDF of the case (DC
sensitivities around the AC point of the period); the slack bus takes the balance.

Power flows run with ``numba=False`` (:data:`_NUMBA`): a run solves a few dozen flows on cases of at
most 300 buses (operating points are cached per process), where pandapower's numba kernels save
~10 ms a flow but cost ~4 s of CPU compiling on the first one in every process (the CLI's first
``grid simulate``, each test worker). The pure-NumPy Newton-Raphson gives the same voltages and
flows within the solver's tolerance (docs/live-log.md, grid1).
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from wattwatch.errors import ConfigError


def prosumer_name(bus: int) -> str:
    """``P1`` for bus 0 (the paper numbers substations from 1)."""
    return f"P{int(bus) + 1}"


@dataclass
class Dispatch:
    """One agreed operating point."""

    method: str                 # "ac-opf", "dc-opf+ac-pf"
    converged: bool
    seconds: float
    injection_mw: np.ndarray    # (buses,) net injection per bus (generation − load − shunt)
    end_flow_mw: np.ndarray     # (branches, 2) flow out of the bus at each end into the branch
    loss_mw: np.ndarray         # (branches,) p_from + p_to
    cost: float | None = None
    note: str = ""


@dataclass
class Grid:
    case: str
    net: object
    buses: np.ndarray                    # pandapower bus indices, in order
    slack: int                           # position of the slack bus in ``buses``
    branch_ends: np.ndarray              # (branches, 2) positions of the end buses
    branch_names: list[str]
    ptdf: np.ndarray                     # (branches, buses): from-end flow per MW injected (withdrawn at the slack)
    isolated: set = field(default_factory=set)
    _ac_failed: bool = False
    _ac_failures: int = 0
    _base: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.buses)

    def names(self) -> list[str]:
        return [prosumer_name(b) for b in self.buses]

    def neighbours(self) -> list[list[int]]:
        """Adjacent bus positions of each bus (parallel branches once)."""
        nb = [set() for _ in range(self.n)]
        for a, b in self.branch_ends:
            if a != b:
                nb[a].add(int(b))
                nb[b].add(int(a))
        return [sorted(s) for s in nb]

    def incident(self) -> list[list[tuple[int, int]]]:
        """Per bus: (branch, end 0/1) of its tie-line ends."""
        inc = [[] for _ in range(self.n)]
        for k, (a, b) in enumerate(self.branch_ends):
            inc[a].append((k, 0))
            inc[b].append((k, 1))
        return inc

    # --------------------------------------------------------------------------- operating point

    def set_profile(self, load_scale: np.ndarray | None = None, pv_mw: np.ndarray | None = None) -> None:
        """Loads at ``load_scale`` (per bus) times the case's, PV generation ``pv_mw`` (per bus) as
        non-dispatchable static generators; isolated prosumers' elements stay out of service."""
        net = self.net
        if not self._base:
            self._base["load"] = net.load.p_mw.to_numpy().copy()
            self._base["q"] = net.load.q_mvar.to_numpy().copy()
            self._base["sgen_n"] = len(net.sgen)
        pos = {int(b): k for k, b in enumerate(self.buses)}
        lpos = np.array([pos[int(b)] for b in net.load.bus])
        s = np.ones(self.n) if load_scale is None else np.asarray(load_scale, float)
        net.load["p_mw"] = self._base["load"] * s[lpos]
        net.load["q_mvar"] = self._base["q"] * s[lpos]
        if pv_mw is not None:
            import pandapower as pp

            pv_rows = net.sgen.index[self._base["sgen_n"]:]
            if len(pv_rows) == 0:
                for k, b in enumerate(self.buses):
                    pp.create_sgen(net, int(b), p_mw=0.0, q_mvar=0.0, controllable=False, name=f"pv-{prosumer_name(b)}")
                pv_rows = net.sgen.index[self._base["sgen_n"]:]
            net.sgen.loc[pv_rows, "p_mw"] = np.asarray(pv_mw, float)
        self._apply_isolation()

    def _apply_isolation(self) -> None:
        net = self.net
        iso = {int(self.buses[k]) for k in self.isolated}
        for table in ("load", "gen", "sgen", "shunt", "storage"):
            t = getattr(net, table)
            if len(t):
                t["in_service"] = ~t.bus.isin(iso)

    def isolate(self, k: int) -> None:
        """Disconnect prosumer ``k``'s own elements (generation, load, storage, shunts); its bus
        stays as a network node (its tie-lines still carry through-flow), its net power is 0."""
        if k == self.slack:
            raise ConfigError("the slack bus cannot be isolated")
        self.isolated.add(int(k))
        self._apply_isolation()

    def dispatch(self) -> Dispatch:
        """The agreed operating point: AC OPF (``runopp(init="pf")``); when it does not converge,
        DC OPF and an AC power flow at its dispatch. ``converged`` is the AC power flow's.

        The same case with the same loads, PV and isolations gives the same point: it is solved
        once per process (``cached`` in the note of a repeat)."""
        net = self.net
        key = (self.case, tuple(sorted(self.isolated)), net.load.p_mw.to_numpy().tobytes(),
               net.sgen.p_mw.to_numpy().tobytes(), self._ac_failed)
        hit = _DISPATCHES.get(key)
        if hit is not None:
            self._ac_failed = hit[1]
            d = hit[0]
            return Dispatch(d.method, d.converged, 0.0, d.injection_mw.copy(), d.end_flow_mw.copy(), d.loss_mw.copy(),
                            d.cost, (d.note + "; " if d.note else "") + f"cached (solved in {d.seconds:.2f} s)")
        d = self._solve()
        if len(_DISPATCHES) > 256:
            _DISPATCHES.clear()
        _DISPATCHES[key] = (d, self._ac_failed)
        return d

    def _solve(self) -> Dispatch:
        import pandapower as pp

        net = self.net
        t0 = time.perf_counter()
        method, note, ok = "ac-opf", "", False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not self._ac_failed:
                try:
                    pp.runopp(net, init="pf", numba=_NUMBA)
                    ok = bool(net.OPF_converged)
                except Exception as exc:  # pandapower raises OPFNotConverged (and others on a bad start)
                    note = f"AC OPF did not converge ({type(exc).__name__}); "
                if not ok:
                    # Two failures in a run: the case does not suit PIPS; go straight to DC next time.
                    self._ac_failures += 1
                    self._ac_failed = self._ac_failures >= 2
            if not ok:
                method = "dc-opf+ac-pf"
                try:
                    pp.rundcopp(net)
                    # Take the DC dispatch as set points and let the AC flow settle losses at the slack.
                    for table in ("gen", "sgen"):
                        t = getattr(net, table)
                        res = getattr(net, f"res_{table}")
                        ctrl = t.get("controllable", pd.Series(False, index=t.index)).fillna(False).astype(bool)
                        t.loc[ctrl, "p_mw"] = res.loc[ctrl[ctrl].index, "p_mw"]
                    pp.runpp(net, init="dc", numba=_NUMBA)
                    ok = bool(net.converged)
                except Exception as exc:
                    note += f"DC OPF + AC power flow failed ({type(exc).__name__})"
                    ok = False
        seconds = time.perf_counter() - t0
        if not ok:
            return Dispatch(method, False, seconds, np.full(self.n, np.nan), np.full((len(self.branch_ends), 2), np.nan),
                            np.full(len(self.branch_ends), np.nan), note=note.strip())
        inj = -net.res_bus.p_mw.reindex(self.buses).to_numpy(dtype=float)
        ends = np.column_stack([
            np.concatenate([net.res_line.p_from_mw.to_numpy(), net.res_trafo.p_hv_mw.to_numpy()]),
            np.concatenate([net.res_line.p_to_mw.to_numpy(), net.res_trafo.p_lv_mw.to_numpy()]),
        ])
        cost = getattr(net, "res_cost", None)
        return Dispatch(method, True, seconds, inj, ends, ends.sum(axis=1),
                        cost=float(cost) if cost is not None and np.isfinite(cost) else None, note=note.strip())


_DISPATCHES: dict = {}

# pandapower's numba kernels: see the module docstring (compiling costs more than a run's flows save).
_NUMBA = False


@lru_cache(maxsize=8)
def _case_net(case: str):
    import pandapower.networks as pn

    return getattr(pn, case)()


def load_case(case: str) -> Grid:
    """A pandapower case as a :class:`Grid` (lines and two-winding transformers are tie-lines)."""
    import pandapower as pp
    from pandapower.pypower.makePTDF import makePTDF

    from wattwatch.grid.config import CASES

    if case not in CASES:
        raise ConfigError(f"case must be one of {', '.join(CASES)}, not {case!r}")
    net = copy.deepcopy(_case_net(case))
    for table in ("trafo3w", "impedance", "dcline", "switch"):
        if len(getattr(net, table, [])) and table != "switch":
            raise ConfigError(f"{case}: {table} elements are not supported as tie-lines")
    if len(net.ext_grid) != 1:
        raise ConfigError(f"{case}: expected one slack (ext_grid), found {len(net.ext_grid)}")
    buses = net.bus.index.to_numpy()
    pos = {int(b): k for k, b in enumerate(buses)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, numba=_NUMBA)
    frm = np.concatenate([net.line.from_bus.to_numpy(), net.trafo.hv_bus.to_numpy()])
    to = np.concatenate([net.line.to_bus.to_numpy(), net.trafo.lv_bus.to_numpy()])
    ends = np.column_stack([[pos[int(b)] for b in frm], [pos[int(b)] for b in to]]).astype(int)
    names = [f"line{i}" for i in net.line.index] + [f"trafo{i}" for i in net.trafo.index]
    ppc = net._ppc
    lk = net._pd2ppc_lookups
    rows = np.r_[np.arange(*lk["branch"]["line"]), np.arange(*lk["branch"].get("trafo", (0, 0)))]
    slack_bus = int(net.ext_grid.bus.iloc[0])
    ppc_bus = lk["bus"][buses]
    ptdf_ppc = makePTDF(ppc["baseMVA"], ppc["bus"], ppc["branch"], slack=int(lk["bus"][slack_bus]))
    ptdf = np.asarray(ptdf_ppc)[rows][:, ppc_bus]
    return Grid(case=case, net=net, buses=buses, slack=pos[slack_bus], branch_ends=ends, branch_names=names, ptdf=ptdf)


def flows(grid: Grid, d: Dispatch, injection_mw: np.ndarray) -> np.ndarray:
    """(branches, 2, samples) flow out of each end's bus into the branch when the buses inject
    ``injection_mw`` (buses, samples): the dispatch's AC flows plus the PTDF response to the
    change; the slack takes the balance (its own column is ignored)."""
    delta = injection_mw - d.injection_mw[:, None]
    delta[grid.slack] = 0.0
    dflow = grid.ptdf @ delta
    return np.stack([d.end_flow_mw[:, 0:1] + dflow, d.end_flow_mw[:, 1:2] - dflow], axis=1)

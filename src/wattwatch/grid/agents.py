"""The neighbour watch as agents: one per bus, each seeing only its own and its neighbours'
meters (two-hop exchange), plus the utility that collects the neighbours' penalty prices, votes
and isolates. Messages are JSON; the same agents run on an in-process bus or over MQTT.

Topics under a prefix ``T``:

``T/agreed/<agent>``  utility -> agent interval z, the agent's current neighbour set, their agreed
                                       references and the agreed losses of their tie-lines
``T/meas/<bus>``      meters of <bus>  the flows out of <bus> into each of its tie-lines (K samples)
``T/penalty/<agent>`` agent -> utility d, F and P of every prosumer the agent watches

An agent watching prosumer i subscribes to the meters of i's neighbours (the far ends of i's
tie-lines): the neighbours of its neighbours, i.e. the paper's two-hop exchange. It never reads
i's own meters (a prosumer injecting false data controls those).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict

import numpy as np

from wattwatch.errors import InputError
from wattwatch.grid import watch as W
from wattwatch.grid.config import WatchConfig
from wattwatch.grid.engine import Step, pair_noise_rng
from wattwatch.grid.world import Interval

log = logging.getLogger(__name__)


class InProcessBus:
    """Synchronous publish/subscribe in one process (delivery happens inside ``publish``)."""

    def __init__(self):
        self._subs: dict[str, list] = defaultdict(list)

    def endpoint(self, name: str) -> "InProcessBus":
        return self

    def subscribe(self, topic: str, callback) -> None:
        self._subs[topic].append(callback)

    def publish(self, topic: str, payload: str) -> None:
        for cb in list(self._subs.get(topic, ())):
            cb(topic, payload)

    def close(self) -> None:
        self._subs.clear()


class _MqttEndpoint:
    """One MQTT connection (one per agent, so each sees only what it subscribed to)."""

    def __init__(self, host: str, port: int, client_id: str, timeout_s: float):
        import paho.mqtt.client as mqtt

        self._cbs: dict[str, object] = {}
        self.malformed = 0
        self._c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self._c.on_message = self._on_message
        self._sub_done = threading.Event()
        self._c.on_subscribe = lambda *a, **k: self._sub_done.set()
        try:
            self._c.connect(host, port, keepalive=30)
        except OSError as exc:
            raise InputError(f"MQTT broker {host}:{port}: cannot connect ({exc})") from None
        self._c.loop_start()
        self._timeout = timeout_s

    def _on_message(self, client, userdata, msg):
        cb = self._cbs.get(msg.topic)
        if cb is None:
            return
        # A message an agent cannot use (not UTF-8, not JSON, nested too deeply, fields missing) is
        # counted and dropped: raised inside paho's callback it would end the connection's network
        # thread, and the agent would hear nothing more.
        try:
            cb(msg.topic, msg.payload.decode())
        except (ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
            self.malformed += 1
            if self.malformed <= 10 or self.malformed % 100 == 0:
                log.warning("grid MQTT: malformed message #%d on %s dropped: %s", self.malformed, msg.topic,
                            str(exc)[:200])

    def subscribe(self, topic: str, callback) -> None:
        self._cbs[topic] = callback
        self._sub_done.clear()
        res, _ = self._c.subscribe(topic, qos=1)
        if not self._sub_done.wait(self._timeout):
            raise InputError(f"MQTT: subscription to {topic} not acknowledged within {self._timeout} s")

    def publish(self, topic: str, payload: str) -> None:
        self._c.publish(topic, payload, qos=1)

    def close(self) -> None:
        # Disconnect first: the network thread then ends at once (loop_stop alone waits for it).
        self._c.disconnect()
        self._c.loop_stop()


class MqttBus:
    """The agents over a real broker: one connection per agent and one for the utility/meters."""

    def __init__(self, host: str, port: int, topic: str = "wattwatch/grid", timeout_s: float = 30.0):
        self.host, self.port, self.prefix, self.timeout_s = host, int(port), topic, timeout_s
        self._ends: dict[str, _MqttEndpoint] = {}
        self._uid = f"{time.time_ns():x}"

    def endpoint(self, name: str) -> _MqttEndpoint:
        if name not in self._ends:
            self._ends[name] = _MqttEndpoint(self.host, self.port, f"ww-grid-{self._uid}-{name}", self.timeout_s)
        return self._ends[name]

    def close(self) -> None:
        for e in self._ends.values():
            e.close()
        self._ends.clear()


class ProsumerAgent:
    """Prosumer ``name``: watches its neighbours from the meters two hops away, reports P_ij."""

    def __init__(self, name: str, cfg: WatchConfig, incident: dict[str, list[tuple[str, str]]],
                 endpoint, prefix: str, seed: int, buses: dict[str, int], probe_noise_mw: float):
        # incident[i] = [(branch, far-end bus name)] for every prosumer i this agent may watch.
        self.name, self.cfg, self.incident, self.ep, self.prefix = name, cfg, incident, endpoint, prefix
        self.seed, self.buses, self.noise = seed, buses, probe_noise_mw
        self.f: dict[str, float] = {}
        self.dt: dict[str, float] = {}
        self._rngs: dict[str, np.random.Generator] = {}
        self._agreed: dict[int, dict] = {}
        self._meas: dict[int, dict[str, dict]] = defaultdict(dict)
        self._lock = threading.Lock()
        far = sorted({b for lst in incident.values() for _, b in lst})
        endpoint.subscribe(f"{prefix}/agreed/{name}", self._on_agreed)
        for b in far:
            endpoint.subscribe(f"{prefix}/meas/{b}", self._on_meas)

    def _on_agreed(self, topic, payload):
        msg = json.loads(payload)
        with self._lock:
            self._agreed[msg["z"]] = msg
        self._try(msg["z"])

    def _on_meas(self, topic, payload):
        msg = json.loads(payload)
        with self._lock:
            self._meas[msg["z"]][topic.rsplit("/", 1)[1]] = msg["ends"]
        self._try(msg["z"])

    def _try(self, z: int) -> None:
        with self._lock:
            ag = self._agreed.get(z)
            if ag is None:
                return
            mine = ag["watch"]
            need = {b for i in mine for _, b in self.incident[i]}
            have = self._meas.get(z, {})
            if not need <= set(have):
                return
            del self._agreed[z]
            meas = self._meas.pop(z, {})
            report = self._compute(mine, ag, meas)
        self.ep.publish(f"{self.prefix}/penalty/{self.name}", json.dumps({"z": z, "pairs": report}))

    def _compute(self, mine: list[str], ag: dict, meas: dict) -> dict:
        cfg, k = self.cfg, self.cfg.samples
        # Neighbour-set update: pairs no longer watched are forgotten.
        for i in list(self.f):
            if i not in mine:
                del self.f[i], self.dt[i]
        if not mine:
            return {}
        probes = []
        for i in mine:
            terms = [ag["loss"][br] - np.asarray(meas[b][br], float) for br, b in self.incident[i]]
            p = np.sum(terms, axis=0) if terms else np.zeros(k)
            if self.noise:
                rng = self._rngs.setdefault(i, pair_noise_rng(self.seed, self.buses[self.name], self.buses[i]))
                p = p + rng.normal(0.0, self.noise, k)
            probes.append(p)
        ref = np.asarray([ag["ref"][i] for i in mine], float)
        d = W.mismatch(np.asarray(probes), ref, cfg)[:, 0]
        dt = W.dead_zone(d, cfg)
        f_prev = np.asarray([self.f.get(i, 0.0) for i in mine])
        dt_prev = np.asarray([self.dt.get(i, 0.0) for i in mine])
        f = W.step(f_prev, dt_prev, dt, cfg)
        p = W.penalty(f, cfg)
        for n, i in enumerate(mine):
            self.f[i], self.dt[i] = float(f[n]), float(dt[n])
        return {i: [float(d[n]), float(f[n]), float(p[n])] for n, i in enumerate(mine)}


class AgentWatch:
    """The utility and the meters (publishers), and one :class:`ProsumerAgent` per bus."""

    def __init__(self, grid, cfg: WatchConfig, watch: np.ndarray, probe_noise_mw: float, seed: int, bus,
                 prefix: str | None = None):
        self.grid, self.cfg, self.bus = grid, cfg, bus
        self.prefix = prefix or getattr(bus, "prefix", "wattwatch/grid")
        self.timeout_s = getattr(bus, "timeout_s", 30.0)
        self.names = grid.names()
        self.watch = watch.copy()
        n = grid.n
        inc = grid.incident()
        ends = grid.branch_ends
        br = grid.branch_names
        incident = {self.names[i]: [(br[b], self.names[int(ends[b, 1 - e])]) for b, e in inc[i]] for i in range(n)}
        self.branch_of_bus = {self.names[i]: [(b, e) for b, e in inc[i]] for i in range(n)}
        buses = {self.names[i]: int(grid.buses[i]) for i in range(n)}
        self.ep = bus.endpoint("utility")
        self._reports: dict[int, dict[str, dict]] = defaultdict(dict)
        self._cv = threading.Condition()
        for i in range(n):
            self.ep.subscribe(f"{self.prefix}/penalty/{self.names[i]}", self._on_penalty)
        self.agents = []
        for j in range(n):
            # Agent j may watch any bus it can ever be neighbour of (after isolations, too): give
            # it every bus's incidence; it subscribes to the meters it needs for its watch set.
            may = [self.names[i] for i in np.flatnonzero(self._may_watch(j))]
            self.agents.append(ProsumerAgent(self.names[j], cfg, {i: incident[i] for i in may}, bus.endpoint(self.names[j]),
                                             self.prefix, seed, buses, probe_noise_mw))

    def _may_watch(self, j: int) -> np.ndarray:
        """Buses j may watch at the start: its adjacent buses (and what the current watch says).
        A neighbour-set update through an isolated junction can add more; :meth:`update` then
        subscribes the agent to the new prosumer's far-end meters."""
        n = self.grid.n
        adj = np.zeros((n, n), bool)
        a, b = self.grid.branch_ends[:, 0], self.grid.branch_ends[:, 1]
        adj[a, b] = adj[b, a] = True
        return adj[j] | self.watch[j]

    def _on_penalty(self, topic, payload):
        msg = json.loads(payload)
        with self._cv:
            self._reports[msg["z"]][topic.rsplit("/", 1)[1]] = msg["pairs"]
            self._cv.notify_all()

    def update(self, watch: np.ndarray) -> None:
        new = watch & ~self.watch
        self.watch = watch.copy()
        # An agent that is to watch a prosumer beyond its subscriptions (through an isolated
        # junction) subscribes to that prosumer's far-end meters now.
        for j, i in zip(*np.nonzero(new)):
            ag = self.agents[j]
            name = self.names[i]
            if name not in ag.incident:
                subscribed = {b for lst in ag.incident.values() for _, b in lst}
                inc = self.grid.incident()[i]
                ag.incident[name] = [(self.grid.branch_names[b], self.names[int(self.grid.branch_ends[b, 1 - e])])
                                     for b, e in inc]
                for b in sorted({b for _, b in ag.incident[name]} - subscribed):
                    ag.ep.subscribe(f"{self.prefix}/meas/{b}", ag._on_meas)

    def step(self, iv: Interval) -> Step:
        n, names, k = self.grid.n, self.names, self.cfg.samples
        iso = self.grid.isolated
        active = [j for j in range(n) if j not in iso]
        br = self.grid.branch_names
        for j in active:
            # Each agent gets the agreed references of the prosumers it watches and the agreed
            # losses of their tie-lines, nothing else.
            mine = np.flatnonzero(self.watch[j])
            lines = sorted({b for i in mine for b, _ in self.branch_of_bus[names[i]]})
            agreed = {"z": iv.z, "watch": [names[i] for i in mine],
                      "ref": {names[i]: iv.ref_mw[i].tolist() for i in mine},
                      "loss": {br[b]: float(iv.loss_mw[b]) for b in lines}}
            self.ep.publish(f"{self.prefix}/agreed/{names[j]}", json.dumps(agreed))
        for i in range(n):
            ends = {br[b]: iv.meas_mw[b, e].tolist() for b, e in self.branch_of_bus[names[i]]}
            self.ep.publish(f"{self.prefix}/meas/{names[i]}", json.dumps({"z": iv.z, "ends": ends}))
        want = {names[j] for j in active}
        deadline = time.monotonic() + self.timeout_s
        with self._cv:
            while not want <= set(self._reports.get(iv.z, {})):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(want - set(self._reports.get(iv.z, {})))
                    raise InputError(f"grid agents: no penalty report for interval {iv.z} from {missing[:5]} "
                                     f"within {self.timeout_s} s")
                self._cv.wait(left)
            reports = self._reports.pop(iv.z)
        d = np.full((n, n), np.nan)
        f = np.full((n, n), np.nan)
        p = np.full((n, n), np.nan)
        pos = {nm: x for x, nm in enumerate(names)}
        for agent, pairs in reports.items():
            j = pos[agent]
            for i, (dd, ff, pp_) in pairs.items():
                d[j, pos[i]], f[j, pos[i]], p[j, pos[i]] = dd, ff, pp_
        watch = ~np.isnan(p)
        mean, signals, isolate = W.vote(np.nan_to_num(p), watch, self.cfg)
        # The probe without the watchers' own noise, for the record (as the batch engine keeps it).
        probe = np.zeros((n, k))
        for i in range(n):
            for b, e in self.branch_of_bus[names[i]]:
                probe[i] += iv.loss_mw[b] - iv.meas_mw[b, 1 - e]
        return Step(d, f, p, mean, signals, watch.sum(axis=0), isolate, probe)

    def close(self) -> None:
        self.bus.close()

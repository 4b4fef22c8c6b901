"""(fast) The per-meter state look-ups a stream step makes ~15 times for every meter
(``Detector._param``, ``reach``, the channels a meter was learned with) in one conversion instead
of a look-up per meter and key: the same arrays as the per-meter expressions they replace, on states
as learned (numbers, None, lists) and as a hand-written or old state file may hold them (strings,
nested lists, a meter without state, a state of None values)."""

from __future__ import annotations

import numpy as np

from wattwatch.detect.base import _num, state_channels, state_nums

CH = ["v_l1_v", "i_l1_a", "p_kw", "pf", "thd_i_pct"]


def _states(rng: np.random.Generator, n: int) -> tuple[dict, list[str]]:
    kinds = [lambda: float(rng.uniform(1, 900)), lambda: int(rng.integers(1, 900)), lambda: None,
             lambda: np.float32(rng.uniform(1, 9)), lambda: float("nan"), lambda: "60", lambda: "x",
             lambda: [1.0], lambda: True, lambda: float("inf")]
    lists = [list(CH[:3]), list(CH[:3]), list(CH), [], None, tuple(CH[1:]), "v_l1_v", ["pf"], ["pf", "thd_i_pct", "v_l1_v"],
             [["pf"], "p_kw"], [["pf"], "p_kw"]]   # (rfast) unhashable items: compared, not grouped
    st, names = {}, []
    for k in range(n):
        m = f"m{k}"
        names.append(m)
        r = rng.random()
        if r < 0.1:
            continue   # no state for this meter
        d = {}
        if rng.random() < 0.9:
            d["cadence_s"] = kinds[int(rng.integers(len(kinds)))]()
        if rng.random() < 0.9:
            d["channels"] = lists[int(rng.integers(len(lists)))]
        st[m] = d
    return st, names


def _old_nums(st, names, key, default=np.nan):
    return np.array([_num(st.get(m, {}).get(key), default) for m in names], float)


def _old_channels(st, names):
    return {c: np.array([c in (st.get(m, {}).get("channels") or ()) for m in names], bool) for c in CH}


def test_state_nums_and_channels_are_the_per_meter_look_ups():
    rng = np.random.default_rng(5)
    for trial in range(60):
        st, names = _states(rng, int(rng.integers(0, 40)))
        plain = trial % 3 == 0   # learned states only: numbers and None (the one-conversion path)
        if plain:
            for d in st.values():
                if not (d.get("cadence_s") is None or isinstance(d.get("cadence_s"), (int, float))):
                    d["cadence_s"] = 60.0
        for default in (np.nan, 0.0, 7.5):
            got, want = state_nums(st, names, "cadence_s", default), _old_nums(st, names, "cadence_s", default)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert np.array_equal(got, want, equal_nan=True), (trial, default, got, want)
        got = state_channels(st, names, CH)
        want = _old_channels(st, names)
        assert list(got) == list(want)
        for c in CH:
            assert got[c].dtype == bool and np.array_equal(got[c], want[c]), (trial, c, got[c], want[c])


def test_state_nums_of_values_that_convert_together_but_not_one_by_one():
    """(rfast) Values numpy converts together into another shape than one number a meter (every
    meter's a one-item list: a column; strings of numbers: read as numbers, as float() does): the
    per-meter answers all the same (a 2-d array here broke every detector's arithmetic)."""
    for vals in ([[60.0]], [[60.0], [900.0]], [(5,), (6,)], [["60"], ["x"]], ["60", " 9e2 ", "inf"], [[]], [[], []]):
        st = {f"m{k}": {"cadence_s": v} for k, v in enumerate(vals)}
        names = list(st) + ["none"]
        got, want = state_nums(st, names, "cadence_s", 7.5), _old_nums(st, names, "cadence_s", 7.5)
        assert got.shape == want.shape == (len(names),) and np.array_equal(got, want, equal_nan=True), (vals, got)
        got, want = state_nums(st, names[:-1], "cadence_s"), _old_nums(st, names[:-1], "cadence_s")
        assert got.shape == want.shape and np.array_equal(got, want, equal_nan=True), (vals, got)

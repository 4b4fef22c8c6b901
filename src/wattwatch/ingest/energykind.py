"""Is an energy column what it was mapped as? (adv2)

``e_kwh`` is a cumulative register: it only grows, and falls back rarely (a reset, a meter exchange, a
rollover). An export's energy *per interval* (``Usage_kWh`` per 15 min, "consumption" columns) goes up
and down from one reading to the next, and mapped to ``e_kwh`` (by an alias such as ``kwh``, or by a
mapping) it was stored without a word: the firmware-drift rule then compares a register that is not one
with the power. The reverse, a register mapped to a power channel (``p_kw``, ``q_kvar``, ``s_kva``), gives
a "power" that rises at nearly every reading and never falls. Both are told from the data, as the rows go
to the store: per meter, in time order, the steps between a meter's consecutive readings that rose or
fell. The readings are stored as given (a warning, not a reject: a few meters' registers may truly be
reset, and the mapping is the user's to fix).

The mapping is one for the whole file, so a sample tells: of each chunk of checked readings (about 500,000
rows) the rows of the meters of :data:`SAMPLE_METERS` rows spread over it, at most :data:`SAMPLE_ROWS` ((radv2)
the chunk's first rows were the sample: in an export sorted by time they held a few hours of each meter, too
short for the power test below), one ``lexsort`` by meter and time, and per channel a ``diff`` and three
counts, until :data:`ENOUGH_STEPS` steps are counted; steps across chunks are not counted. (On the whole
chunk it cost 0.1-0.18 s of a 483,463-row Parquet ingest's 0.75 s CPU; on the sample ~0.02 s.)
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REGISTER = "e_kwh"
POWER = ("p_kw", "q_kvar", "s_kva")

# Only the steps that changed the value count (a register read at 1 min in Wh, or a device off, stays put
# at most steps: AMPds2's basement register Pt rose at 851 of 51,209 steps and never fell; its power P rose
# at 277 and fell at 264). A register falls at a reset; an interval energy at about every other change.
# Said when at least this share of the changes were falls, and at least MIN_FALLS of them. (radv2) A meter's
# first fall in a chunk is not counted: a reset or an exchange happens once, and a register that seldom
# changes (a vacant flat's, read in whole kWh) reset fleet-wide by a firmware update fell at half its changes.
REGISTER_FALL_SHARE = 0.2
REGISTER_MIN_FALLS = 3
# Power goes up and down about as often; a register in a power column rises and (almost) never falls.
# (radv2) Within a day power may only rise (PVDAQ system 50's real 15-min AC power rose 28 times in a row
# one morning): only the steps of a meter whose readings in the sample span POWER_MIN_SPAN_H count.
POWER_MIN_RISES = 24
POWER_FALL_SHARE = 0.02
POWER_MIN_SPAN_H = 18.0
SAMPLE_METERS = 64
SAMPLE_ROWS = 65_536
ENOUGH_STEPS = 200_000


class EnergyKind:
    """Counts, per channel, the steps between a meter's consecutive readings, and those that rose and fell;
    :meth:`notes` says a mismatch. Call it with each chunk of checked readings (``Store.ingest(on_rows=)``)."""

    def __init__(self) -> None:
        self.steps: Counter = Counter()
        self.rises: Counter = Counter()
        self.falls: Counter = Counter()

    def __call__(self, rows: pa.Table) -> None:
        chans = [c for c in (REGISTER, *POWER) if c in rows.column_names and self.steps[c] < ENOUGH_STEPS]
        if not chans or rows.num_rows < 2:
            return
        rows = rows.select(["meter_id", "ts", *chans])
        if rows.num_rows > SAMPLE_ROWS:   # every row of the meters of SAMPLE_METERS rows spread over the chunk
            ids = pc.cast(rows["meter_id"], pa.string())   # (a no-op on text; is_in wants one type on both sides)
            picked = pc.unique(ids.take(np.linspace(0, rows.num_rows - 1, SAMPLE_METERS).astype(np.int64)))
            rows = rows.filter(pc.is_in(ids, value_set=picked)).slice(0, SAMPLE_ROWS)
        chans = [c for c in chans if rows[c].null_count < rows.num_rows]
        if not chans or rows.num_rows < 2:
            return
        meter = pc.dictionary_encode(rows["meter_id"]).combine_chunks().indices.to_numpy(zero_copy_only=False)
        ts = pc.cast(rows["ts"], pa.int64()).to_numpy()
        order = np.lexsort((ts, meter))
        meter, ts = meter[order], ts[order]
        same = meter[1:] == meter[:-1]
        # each reading's meter's span in the sample (first to last reading), for the power test
        starts = np.flatnonzero(np.r_[True, ~same])
        ends = np.r_[starts[1:], len(ts)] - 1
        long = np.repeat(ts[ends] - ts[starts] >= POWER_MIN_SPAN_H * 3600e6, ends - starts + 1)[1:]
        for c in chans:
            v = rows[c].to_numpy()[order]     # (a null reads as NaN: its steps are not counted)
            d = np.diff(v)
            ok = same & np.isfinite(d) & (long if c != REGISTER else True)
            falls = ok & (d < 0)
            self.steps[c] += int(np.count_nonzero(ok))
            self.rises[c] += int(np.count_nonzero(ok & (d > 0)))
            self.falls[c] += int(np.count_nonzero(falls)) - (len(np.unique(meter[1:][falls])) if c == REGISTER else 0)

    def notes(self, source: str, resolved: dict[str, tuple[str, ...]]) -> list[str]:
        """The warnings for ``source`` (``resolved``: channel -> the source column(s) it was read from)."""
        out = []

        def named(c: str) -> str:
            cols = resolved.get(c)
            return f"{c} (read from column {', '.join(cols)})" if cols else c

        n, r, f = self.steps[REGISTER], self.rises[REGISTER], self.falls[REGISTER]
        if f >= REGISTER_MIN_FALLS and f >= REGISTER_FALL_SHARE * (r + f):
            out.append(f"{source}: {named(REGISTER)} is a cumulative energy register, which only grows (reset "
                       f"rarely), but it fell at {f:,} of its {n:,} steps from one reading of a meter to the next: "
                       "energy per interval? If so, map that column to p_kw with [scale] p_kw = 60 / the interval in "
                       "minutes (4 for 15 min) instead. The readings were stored as given")
        for c in POWER:
            n, r, f = self.steps[c], self.rises[c], self.falls[c]
            if r >= POWER_MIN_RISES and f <= POWER_FALL_SHARE * r:
                out.append(f"{source}: {named(c)} rose at {r:,} of its {n:,} steps from one reading of a meter to "
                           f"the next and fell at {f:,}: power goes up and down, a column that only grows is a "
                           f"cumulative energy register (kWh)? If so, map it to e_kwh instead. The readings were "
                           "stored as given")
        return out

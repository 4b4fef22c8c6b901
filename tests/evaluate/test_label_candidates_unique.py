"""Review: one candidate per key, one id per candidate. The straddling-dip criterion (run after
every other) found again two 2-reading drops the drop criterion had found (bdg2-e0004, bdg2-e0036):
the committed candidates_expert.json held them twice under one id, and build-expert kept the
second's criterion text for the label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.evaluate.test_real import _label_real

LABELS = Path(__file__).resolve().parents[2] / "data" / "real_labels"
KEY = ("dataset", "meter_id", "channel", "kind", "start", "end")


@pytest.mark.parametrize("name", ["candidates.json", "candidates_expert.json"])
def test_committed_candidates_have_one_entry_per_id_and_per_key(name):
    cands = json.loads((LABELS / name).read_text())
    ids = [c["id"] for c in cands]
    keys = [tuple(c[k] for k in KEY) for c in cands]
    assert len(set(ids)) == len(ids), sorted({i for i in ids if ids.count(i) > 1})
    assert len(set(keys)) == len(keys), sorted({k for k in keys if keys.count(k) > 1})


def test_assign_ids_refuses_a_candidate_found_twice():
    mod = _label_real()
    c = {"dataset": "bdg2", "meter_id": "m", "channel": "p_kw", "kind": "drop", "start": "a", "end": "b",
         "criterion": "x"}
    with pytest.raises(ValueError, match="found twice"):
        mod.assign_ids([dict(c), {**c, "criterion": "y"}], [], "e")

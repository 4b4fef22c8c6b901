"""Energy balance: a theft shows as a persistent loss and points at its POD; real changes do not."""

import pandas as pd
import pytest

from wattwatch.fleet.balance import energy_balance
from wattwatch.sim.pods import PodSimConfig, simulate_pods


def sim(**kw):
    base = dict(pods=60, panels=3, months=3, fault_months=1, seed=2, theft_share=0.0, shift_share=0.0,
                vacation_share=0.0)
    base.update(kw)
    return simulate_pods(PodSimConfig(**base))


@pytest.fixture(scope="module")
def theft():
    # big enough thefts to be worth flagging: commercial PODs only, so every theft is several % of a panel
    r = sim(theft_share=0.05, commercial_share=1.0, seed=4)
    return r, energy_balance(r["hourly"], r["panel_hourly"], "month")


def test_a_theft_pod_ranks_first_in_its_panel_and_the_loss_is_dated(theft):
    r, b = theft
    thefts = [lab for lab in r["labels"] if lab["type"] == "theft"]
    assert thefts
    one_per_panel = pd.Series([lab["panel_id"] for lab in thefts]).value_counts()
    assert (one_per_panel == 1).any() and (one_per_panel > 1).any()  # both cases are exercised
    for lab in thefts:
        s = b.suspects[b.suspects["pod_id"] == lab["pod_id"]].iloc[0]
        # two thieves on one panel take the first two places
        assert s["rank"] <= one_per_panel[lab["panel_id"]] and s["panel_flagged"], lab
        if one_per_panel[lab["panel_id"]] > 1:
            continue
        p = b.panels.set_index("panel_id").loc[lab["panel_id"]]
        assert p["flagged"]
        assert abs((p["loss_start"] - pd.Timestamp(lab["start"])).days) <= 2
    flagged = set(b.panels.loc[b.panels["flagged"], "panel_id"])
    assert flagged == {lab["panel_id"] for lab in thefts}
    # the per-period table flags the periods from the loss on, and its kWh add up
    per = b.periods
    assert (per["loss_kwh"] - (per["panel_kwh"] - per["pods_kwh"])).abs().max() < 1e-6
    assert (per.loc[per["flagged"], "period"] >= "2025-03").all()
    assert per.loc[per["period"] == "2025-01", "flagged"].sum() == 0


def test_clean_panels_with_technical_losses_are_not_flagged():
    r = sim(seed=5)
    b = energy_balance(r["hourly"], r["panel_hourly"], "month")
    assert not b.panels["flagged"].any()
    # the loss is there (2-5 % technical), the allowance explains it
    share = b.periods["loss_share"]
    assert share.between(0.01, 0.07).all()
    assert b.periods["unexplained_share"].abs().max() < 0.005


@pytest.mark.parametrize("kind", ["vacation_share", "shift_share"])
def test_vacations_and_level_shifts_are_not_losses(kind):
    r = sim(seed=6, commercial_share=0.5, **{kind: 0.15})
    assert any(lab["type"] in ("vacation", "level_shift") for lab in r["labels"])
    b = energy_balance(r["hourly"], r["panel_hourly"], "month")
    assert not b.panels["flagged"].any(), b.panels[["panel_id", "cusum_max", "unexplained_share_after"]]


def test_panel_meters_as_rows_or_mapping_give_the_same_balance(theft):
    r, b = theft
    rows = r["panel_hourly"].assign(pod_id=r["panel_hourly"]["panel_id"], coverage=1.0)
    both = pd.concat([r["hourly"], rows], ignore_index=True)
    by_rows = energy_balance(both, None, "month")
    mapping = pd.DataFrame({"panel_id": r["panel_hourly"]["panel_id"].unique()})
    mapping["meter_id"] = mapping["panel_id"]
    by_map = energy_balance(both.assign(is_panel=False), mapping, "month")
    for other in (by_rows, by_map):
        pd.testing.assert_frame_equal(b.periods, other.periods)
        pd.testing.assert_frame_equal(b.suspects, other.suspects)


def test_an_hour_with_a_missing_pod_is_not_balanced_and_bad_input_is_named(theft):
    r, _ = theft
    h = r["hourly"]
    drop = h.index[(h["pod_id"] == h["pod_id"].iloc[0]) & (h["hour"] < h["hour"].min() + pd.Timedelta(hours=5))]
    b = energy_balance(h.drop(index=drop), r["panel_hourly"], "month")
    panel = h["panel_id"].iloc[0]
    jan = b.periods[(b.periods["panel_id"] == panel) & (b.periods["period"] == "2025-01")]
    assert int(jan["valid_hours"].iloc[0]) == 31 * 24 - 5
    with pytest.raises(ValueError, match="e_kwh"):
        energy_balance(h.drop(columns=["e_kwh"]), None)
    with pytest.raises(ValueError, match="panels"):
        energy_balance(h, r["panel_hourly"].drop(columns=["e_kwh"]))


def test_a_small_theft_behind_a_big_one_on_the_same_panel_is_found_by_explaining_away():
    r = sim(seed=7, months=4, fault_months=2)  # clean; the thefts are put in by hand below
    h = r["hourly"].copy()
    panel = h["panel_id"].value_counts().index[0]
    size = h[h["panel_id"] == panel].groupby("pod_id")["e_kwh"].sum().sort_values()
    # the big thief: the panel's largest POD (19 % of its energy) registers 40 %; the small one, a
    # household with 0.4 % of it, registers 30 % from four days later
    big, small = size.index[-1], size.index[-11]
    assert size[small] / size.sum() < 0.005
    t0 = pd.Timestamp("2025-03-10", tz="UTC")
    h.loc[(h["pod_id"] == big) & (h["hour"] >= t0), "e_kwh"] *= 0.4
    h.loc[(h["pod_id"] == small) & (h["hour"] >= t0 + pd.Timedelta(days=4)), "e_kwh"] *= 0.3
    ranks = {}
    for rounds in (5, 0):
        s = energy_balance(h, r["panel_hourly"], "month", explain_rounds=rounds).suspects.set_index("pod_id")
        ranks[rounds] = (s.loc[big, "rank"], s.loc[small, "rank"])
    assert ranks[5][0] == 1 and ranks[5][1] <= 5
    assert ranks[0][1] > 5  # without explaining away the big theft hides the small one

"""The learned ensemble's members take the settings a user gives them (b1).

Before (main 0047ba3): ``EnsembleDetector._new_fleet`` built each member from the ensemble's shared
settings only, so every member model ran at its defaults (100 trees, a 32-4 autoencoder trained 12
epochs) whatever the user wanted; ``[learned_ensemble] epochs = 3`` was refused as unknown and
``[autoencoder] epochs = 3`` (the standalone detector's section) was silently not applied to the
member. Now ``[learned_ensemble.<member>]`` tables set each member's model, checked like every
other parameter, and a member trains exactly as the standalone detector of its name with the same
settings does."""

from __future__ import annotations

import numpy as np
import pytest

from tests.store.test_integrity import fleet
from wattwatch.detect import registry
from wattwatch.detect.learned import serialize
from wattwatch.errors import ConfigError

SHARED = {"max_train_rows": 2000, "min_fleet_meter_days": 1.0, "seed": 3}
MEMBERS = {"isolation_forest": {"n_estimators": 7, "contamination": 0.02},
           "autoencoder": {"epochs": 1, "hidden": 8, "code_size": 3}}


@pytest.fixture(scope="module")
def normal():
    return fleet(meters=3, days=3, seed=8)   # 5-minute readings with a register (cheaper than simulate)


@pytest.fixture(scope="module")
def ensemble(normal):
    return registry.build("learned_ensemble", {**SHARED, **MEMBERS}).train(normal)


def _member_states(d) -> list[bytes]:
    return [serialize.dumps(m.state()) for m in d.fleets_[300.0].members_]


def test_each_member_trains_as_its_detector_with_the_settings_given(ensemble, normal):
    forest, ae = ensemble.fleets_[300.0].members_
    assert forest.model_.est_.n_estimators == 7 and len(forest.model_.est_.estimators_) == 7
    assert forest.model_.est_.contamination == 0.02
    assert (ae.model_.hidden, ae.model_.code, ae.model_.trainer.epochs) == (8, 3, 1)
    # The same as the standalone detectors given the same settings (and the ensemble's seed 3):
    # every fitted number of the scaler, model and calibrations.
    for member, name in ((forest, "isolation_forest"), (ae, "autoencoder")):
        alone = registry.build(name, {**SHARED, **MEMBERS[name]}).train(normal)
        assert serialize.dumps(member.state()) == serialize.dumps(alone.fleets_[300.0].state()), name


def test_a_member_setting_changes_the_trained_member_and_only_it(ensemble, normal):
    fewer = registry.build("learned_ensemble", {**SHARED, **MEMBERS, "autoencoder": {**MEMBERS["autoencoder"],
                                                                                      "epochs": 2}}).train(normal)
    (f1, a1), (f2, a2) = _member_states(ensemble), _member_states(fewer)
    assert f1 == f2 and a1 != a2


def test_member_settings_are_checked_and_each_error_names_its_key():
    def refused(cfg, *words):
        with pytest.raises(ConfigError) as exc:
            registry.build("learned_ensemble", cfg)
        assert all(w in str(exc.value) for w in ("[learned_ensemble]", *words)), str(exc.value)

    refused({"autoencoder": {"epoch": 2}}, "EnsembleConfig.autoencoder", "unknown parameter(s) ['epoch']", "'epochs'")
    refused({"autoencoder": {"seed": 2}}, "['seed']", "set on the ensemble itself")
    refused({"autoencoder": {"epochs": 0}}, "EnsembleConfig.autoencoder", "epochs must be a number > 0")
    refused({"isolation_forest": {"n_estimators": 2.5}}, "n_estimators must be a whole number")
    refused({"autoencoder": 3}, "expected a table of autoencoder settings")
    refused({"epochs": 2}, "unknown parameter(s) ['epochs']", "set it under [learned_ensemble.autoencoder]")
    refused({"local_outlier_factor": {"n_neighbors": 5}}, "not a member", "members: isolation_forest, autoencoder")
    refused({"pca_reconstruction": {}}, "unknown parameter(s) ['pca_reconstruction']")
    ok = registry.build("learned_ensemble", {"members": ["local_outlier_factor", "pca_reconstruction"],
                                             "local_outlier_factor": {"n_neighbors": 5}})
    assert ok.config.local_outlier_factor.n_neighbors == 5


def test_member_tables_in_a_toml_config_round_trip_and_defaults_keep_the_old_settings(tmp_path, ensemble):
    from wattwatch.detect import state
    from wattwatch.detect.learned import persist

    cfg = tmp_path / "c.toml"
    cfg.write_text("[learned_ensemble]\nseed = 3\n[learned_ensemble.autoencoder]\nepochs = 4\n")
    (d,) = registry.build_all(["learned_ensemble"], registry.load_config(cfg))
    assert d.config.autoencoder.epochs == 4 and d.config.autoencoder.hidden == 32 and d.config.seed == 3
    assert registry.build("learned_ensemble", d.config.to_dict()).config == d.config
    # A default ensemble's settings are the dict they were before member tables (a store's fleet
    # models and a folder's manifest are found by them), with a table only when one is set.
    plain = registry.build("learned_ensemble").config.to_dict()
    assert not set(plain) & {"isolation_forest", "local_outlier_factor", "autoencoder"}
    assert d.config.to_dict()["autoencoder"] == {"hidden": 32, "code_size": 4, "epochs": 4}
    assert state.settings_key(d) != state.settings_key(registry.build("learned_ensemble", {"seed": 3}))
    # A model folder keeps the members' settings.
    (loaded,) = persist.load_models(persist.save_models([ensemble], tmp_path / "m"))
    assert loaded.config == ensemble.config and loaded.config.isolation_forest.n_estimators == 7
    assert _member_states(loaded) == _member_states(ensemble)
    x = np.zeros((2, len(loaded.fleets_[300.0].feature_names_)))
    assert np.array_equal(loaded.fleets_[300.0].members_[1].model_.raw(x), ensemble.fleets_[300.0].members_[1].model_.raw(x))


def test_detectors_command_lists_the_member_settings():
    import json

    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    one = json.loads(CliRunner().invoke(app, ["detectors", "learned_ensemble", "--json"]).stdout)
    assert one["params"]["autoencoder"] == {"hidden": 32, "code_size": 4, "epochs": 12}
    assert one["params"]["isolation_forest"] == {"n_estimators": 100, "contamination": 0.01}
    shown = " ".join(CliRunner().invoke(app, ["detectors", "learned_ensemble"]).stdout.split())
    assert "[learned_ensemble.autoencoder]" in shown and "[learned_ensemble.isolation_forest]" in shown, shown

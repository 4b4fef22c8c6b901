"""Site configs for `wattwatch watch`: every mistake is refused naming the file and the key."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from wattwatch import api
from wattwatch.app.cli import app
from wattwatch.errors import ConfigError

MODBUS = ('[models.em]\nregisters = [{ channel = "p_kw", table = "input", address = 0, type = "float32" }]\n'
          '[[sources]]\ntype = "modbus"\nname = "plant"\n[[sources.devices]]\nmeter_id = "M-1"\nhost = "127.0.0.1"\n'
          'port = 2000\nunit = 3\nmodel = "em"\n')
GOOD_MQTT = '[[sources]]\ntype = "mqtt"\nname = "m"\ntopics = ["a/#"]\nmeter = "topic:1"\n'


@pytest.mark.parametrize("text, says", [
    ("", "at least one [[sources]]"),
    ('[[sources]]\ntype = "pigeon"\n', "type must be one of replay, mqtt"),
    (GOOD_MQTT + '[[sinks]]\ntype = "pigeon"\n', "[[sinks]] #1: type must be one of"),
    ('sinks = 3\n' + GOOD_MQTT, "sinks must be [[sinks]] tables"),
    ('[[sources]]\ntype = "replay"\n', "path (the telemetry file to replay) is required"),
    ('[[sources]]\ntype = "replay"\npath = "nope.csv"\n', "no such file"),
    ('[[sources]]\ntype = "mqtt"\ntopics = ["a"]\nmeter = "level2"\n', "meter must look like 'topic:N'"),
    ('[[sources]]\ntype = "mqtt"\ntopic = "a"\n', "unknown key(s) ['topic']"),
    (GOOD_MQTT + GOOD_MQTT, "two sources are named 'm'"),
    (GOOD_MQTT + '[stream]\nhold = 3\n', "[stream]: unknown parameter(s) ['hold']"),
    (GOOD_MQTT + '[stream]\nhold_s = -1\n', "[stream] hold_s: must be a finite number >= 0, got -1"),
    (GOOD_MQTT + '[stream]\nslow_every_s = -60\n', "[stream] slow_every_s: must be a finite number >= 0, got -60"),
    (GOOD_MQTT + '[stream]\nmax_pending = 0\n', "[stream] max_pending: must be a whole number >= 1, got 0"),
    # (tc) the [silence] and [engine] numbers go through the same checker (tomlfile.number)
    (GOOD_MQTT + '[silence]\nlost_polls = 2.5\n', "[silence] lost_polls: must be a whole number >= 1, got 2.5"),
    (GOOD_MQTT + '[silence]\ncadences = 0\n', "[silence] cadences: must be a finite number > 0, got 0"),
    (GOOD_MQTT + '[silence]\nexpect_s = { m = nan }\n', "[silence] expect_s.m: must be a finite number > 0, got nan"),
    (GOOD_MQTT + '[silence]\nenabled = 1\n', "[silence] enabled: must be true or false, got 1"),
    (GOOD_MQTT + '[engine]\nprofile_max_share = 1.5\n', "[engine] profile_max_share: must be a finite number within (0, 1], got 1.5"),
    (GOOD_MQTT + '[engine]\nworkers = true\n', "[engine] workers: must be a whole number >= 0, got True"),
    # (rtc) tomllib reads an integer of any length: math.isfinite's OverflowError was a traceback
    (GOOD_MQTT + '[stream]\nhold_s = ' + '9' * 400 + '\n', "[stream] hold_s: must be a finite number >= 0, got 999"),
    (GOOD_MQTT + '[silence]\nlost_polls = ' + '9' * 400 + '\n', "[silence] lost_polls: must be a whole number >= 1, got 999"),
    (GOOD_MQTT + '[store]\npath = 3\n', "[store] must be a table"),
    (GOOD_MQTT + '[no_such_rule]\nx = 1\n', "unknown section [no_such_rule]; a site config's sections: store, stream"),
    # (fh) a typo'd site table was "unknown detector section [stor]; known: <the detectors>"
    (GOOD_MQTT + '[stor]\npath = "s.duckdb"\n', "unknown section [stor] (did you mean [store]?)"),
    (GOOD_MQTT + '[silense]\nmin_s = 60\n', "unknown section [silense] (did you mean [silence]?)"),
    (GOOD_MQTT + '[seasonal_profil]\nmin_days = 3\n', "(did you mean [seasonal_profile]?)"),
    # (rfh) an array of tables or a key: "unknown key 'sink' (expected detectors = [...], [engine] ...)"
    (GOOD_MQTT + '[[sink]]\ntype = "status"\npath = "s.json"\n', "unknown key 'sink' (did you mean [[sinks]]?); a site"),
    ('detector = ["packet_loss"]\n' + GOOD_MQTT, "unknown key 'detector' (did you mean detectors?)"),
    (GOOD_MQTT + '[engine]\nprofile_days = "x"\n', "profile_days"),
    ("[[sources]\n", "cannot read site config"),
    # (adv41) a typo'd channel in fields/scale was ignored: a scale of W -> kW silently not applied
    (GOOD_MQTT + 'fields = { pkw = "power_w" }\n', "fields: 'pkw' is not a canonical channel"),
    (GOOD_MQTT + 'scale = { pkw = 0.001 }\n', "scale: 'pkw' is not a canonical channel"),
    (GOOD_MQTT + 'scale = { p_kw = "x" }\n', "scale.p_kw: must be a number, got 'x'"),
    (GOOD_MQTT + 'port = "x"\n', "port: must be an integer 1..65535, got 'x'"),
    # a filter the broker cannot take raised in paho's network thread at connect: the source hung
    ('[[sources]]\ntype = "mqtt"\nname = "m"\ntopics = ["a/#/b"]\nmeter = "topic:1"\n',
     "topics: 'a/#/b' is not a valid MQTT topic filter"),
    ('[[sources]]\ntype = "mqtt"\nname = "m"\ntopics = [3]\nmeter = "topic:1"\n', "topics: 3 is not a valid MQTT topic"),
    (GOOD_MQTT + '[stream]\nslow_thread = "false"\n', "[stream] slow_thread: must be true or false, got 'false'"),
    (GOOD_MQTT + '[stream]\nhold_s = "x"\n', "[stream] hold_s: must be a finite number >= 0, got 'x'"),
    # a broker password only in clear in the config: password_env as the influx sink and mqtt_publish take
    (GOOD_MQTT + 'username = "u"\npassword_env = "WW_ADV41_NO_SUCH_ENV"\n',
     "password_env: the environment variable WW_ADV41_NO_SUCH_ENV is not set"),
    (GOOD_MQTT + 'username = "u"\npassword = "p"\npassword_env = "HOME"\n', "give password or password_env, not both"),
    # one meter polled by two sources: its readings would be merged as one meter's
    (MODBUS + MODBUS[MODBUS.index("[[sources]]"):].replace('"plant"', '"plant2"'),
     "meter 'M-1' is read by two sources, 'plant' and 'plant2'"),
])
def test_a_bad_site_config_is_refused_naming_the_file_and_key(tmp_path, text, says):
    cfg = tmp_path / "site.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        api.load_site(cfg)
    assert str(cfg) in str(e.value) and says in str(e.value)
    r = CliRunner().invoke(app, ["watch", "--config", str(cfg)])
    assert r.exit_code == 2 and r.exception is None or isinstance(r.exception, SystemExit), r.output
    assert "Traceback" not in r.output


def test_relative_paths_are_relative_to_the_config(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("meter_id,ts,p_kw\na,2026-01-01T00:00:00Z,1.0\na,2026-01-01T00:05:00Z,1.1\n")
    cfg = tmp_path / "site.toml"
    cfg.write_text('[store]\npath = "s.duckdb"\n[[sources]]\ntype = "replay"\npath = "data/t.csv"\n')
    site = api.load_site(cfg)
    assert site.store == tmp_path / "s.duckdb"
    assert site.sources[0].cycle_us == 300_000_000 and len(site.sources[0].frame) == 2


def test_tamper_key_files_are_relative_to_the_config_when_started_from_another_folder(tmp_path, monkeypatch):
    # (adv41) from_spec resolved `keys` paths in a line after a `raise` (never run): a relative key
    # file was looked for in the folder `watch` was started from.
    site = tmp_path / "site"
    (site / "keys").mkdir(parents=True)
    (site / "keys" / "M-1.key").write_text("00" * 32 + "\n")
    cfg = site / "site.toml"
    cfg.write_text('[[sources]]\ntype = "tamper"\nname = "he"\ntopics = ["edge/#"]\n'
                   'keys = { "M-1" = "keys/M-1.key" }\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = api.load_site(cfg).sources[0]
    assert set(s.keys) == {"M-1"}


def test_an_mqtt_password_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WW_ADV41_BROKER_PW", "s3cret")
    cfg = tmp_path / "site.toml"
    cfg.write_text(GOOD_MQTT + 'username = "u"\npassword_env = "WW_ADV41_BROKER_PW"\n')
    s = api.load_site(cfg).sources[0]
    assert (s.username, s.password) == ("u", "s3cret")

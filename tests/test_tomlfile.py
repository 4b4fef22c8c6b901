"""Every TOML file a user hands wattwatch goes through one reader: whatever is wrong with it is one
clear error naming the file, never a traceback (deep nesting made ``tomllib`` raise RecursionError,
which escaped from most loaders)."""

from __future__ import annotations

import pytest

from wattwatch import api, devices
from wattwatch.dashboard.auth import UsersError, load_users
from wattwatch.detect.registry import load_config
from wattwatch.edge import run as edge_run
from wattwatch.errors import ConfigError
from wattwatch.grid.config import load_toml
from wattwatch.ingest.mapping import Mapping, MappingError
from wattwatch.sources import modbus, snmp
from wattwatch.tomlfile import read_toml

LOADERS = {
    "site config": (api.load_site, ConfigError),
    "edge config": (edge_run.load, ConfigError),
    "detector config": (load_config, ConfigError),
    "mapping": (Mapping.from_toml, MappingError),
    "devices file": (devices.load, ValueError),
    "grid config": (load_toml, ConfigError),
    "users file": (load_users, UsersError),
    "models file (Modbus register maps)": (lambda p: modbus.load_models(str(p), None), ValueError),
    "models file (SNMP OID maps)": (lambda p: snmp.load_models(str(p)), ValueError),
}

BAD = {
    "deep": ("a = " + "[" * 3000 + "]" * 3000 + "\n").encode(),
    "not_toml": b"[section\nkey = \n",
    "not_utf8": b"a = \"\xff\xfe\"\n",
}


@pytest.mark.parametrize("what", sorted(LOADERS))
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_toml_file_is_a_clear_error_naming_it(tmp_path, what, case):
    load, error = LOADERS[what]
    f = tmp_path / f"{case}.toml"
    f.write_bytes(BAD[case])
    with pytest.raises(error) as got:
        load(f)
    msg = str(got.value)
    assert str(f) in msg
    assert {"deep": "nested too deeply", "not_toml": "line 1", "not_utf8": "not UTF-8 text (byte 5)"}[case] in msg


@pytest.mark.parametrize("what", sorted(LOADERS))
def test_missing_and_folder(tmp_path, what):
    load, error = LOADERS[what]
    with pytest.raises(error, match="no such"):
        load(tmp_path / "nope.toml")
    with pytest.raises(error, match="is a folder"):
        load(tmp_path)


def test_a_byte_order_mark_is_accepted(tmp_path):
    f = tmp_path / "bom.toml"
    f.write_bytes("\ufeff[store]\npath = \"x.duckdb\"\n".encode())
    assert read_toml(f, "site config") == {"store": {"path": "x.duckdb"}}



def test_a_config_number_is_checked_naming_its_key_and_all_it_must_be():
    """(tc) One checker for the configs' numbers ([stream], [silence], [engine], a detector's post
    rule): every failure says the key and the whole of what is asked, and a good value comes back as
    the type the config keeps (a whole number given as 64.0 is 64)."""
    from wattwatch.tomlfile import flag, number

    assert number("[s] k", 3, lo=0) == 3.0 and type(number("[s] k", 3, lo=0)) is float
    assert number("[s] n", 64.0, whole=True, lo=1) == 64 and type(number("[s] n", 64.0, whole=True)) is int
    assert number("[s] h", 0, lo=0, hi=1, hi_in=False) == 0.0 and number("[s] c", 1, lo=0, lo_in=False) == 1.0
    for v, kw, says in [
        (True, {}, "[s] k: must be a finite number, got True"),               # true is no count
        ("3", {}, "[s] k: must be a finite number, got '3'"),
        (float("nan"), {"lo": 0}, "[s] k: must be a finite number >= 0, got nan"),
        (float("inf"), {}, "[s] k: must be a finite number, got inf"),
        (2.5, {"whole": True, "lo": 1}, "[s] k: must be a whole number >= 1, got 2.5"),
        (0, {"whole": True, "lo": 1}, "[s] k: must be a whole number >= 1, got 0"),
        (0, {"lo": 0, "lo_in": False}, "[s] k: must be a finite number > 0, got 0"),
        (1, {"lo": 0, "hi": 1, "hi_in": False, "note": " (0: off)"},
         "[s] k: must be a finite number within [0, 1) (0: off), got 1"),
        (2, {"hi": 1}, "[s] k: must be a finite number <= 1, got 2"),
    ]:
        with pytest.raises(ValueError) as e:
            number("[s] k", v, **kw)
        assert str(e.value) == says, (v, kw, str(e.value))
    assert flag("[s] b", False) is False
    with pytest.raises(ValueError, match=r"^\[s\] b: must be true or false, got 'false'$"):
        flag("[s] b", "false")


def test_a_detector_post_rule_number_is_refused_naming_the_file_and_key(tmp_path):
    p = tmp_path / "rules.toml"
    p.write_text("[supply_outage.post]\nmin_readings = 0\n")
    with pytest.raises(ConfigError, match=r"rules\.toml.*post\.min_readings: must be a whole number >= 1, got 0"):
        load_config(p)
    p.write_text("[supply_outage.post]\nmin_readings = 3.0\n")   # a whole number written as a float: kept as 3
    from wattwatch.detect.registry import build

    post = build("supply_outage", load_config(p)["supply_outage"]).config.post
    assert post.min_readings == 3 and type(post.min_readings) is int

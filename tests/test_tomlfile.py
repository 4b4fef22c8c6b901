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


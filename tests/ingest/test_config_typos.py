"""(rfh) A typo in a mapping file or an edge config: fh's "did you mean [store]?" covered the site and
detector configs only. A mapping's `[colums]` was "unknown section(s) ['colums']" with no list of the
sections, `[options] timezon` likewise, an edge config's `[simulat]` "unknown key(s) ['simulat']"; a
source's, device's, sink's or action's key listed the known keys without the one meant."""
from __future__ import annotations

from pathlib import Path

import pytest

from wattwatch.ingest.mapping import Mapping, MappingError
from wattwatch.tomlfile import only


@pytest.mark.parametrize("text, said", [
    ('[colums]\np_kw = "x"\n', "unknown section(s) ['colums'] (did you mean [columns]?); known: columns, scale"),
    ('[options]\ntimezon = "UTC"\n', "unknown key(s) ['timezon'] (did you mean 'timezone'?); known: "),
    ('[options]\nzzz = 1\n', "unknown key(s) ['zzz']; known: builtin_aliases"),
])
def test_a_typo_in_a_mapping_file_says_what_was_meant(tmp_path: Path, text: str, said: str):
    p = tmp_path / "m.toml"
    p.write_text(text)
    with pytest.raises(MappingError) as e:
        Mapping.from_toml(p)
    assert said in str(e.value)


def test_a_typo_in_an_edge_config_or_a_table_of_keys_says_what_was_meant(tmp_path: Path):
    from wattwatch.edge import run as edge_run
    from wattwatch.edge.run import ConfigError

    (tmp_path / "m.toml").write_text('meter_id = "M"\n[simulat]\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['simulat'\] \(did you mean 'simulate'\?\); known: meter_id"):
        edge_run.load(tmp_path / "m.toml")
    with pytest.raises(ValueError, match=r"known: interval_s, path \(did you mean 'interval_s'\?\)$"):
        only({"interval": 1}, {"path", "interval_s"}, "[[sources]] #1")

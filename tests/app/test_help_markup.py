"""Help texts are rendered as Rich markup: a TOML table name in one (`[[devices]]`, `[engine]`) was
read as a style tag and vanished from `--help` ("Devices file (TOML): [] tables ... shared  register
maps"). Every command's and option's help must show the brackets it was written with (escape them
as ``\\[``)."""
from __future__ import annotations

import typer
from rich.markup import render

from wattwatch.app.cli import app


def _walk(cmd, path):
    texts = [("help", cmd.help or ""), ("short_help", cmd.short_help or "")]
    texts += [(p.name, getattr(p, "help", None) or "") for p in cmd.params]
    for name, text in texts:
        if text:
            yield " ".join(path), name, text
    for sub_name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk(sub, path + [sub_name])


def test_every_help_text_keeps_its_brackets():
    root = typer.main.get_command(app)
    seen, eaten = 0, []
    for where, name, text in _walk(root, ["wattwatch"]):
        seen += 1
        shown = render(text).plain
        if shown != text.replace("\\[", "["):
            eaten.append(f"{where} {name}: {text!r} is shown as {shown!r}")
    assert seen > 200  # the walk reached the subcommands' options
    assert not eaten, "\n".join(eaten)


def test_the_devices_help_names_its_tables(monkeypatch):
    from typer.testing import CliRunner

    # (rfh) Rich lays help out at $COLUMNS (typer: $TERMINAL_WIDTH, read at import), not at
    # CliRunner's terminal_width: under COLUMNS=40 the text wrapped between "[[devices]]" and "tables".
    monkeypatch.setattr("typer.rich_utils.MAX_WIDTH", 200)
    out = CliRunner().invoke(app, ["devices", "--help"], env={"COLUMNS": "200"}).output
    assert "[[devices]] tables" in out and "[models.NAME] register maps" in out

"""The CLI contract: --version, the exit-code table, --json, --env-file, one-line operator errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from privacy_middleware import __version__
from privacy_middleware.cli import build_parser
from privacy_middleware.commands.base import ExitCode

from .conftest import DEMO_POLICY

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("privacy-middleware: error: ")
    return lines[0]


def test_version_from_the_installed_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "privacy_middleware.cli", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"privacy-middleware {__version__}"


def test_the_documented_exit_code_table_is_the_one_the_code_uses() -> None:
    rows = dict(re.findall(r"^\| `(\d+)` \| (\w+) \|", DOC.read_text(), re.MULTILINE))
    assert {int(code): name for code, name in rows.items()} == {int(c): c.name for c in ExitCode}


def test_every_command_takes_env_file_and_json() -> None:
    import argparse

    def leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return [leaf for child in action.choices.values() for leaf in leaves(child)]
        return [parser]

    found = leaves(build_parser())
    assert len(found) > 10
    for leaf in found:
        options = {o for action in leaf._actions for o in action.option_strings}
        assert {"--env-file", "--json"} <= options, leaf.prog


def test_usage_error_exits_2(cli: Any) -> None:
    ran = cli("policy", "no-such-subcommand")
    assert ran.code == ExitCode.USAGE


def test_policy_check_ok_exits_0_and_json_is_parseable(cli: Any) -> None:
    ran = cli("policy", "check", str(DEMO_POLICY))
    assert ran.code == 0 and ": OK" in ran.out
    ran = cli("policy", "check", str(DEMO_POLICY), "--json")
    document = orjson.loads(ran.out)
    assert ran.code == 0 and document["ok"] is True and document["findings"] == []
    assert document["summary"]["planned_routes"] > 0


def test_policy_check_with_an_unmatched_example_is_a_finding_not_ok(cli: Any, tmp_path: Path) -> None:
    payload = tmp_path / "order.json"
    payload.write_text('{"id": 1, "nothing_classified": true}')
    ran = cli("policy", "check", str(DEMO_POLICY), "--example", f"GET /me={payload}")
    assert ran.code == ExitCode.FINDING
    assert "OK" not in ran.out and "finding(s)" in ran.out
    ran = cli("--json", "policy", "check", str(DEMO_POLICY), "--example", f"GET /me={payload}")
    assert ran.code == ExitCode.FINDING and orjson.loads(ran.out)["ok"] is False


def test_policy_check_operator_mistakes_are_one_line(cli: Any, tmp_path: Path) -> None:
    ran = cli("policy", "check", str(tmp_path / "missing.toml"))
    assert ran.code == ExitCode.USAGE
    one_line_error(ran.err)
    ran = cli("policy", "check", str(DEMO_POLICY), "--example", "GET /me")
    assert ran.code == ExitCode.USAGE
    one_line_error(ran.err)
    ran = cli("policy", "check", str(DEMO_POLICY), "--example", f"GET /me={tmp_path / 'nope.json'}")
    assert ran.code == ExitCode.USAGE
    one_line_error(ran.err)


def test_invalid_policy_exits_1(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\nname = "x"\n')
    ran = cli("policy", "check", str(bad))
    assert ran.code == ExitCode.FINDING and "problem(s)" in ran.out


def test_explain_with_an_unknown_recipient_exits_2_and_names_the_closest(cli: Any) -> None:
    ran = cli("policy", "explain", str(DEMO_POLICY), "--recipient", "logistic", "--route", "GET /orders")
    assert ran.code == ExitCode.USAGE
    assert "'logistics'" in one_line_error(ran.err)
    ran = cli("policy", "explain", str(DEMO_POLICY), "--recipient", "logistics", "--route", "GET /orders", "--json")
    assert ran.code == 0 and orjson.loads(ran.out)["fields"]


def test_env_file_before_or_after_the_command(cli: Any, tmp_path: Path) -> None:
    env = tmp_path / "privacy.env"
    env.write_text(f"PRIVACY_POLICY_FILE={DEMO_POLICY}\nPRIVACY_MOUNT_PATH=/gdpr\n")
    for argv in (["--env-file", str(env), "config", "check", "--json"], ["config", "check", "--env-file", str(env)]):
        ran = cli(*argv)
        assert ran.code == 0, ran.out + ran.err
        assert "/gdpr" in ran.out
    ran = cli("config", "check", "--env-file", str(tmp_path / "missing.env"))
    assert ran.code == ExitCode.USAGE
    one_line_error(ran.err)


def test_audit_export_refuses_a_store_without_tables_and_an_existing_export(cli: Any, tmp_path: Path) -> None:
    env = tmp_path / "privacy.env"
    env.write_text(f"PRIVACY_DATABASE_URL=sqlite:///{tmp_path / 'empty.db'}\n")
    ran = cli("--env-file", str(env), "audit", "export", "--out", str(tmp_path / "export"))
    assert ran.code == ExitCode.FINDING
    assert "db upgrade" in one_line_error(ran.err)
    assert cli("--env-file", str(env), "db", "upgrade", "--json").code == 0
    assert cli("--env-file", str(env), "audit", "export", "--out", str(tmp_path / "export")).code == 0
    ran = cli("--env-file", str(env), "audit", "export", "--out", str(tmp_path / "export"))
    assert ran.code == ExitCode.FINDING
    assert "already holds an audit export" in one_line_error(ran.err)


def test_bad_configuration_is_one_error_listing_every_problem(cli: Any, tmp_path: Path) -> None:
    env = tmp_path / "privacy.env"
    env.write_text("PRIVACY_DATABSE_URL=sqlite:///x.db\nPRIVACY_MAX_BODY_BYTES=lots\n")
    ran = cli("--env-file", str(env), "db", "upgrade")
    assert ran.code == ExitCode.USAGE
    assert "Traceback" not in ran.err
    assert "PRIVACY_DATABSE_URL" in ran.err and "PRIVACY_DATABASE_URL" in ran.err
    assert "PRIVACY_MAX_BODY_BYTES" in ran.err and "whole number" in ran.err

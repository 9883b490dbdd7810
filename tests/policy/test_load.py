"""Policy files: every problem reported with file, key path and reason; the CLI check."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy_middleware.cli import main
from privacy_middleware.demo.run import demo_policy_path
from privacy_middleware.policy.compile import compile_policy
from privacy_middleware.policy.load import PolicyError, load_policy

GOOD = """
[policy]
name = "Shop"
version = "1"
effective_date = 2026-01-01

[categories]
"user.name" = {}
"user.contact.email" = {}

[purposes.delivery]
legal_basis = "contract"

[recipients.logistics]
purposes = ["delivery"]
sees = { "user.name" = "keep" }

[[routes]]
method = "GET"
path = "/orders/{id}"
[routes.response]
fields = [{ select = "name", category = "user.name" }]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_good_policy_loads_and_compiles(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    table = compile_policy(policy)
    match = table.match("GET", "/orders/42")
    assert match is not None and match[1] == {"id": "42"}
    assert table.match("GET", "/orders") is None


def test_every_problem_is_reported_with_its_key_path(tmp_path: Path) -> None:
    bad = GOOD.replace('sees = { "user.name" = "keep" }', 'sees = { "user.nmae" = "show" }')
    bad = bad.replace('purposes = ["delivery"]', 'purposes = ["delivry"]')
    bad = bad.replace('select = "name"', 'select = "$.a["')
    bad += '\n[[routes]]\nmethod = "GET"\npath = "/orders/{other}"\n'
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, bad))
    text = str(info.value)
    paths = {issue.path for issue in info.value.issues}
    assert "recipients.logistics.purposes[0]" in paths
    assert 'recipients.logistics.sees["user.nmae"]' in paths
    assert "routes[0].response.fields[0].select" in paths
    assert "routes[1]" in paths  # duplicate route
    assert all(issue.file.endswith("policy.toml") for issue in info.value.issues)
    assert "unknown transform 'show'" in text


def test_schema_errors_name_the_key(tmp_path: Path) -> None:
    bad = GOOD.replace('legal_basis = "contract"', 'legal_basis = "because"\ncolour = "red"')
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, bad))
    paths = {issue.path for issue in info.value.issues}
    assert "purposes.delivery.legal_basis" in paths
    assert "purposes.delivery.colour" in paths


def test_toml_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, "[policy\nname="))
    assert "not valid TOML" in str(info.value)


def test_cli_check_good_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(demo_policy_path())]) == 0
    assert "OK" in capsys.readouterr().out
    path = write(tmp_path, GOOD.replace('"user.name" = {}', '"User Name" = {}'))
    assert main(["policy", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "policy.toml" in out and "categories" in out


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "nope.toml")
    assert "cannot read file" in str(info.value)


def test_route_table_matching_rules() -> None:
    from privacy_middleware.policy.compile import RouteTable

    table = RouteTable(
        [
            ("GET", "/orders/{id}", "order"),
            ("GET", "/orders/export", "export"),
            ("GET", "/users/{uid}/orders/{oid}", "user-order"),
            ("GET", "/files/{p:path}", "file"),
            ("GET", "/{tenant}/cart", "cart"),
            ("POST", "/checkout", "checkout"),
        ]
    )
    assert table.match("GET", "/orders/12") == ("order", {"id": "12"})
    assert table.match("GET", "/orders/export") == ("export", {})
    assert table.match("GET", "/orders/12/") == ("order", {"id": "12"})
    assert table.match("GET", "/users/u1/orders/o2") == ("user-order", {"uid": "u1", "oid": "o2"})
    assert table.match("GET", "/files/a/b/c") == ("file", {"p": "a/b/c"})
    assert table.match("GET", "/acme/cart") == ("cart", {"tenant": "acme"})
    assert table.match("POST", "/checkout/") == ("checkout", {})
    assert table.match("GET", "/orders/12/x") is None
    assert table.match("GET", "/orders") is None
    assert table.match("DELETE", "/orders/12") is None
    assert table.match("GET", "/") is None


def test_policy_explain_says_what_a_recipient_sees_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "policy",
                "explain",
                str(demo_policy_path()),
                "--recipient",
                "logistics",
                "--route",
                "GET /orders/{order_id}",
            ]
        )
        == 0
    )
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert (
        "keep" in lines["shipping_address.street"]
        and 'sees["user.contact.address.delivery"]' in (lines["shipping_address.street"])
    )
    assert "drop" in lines["payment.card.number"] and "default deny" in lines["payment.card.number"]
    assert (
        main(
            [
                "policy",
                "explain",
                str(demo_policy_path()),
                "--recipient",
                "logistics",
                "--route",
                "GET /nowhere",
            ]
        )
        == 2  # usage: no such route
    )


def test_policy_check_reports_selectors_that_match_nothing_in_an_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = tmp_path / "orders.json"
    example.write_text('{"orders": [{"customer_id": "c1", "shipping_address": {"street": "x", "city": "y"}}]}')
    assert main(["policy", "check", str(demo_policy_path()), "--example", f"GET /orders={example}"]) == 1
    out = capsys.readouterr().out
    assert "'customer.email' matches nothing" in out
    assert "'shipping_address.street'" not in out

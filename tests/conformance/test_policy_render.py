"""`policy render`: the disclosure generated from the enforced policy, in Markdown and HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy_middleware.cli import main
from privacy_middleware.policy.load import load_policy, parse_policy
from privacy_middleware.policy.render import LEGAL_BASES, render
from privacy_middleware.policy.schema import Policy
from support.conformance import SEEDS, policy_path

HOSTILE = """
[policy]
name = "<script>alert('name')</script> & Sons | \\"Tea\\""
version = "2"
effective_date = 2026-05-01
controller = "[click](javascript:alert(1)) **bold**"
previous_versions = [{ version = "1", effective_date = 2025-01-01, summary = "First <b>notice</b>" }]

[categories]
"user.name" = { description = "Name <img src=x onerror=alert(1)>" }
"user.government_id" = { description = "ID | numbers", forbidden = true }

[purposes.delivery]
description = "Deliver\\nparcels | fast"
legal_basis = "contract"

[purposes.ads]
description = "- looks like a list"
legal_basis = "consent"
consent = "opt_in"
cookie_class = "advertising"

[recipients.logistics]
description = "Carrier & Co <LLC>"
purposes = ["delivery"]
sees = { "user.name" = "mask:full" }

[[tracking.cookies]]
pattern = "<ad>*"
purpose = "ads"
"""


class TextCollector(HTMLParser):
    """Collects text and element names, as a browser would see the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> TextCollector:
    collector = TextCollector()
    collector.feed(page)
    collector.close()
    return collector


def hostile() -> Policy:
    return parse_policy(HOSTILE)


@pytest.mark.parametrize("seed", SEEDS)
def test_markdown_disclosure_states_what_the_policy_enforces(seed: str) -> None:
    policy = load_policy(policy_path(seed))
    text = render(policy, "md")
    plain = text.replace("\\", "")
    assert f"Version {policy.policy.version}, effective {policy.policy.effective_date.isoformat()}" in plain
    for name, purpose in policy.purposes.items():
        assert re.search(rf"\| {re.escape(name)} \|.*\| {LEGAL_BASES[purpose.legal_basis]} \|", plain), name
    for name in policy.recipients:
        assert f"| {name} |" in plain
    for rule in policy.retention:
        assert f"| {rule.category} | {rule.days} days |" in plain
    for cookie in policy.tracking.cookies:
        assert cookie.pattern in plain
    for path in (
        "GET /privacy/me/export",
        "POST /privacy/me/erasure",
        "POST /privacy/me/rectification",
        "POST /privacy/me/restriction",
        "POST /privacy/me/objection",
        "GET, PUT, DELETE /privacy/consent",
        "GET /privacy/me/access-log",
        "GET /privacy/policy",
    ):
        assert path in plain
    assert f"within {policy.rights.deadline_days} " in plain


def test_markdown_disclosure_of_seed_001_names_ten_working_days_and_minimum_age() -> None:
    text = render(load_policy(policy_path("001_58e955c94cff9ce2")), "md")
    assert "within 10 working days" in text
    assert "at least 18 years old" in text
    assert "| logistics | Logistics and delivery company | delivery |" in text


def test_markdown_disclosure_groups_cookies_by_class() -> None:
    text = render(load_policy(policy_path("003_f688c41ce3130c59")), "md")
    rows = [
        line
        for line in text.splitlines()
        if line.startswith(("| Essential", "| Analytics", "| Functional", "| Advertising"))
    ]
    assert [row.split(" | ")[0] for row in rows] == [
        "| Essential",
        "| Functional",
        "| Analytics / performance",
        "| Advertising / marketing",
    ]


def test_markdown_escapes_policy_text() -> None:
    text = render(hostile(), "md")
    assert "<script>" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script&gt;" in text
    assert "[click](javascript" not in text and "\\[click\\]" in text
    assert "**bold**" not in text
    # A pipe in a description stays inside its cell: every table row has as many cells as its header.
    for block in re.findall(r"(\|.*\|\n\|(?:---\|)+\n(?:\|.*\|\n)*)", text):
        lines = block.strip().splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, lines
    assert "\\- looks like a list" in text


def test_html_escapes_policy_text_and_keeps_it_readable() -> None:
    page = render(hostile(), "html")
    assert "<script>" not in page and "<img" not in page and "<b>" not in page and "<ad>" not in page
    document = parsed(page)
    assert set(document.tags) <= {
        "html",
        "head",
        "meta",
        "title",
        "body",
        "h1",
        "h2",
        "section",
        "p",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "ul",
        "li",
    }
    assert document.attributes == [("lang", "en"), ("charset", "utf-8")]
    text = "".join(document.text)
    assert "<script>alert('name')</script> & Sons | \"Tea\"" in text
    assert "Name <img src=x onerror=alert(1)>" in text
    assert "Carrier & Co <LLC>" in text and "<ad>*" in text
    assert "First <b>notice</b>" in text


def test_html_lists_version_history_and_forbidden_data() -> None:
    text = "".join(parsed(render(hostile(), "html")).text)
    assert "Version history" in text
    assert "2026-05-01" in text and "2025-01-01" in text
    assert "Data we never collect" in text and "user.government_id: ID | numbers" in text
    assert "user.name: fully masked" in text


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=60))
def test_any_description_comes_back_verbatim_from_the_html(description: str) -> None:
    policy = hostile().model_copy(deep=True)
    category = policy.categories["user.name"].model_copy(update={"description": description})
    policy = policy.model_copy(update={"categories": {**policy.categories, "user.name": category}})
    document = parsed(render(policy, "html"))
    assert description in "".join(document.text)
    assert document.tags.count("script") == 0 and document.tags.count("img") == 0


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=60))
def test_no_description_can_add_markdown_cells_or_html(description: str) -> None:
    policy = hostile()
    category = policy.categories["user.name"].model_copy(update={"description": description})
    policy = policy.model_copy(update={"categories": {**policy.categories, "user.name": category}})
    text = render(policy, "md")
    [row] = [line for line in text.splitlines() if line.startswith("| user.name |")]
    assert len(re.findall(r"(?<!\\)\|", row.replace("\\\\", ""))) == 4
    assert "<" not in row and ">" not in row


def test_cli_renders_both_formats(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(policy_path("003_f688c41ce3130c59"))
    assert main(["policy", "render", path]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("# Seed 003 platform: privacy notice")
    assert main(["policy", "render", path, "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!DOCTYPE html>") and "<h2>Who receives it</h2>" in page


def test_cli_render_reports_an_invalid_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(HOSTILE.replace('legal_basis = "contract"', 'legal_basis = "because"'))
    assert main(["policy", "render", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "purposes.delivery.legal_basis" in captured.err


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(hostile(), "pdf")  # type: ignore[arg-type]


def test_consent_as_legal_basis_renders_as_opt_in_even_without_a_mechanism() -> None:
    policy = parse_policy(HOSTILE.replace('consent = "opt_in"\n', ""))
    assert policy.purposes["ads"].consent == "none"
    text = "".join(parsed(render(policy, "html")).text)
    assert "- looks like a listyour consentonly after you opt in" in text
    assert "<ad>*adsonly after you opt in" in text

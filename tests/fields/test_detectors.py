"""The free-text detectors' shortcut: text without a digit skips the detectors that need one."""

from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.fields.detectors import DETECTORS, detect

KINDS = st.lists(st.sampled_from(sorted(DETECTORS)), max_size=6)
TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "Please ring twice.",
            "card 4242-4242-4242-4242 inside",
            "SSN 078-05-1120",
            "IBAN GB82 WEST 1234 5698 7654 32",
            "write to ada@example.com",
            "call +44 20 7946 0018",
            "\uff14\uff12" * 8,
        ]
    ),
)


@given(TEXTS, KINDS)
def test_detect_finds_what_every_detector_finds(text: str, kinds: list[str]) -> None:
    found = sorted((finding for kind in kinds for finding in DETECTORS[kind](text)), key=lambda f: f.start)
    assert detect(text, kinds) == found


def test_text_without_a_digit_holds_only_e_mail_findings() -> None:
    assert detect("Please ring twice.", ["card_number", "us_ssn", "iban"]) == []
    assert [f.kind for f in detect("ada@example.com", ["card_number", "email"])] == ["email"]

import base64
import contextlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

from privacy_middleware.audit import login_attempt
from privacy_middleware.audit.checkpoint import (
    CheckpointFormatError,
    key_hash,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from privacy_middleware.audit.sealing import SealedEvent, SideRecordSealer

KEY = Ed25519PrivateKey.generate()
WHEN = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)


def test_key_hint_matches_the_signed_note_reference_example() -> None:
    # golang.org/x/mod/sumdb/note documents the verifier key
    # PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW
    raw = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    assert raw[0] == 1
    assert key_hash("PeterNeumann", Ed25519PublicKey.from_public_bytes(raw[1:])).hex() == "c74f20a3"


def test_checkpoint_text_is_a_c2sp_note_that_round_trips() -> None:
    checkpoint = sign_checkpoint(KEY, "shop.example/audit", 42, b"\x07" * 32, WHEN)
    lines = checkpoint.note.split("\n")
    assert lines[:4] == [
        "shop.example/audit",
        "42",
        base64.b64encode(b"\x07" * 32).decode(),
        "time 2026-05-04T03:02:01.123456Z",
    ]
    assert lines[4] == "" and lines[5].startswith("\u2014 shop.example/audit ")
    verified = verify_checkpoint(checkpoint.note, [KEY.public_key()])
    assert verified is not None and (verified.size, verified.root, verified.time) == (42, b"\x07" * 32, WHEN)
    assert verify_checkpoint(checkpoint.note, [Ed25519PrivateKey.generate().public_key()]) is None


def test_origin_must_be_one_word() -> None:
    with pytest.raises(ValueError):
        sign_checkpoint(KEY, "two words", 1, b"\x00" * 32, WHEN)


@given(st.text(max_size=300))
def test_arbitrary_text_is_rejected_cleanly(text: str) -> None:
    with contextlib.suppress(CheckpointFormatError):  # anything else escaping is a failure
        parse_checkpoint(text)


@given(st.data())
def test_any_edit_to_a_signed_checkpoint_stops_it_verifying(data: st.DataObject) -> None:
    note = sign_checkpoint(KEY, "shop.example/audit", 1000, b"\x11" * 32, WHEN).note
    position = data.draw(st.integers(min_value=0, max_value=len(note) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != note[position]))
    edited = note[:position] + replacement + note[position + 1 :]
    with contextlib.suppress(CheckpointFormatError):
        assert verify_checkpoint(edited, [KEY.public_key()]) is None


@given(
    st.booleans(),
    st.one_of(st.none(), st.ip_addresses().map(str)),
    st.one_of(st.none(), st.text(min_size=1, max_size=40)),
)
def test_sealed_events_survive_the_spool_format(success: bool, ip: str | None, username: str | None) -> None:
    sealer = SideRecordSealer(b"\x01" * 32)
    sealed = sealer.seal(login_attempt(success=success, subject="c1", ip=ip, username=username))
    restored = SealedEvent.from_json(sealed.to_json())
    assert restored == sealed
    if restored.side is not None:
        values = sealer.open(restored.side)
        assert values == {k: v for k, v in {"ip": ip, "username": username}.items() if v}


@pytest.mark.parametrize(
    "record",
    [None, [], {}, {"doc": {}}, {"doc": {"uid": "u"}}, {"doc": 5}],
)
def test_spool_records_that_are_not_ours_are_refused(record: object) -> None:
    with pytest.raises(ValueError):
        SealedEvent.from_json(record)


def test_a_second_spelling_of_the_same_signature_is_refused() -> None:
    note = sign_checkpoint(KEY, "shop.example/audit", 7, b"\x11" * 32, WHEN).note
    body, sigline = note.rstrip("\n").rsplit("\n", 1)
    blob = sigline.rsplit(" ", 1)[1]
    assert blob.endswith("=") and not blob.endswith("==")
    # the character before '=' carries two unused bits: flip one, the bytes stay the same
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = blob[:-2] + alphabet[alphabet.index(blob[-2]) ^ 1] + "="
    assert base64.b64decode(twin) == base64.b64decode(blob)
    with pytest.raises(CheckpointFormatError, match="canonical"):
        verify_checkpoint(body + "\n" + sigline.replace(blob, twin) + "\n", [KEY.public_key()])


def test_spool_records_the_store_would_refuse_are_refused_up_front() -> None:
    sealed = SideRecordSealer(b"\x01" * 32).seal(login_attempt(success=True, subject="c1", ip="192.0.2.1"))
    good = sealed.to_json()
    for key, value in [("kind", "k" * 81), ("subject", "s" * 201), ("time_us", "now"), ("uid", "u" * 37)]:
        with pytest.raises(ValueError):
            SealedEvent.from_json({**good, "doc": {**good["doc"], key: value}})
    with pytest.raises(ValueError):
        SealedEvent.from_json({**good, "side": {**good["side"], "ref": "x" * 200}})


def test_event_kinds_fit_their_column() -> None:
    from privacy_middleware.audit import detection_finding

    with pytest.raises(ValueError):
        detection_finding("x" * 70, title="too long a finding name")

from datetime import UTC, datetime

from privacy_middleware.crypto.providers.sigv4 import Credentials, sign, signature, signing_key

EXAMPLE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def test_signing_key_matches_aws_published_example() -> None:
    key = signing_key(EXAMPLE.secret_key, "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_signature_matches_aws_iam_list_users_example() -> None:
    sig = signature(
        credentials=EXAMPLE,
        method="GET",
        path="/",
        query="Action=ListUsers&Version=2010-05-08",
        headers={
            "Host": "iam.amazonaws.com",
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Amz-Date": "20150830T123600Z",
        },
        payload=b"",
        region="us-east-1",
        service="iam",
        amz_date="20150830T123600Z",
    )
    assert sig == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"


def test_signature_matches_aws_test_suite_query_order_case() -> None:
    sig = signature(
        credentials=EXAMPLE,
        method="GET",
        path="/",
        query="Param2=value2&Param1=value1",
        headers={"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"},
        payload=b"",
        region="us-east-1",
        service="service",
        amz_date="20150830T123600Z",
    )
    assert sig == "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"


def test_sign_builds_the_authorization_header_and_token() -> None:
    creds = Credentials("AKIDEXAMPLE", EXAMPLE.secret_key, "session-token")
    headers = sign(
        credentials=creds,
        method="POST",
        host="kms.eu-west-1.amazonaws.com",
        path="/",
        query="",
        headers={"X-Amz-Target": "TrentService.Encrypt"},
        payload=b"{}",
        region="eu-west-1",
        service="kms",
        now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert headers["X-Amz-Date"] == "20260102T030405Z"
    assert headers["X-Amz-Security-Token"] == "session-token"
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/eu-west-1/kms/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token;x-amz-target, Signature="
    )
    assert EXAMPLE.secret_key not in repr(creds)

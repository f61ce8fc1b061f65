from __future__ import annotations

import pytest

from schemas.links import InvalidToken, assignment_token, sign, unsubscribe_token, verify


def test_an_assignment_token_verifies_and_carries_its_claims():
    token = assignment_token("s3cret", assignment_id="as-1", lead_id="ld-1", rep_id="rep-ana")
    claims = verify("s3cret", token, "assignment")
    assert (claims["aid"], claims["lid"], claims["rid"]) == ("as-1", "ld-1", "rep-ana")


def test_a_token_signed_with_another_secret_is_forged():
    token = assignment_token("other", assignment_id="as-1", lead_id="ld-1", rep_id="r")
    with pytest.raises(InvalidToken, match="bad signature"):
        verify("s3cret", token, "assignment")


def test_an_expired_token_is_refused():
    token = sign("s3cret", "assignment", {"aid": "a"}, ttl_s=10, now=1_000)
    with pytest.raises(InvalidToken, match="expired"):
        verify("s3cret", token, "assignment", now=2_000)


def test_a_token_of_another_kind_is_refused():
    token = unsubscribe_token("s3cret", lead_id="ld", channel="email", address="a@b.co")
    with pytest.raises(InvalidToken, match="not a assignment token"):
        verify("s3cret", token, "assignment")


@pytest.mark.parametrize("junk", ["", "abc", "a.b", "!!!.???"])
def test_garbage_is_malformed_or_forged(junk: str):
    with pytest.raises(InvalidToken):
        verify("s3cret", junk, "assignment")

"""Routes marked as small answers skip compression: their answers must stay below its minimum size."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from query_api.answers import SMALL_ANSWER_MAX_BYTES
from query_api.ledger.accounts import JSON, AccountAnswer

# The command API's limits: an account name has at most 100 characters, amounts fit 64 bits.
_LONGEST_NAME = 100
_WIDEST_CHARACTER = "\x00"  # escaped as \u0000 in JSON: six bytes for one character


def test_the_largest_account_answer_is_a_small_answer() -> None:
    moment = datetime(2026, 11, 24, 23, 59, 59, 999_999, tzinfo=UTC)
    largest = AccountAnswer(
        account_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        name=_WIDEST_CHARACTER * _LONGEST_NAME,
        currency="EUR",
        balance=-(2**63),
        status="closed",
        version=2**63 - 1,
        opened_at=moment,
        updated_at=moment,
    )
    assert len(JSON.encode(largest)) < SMALL_ANSWER_MAX_BYTES

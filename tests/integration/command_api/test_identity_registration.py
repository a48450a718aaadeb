"""POST /v1/auth/register: one user per email address however it is spelled, and no secret in the store."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from shared.consistency import decode_token
from tests.integration.command_api.conftest import PASSWORD, CommandClient, assert_problem, table_counts
from tests.integration.command_api.identity_helpers import assert_no_secret_stored, login_response

WEAK_PASSWORD = "password1234"  # noqa: S105 - long enough, but among the most guessed
OTHER_PASSWORD = "an entirely different passphrase 7"  # noqa: S105 - a test password


def _body(email: str, password: str = PASSWORD, display_name: str = "Zoë") -> dict[str, str]:
    return {"email": email, "password": password, "display_name": display_name}


async def test_registration_answers_201_with_the_user_version_and_token(
    client: CommandClient, db: asyncpg.Connection
) -> None:
    """A registration is a 201 with user_id, version 1 and a consistency token naming the new stream;
    it stores one UserRegistered event (normalised email), the reservation and an argon2id hash."""
    response = await client.post("/v1/auth/register", json=_body("Ada.Lovelace@Example.COM"))

    assert response.status_code == 201, response.text
    body = response.json()
    user_id = uuid.UUID(body["user_id"])
    assert body["version"] == 1
    assert response.headers["consistency-token"] == body["consistency_token"]
    assert decode_token(body["consistency_token"]) == {user_id: 1}
    events = await db.fetch("SELECT event_type, data::text AS data FROM events WHERE stream_id = $1", user_id)
    assert [row["event_type"] for row in events] == ["UserRegistered"]
    assert json.loads(events[0]["data"]) == {
        "user_id": str(user_id),
        "email": "ada.lovelace@example.com",
        "display_name": "Zoë",
    }
    assert (
        await db.fetchval(
            "SELECT user_id FROM email_reservations WHERE email_key = $1", "ada.lovelace@example.com"
        )
        == user_id
    )
    stored_hash = await db.fetchval("SELECT password_hash FROM user_credentials WHERE user_id = $1", user_id)
    assert stored_hash.startswith("$argon2id$")


async def test_a_weak_password_is_422_naming_password_and_writes_nothing(
    client: CommandClient, db: asyncpg.Connection
) -> None:
    """A guessable password (long enough, but a common phrase) is a 422 weak-password problem whose
    errors name the field `password`; no event, reservation or credential is written."""
    before = await table_counts(db)

    response = await client.post("/v1/auth/register", json=_body("weak@example.com", password=WEAK_PASSWORD))

    problem = assert_problem(response, 422, "/problems/weak-password")
    assert [error["field"] for error in problem["errors"]] == ["password"]
    assert await table_counts(db) == before
    assert await db.fetchval("SELECT count(*) FROM email_reservations") == 0


async def test_registering_a_taken_email_again_is_409_and_writes_nothing(
    client: CommandClient, db: asyncpg.Connection
) -> None:
    """The second registration of one address (other password, other name) is a 409 email-taken
    problem; the store is as the first left it, and the first password still logs in."""
    first = await client.post("/v1/auth/register", json=_body("taken@example.com"))
    assert first.status_code == 201, first.text
    before = await table_counts(db)

    second = await client.post(
        "/v1/auth/register",
        json=_body("taken@example.com", password=OTHER_PASSWORD, display_name="Eve"),
    )

    assert_problem(second, 409, "/problems/email-taken")
    assert await table_counts(db) == before
    assert (await login_response(client, "taken@example.com")).status_code == 200


# One address spelled five ways: case, Unicode composition and compatibility (fullwidth) forms.
SPELLINGS = (
    "Zoë@Example.com",
    "ZOË@EXAMPLE.COM",
    "zoe\u0308@example.com",  # NFD: e + combining diaeresis
    "ＺＯË@ｅｘａｍｐｌｅ.ｃｏｍ",  # fullwidth letters  # noqa: RUF001 - on purpose
    "zoë@example.com",
)


async def test_concurrent_registrations_of_one_address_spelled_differently_register_once(
    client: CommandClient, db: asyncpg.Connection
) -> None:
    """Five registrations of one address in other case and Unicode forms, sent at once: exactly one 201,
    the others 409 email-taken; one reservation, one credential, one UserRegistered event."""
    responses = await asyncio.gather(
        *(client.post("/v1/auth/register", json=_body(email)) for email in SPELLINGS)
    )

    assert client.in_flight.peak > 1, "the registrations did not overlap"
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409, 409, 409, 409], [response.text for response in responses]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "/problems/email-taken")
    winner = next(uuid.UUID(r.json()["user_id"]) for r in responses if r.status_code == 201)
    reservations = await db.fetch("SELECT email_key, user_id FROM email_reservations")
    assert [(row["email_key"], row["user_id"]) for row in reservations] == [("zoë@example.com", winner)]
    assert await db.fetchval("SELECT count(*) FROM user_credentials") == 1
    assert await db.fetchval("SELECT count(*) FROM events WHERE event_type = 'UserRegistered'") == 1
    assert await db.fetchval("SELECT count(*) FROM aggregate_states") == 1
    # Any spelling logs the one user in.
    login = await login_response(client, "ＺＯＥ\u0308@EXAMPLE.com")  # noqa: RUF001 - on purpose
    assert login.status_code == 200, login.text


async def test_case_variants_that_fold_to_equivalent_sequences_collide(client: CommandClient) -> None:
    """Capital iota with dialytika and tonos (decomposed) and the small precomposed letter are one
    address case-insensitively; the second registration must be refused as taken."""
    first = await client.post("/v1/auth/register", json=_body("\u0390@example.com"))
    assert first.status_code == 201, first.text

    second = await client.post("/v1/auth/register", json=_body("\u03aa\u0301@example.com"))

    assert_problem(second, 409, "/problems/email-taken")


async def test_no_secret_is_stored_in_events_states_or_idempotency_records(
    client: CommandClient, db: asyncpg.Connection
) -> None:
    """A registration with an Idempotency-Key keeps neither the password nor its hash in any event
    (data or metadata), state row, idempotency record or other table but user_credentials; the
    keyed retry replays the same user id."""
    password = "unique-secret " + uuid.uuid4().hex
    headers = {"Idempotency-Key": "register-1"}
    body = _body("secretive@example.com", password=password)

    response = await client.post("/v1/auth/register", json=body, headers=headers)
    replay = await client.post("/v1/auth/register", json=body, headers=headers)

    assert response.status_code == 201, response.text
    assert replay.status_code == 201, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["user_id"] == response.json()["user_id"]
    assert await db.fetchval("SELECT count(*) FROM idempotency_records") == 1
    stored_hash = await db.fetchval("SELECT password_hash FROM user_credentials")
    # The hash without its parameter prefix: its salt and digest parts are secrets too.
    salt_and_digest = stored_hash.rsplit("$", 2)[1:]
    await assert_no_secret_stored(db, password, stored_hash, *salt_and_digest)


async def test_a_registration_retry_is_recognised_without_its_password(
    client: CommandClient, db: asyncpg.Connection
) -> None:
    """The Idempotency-Key fingerprint of a registration leaves the password out (no fast hash of it is
    kept): a retry with the same email and name replays, another email under the key is 422."""
    key = {"Idempotency-Key": "register-once"}
    first = await client.post("/v1/auth/register", json=_body("kim@example.com"), headers=key)
    other_password = "another long passphrase 9"  # noqa: S105 - a test user's password
    retry = await client.post(
        "/v1/auth/register", json=_body("kim@example.com", password=other_password), headers=key
    )
    other = await client.post("/v1/auth/register", json=_body("lee@example.com"), headers=key)

    assert first.status_code == 201, first.text
    assert retry.status_code == 201, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["user_id"] == first.json()["user_id"]
    assert_problem(other, 422, "/problems/idempotency-key-reused")
    assert await db.fetchval("SELECT count(*) FROM email_reservations") == 1
    assert (await login_response(client, "kim@example.com")).status_code == 200

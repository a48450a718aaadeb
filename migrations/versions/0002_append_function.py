"""aggregate state rows and the one-round-trip append function

Revision ID: 0002_append_function
Revises: 0001_foundation
Create Date: 2026-11-24 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_append_function"
down_revision: str | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One call appends a command's whole effect in one statement, hence one
# transaction and one round trip: the idempotency record, the state row of
# each stream (guarded by its expected version), the events and their outbox
# rows, and a NOTIFY for the relay. Any conflict raises, so nothing of a
# losing command remains:
#   CQ001: the idempotency key is taken (by a finished or a racing request)
#   CQ002: a stream is not at the expected version
APPEND_FUNCTION = """
CREATE FUNCTION cqrs_append(
    p_principal text,
    p_key text,
    p_fingerprint bytea,
    p_expires_at timestamptz,
    p_status smallint,
    p_headers jsonb,
    p_body bytea,
    p_stream_ids uuid[],
    p_stream_types text[],
    p_expected_versions int[],
    p_new_versions int[],
    p_states jsonb[],
    p_event_ids uuid[],
    p_event_stream_ids uuid[],
    p_event_stream_types text[],
    p_event_versions int[],
    p_event_types text[],
    p_schema_versions smallint[],
    p_data jsonb[],
    p_metadata jsonb[]
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    i int;
    positions bigint[];
BEGIN
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_records AS r (
            principal, idempotency_key, request_fingerprint, state,
            response_status, response_headers, response_body, expires_at
        ) VALUES (
            p_principal, p_key, p_fingerprint, 'completed', p_status, p_headers, p_body, p_expires_at
        )
        ON CONFLICT (principal, idempotency_key) DO UPDATE SET
            request_fingerprint = EXCLUDED.request_fingerprint,
            state = EXCLUDED.state,
            response_status = EXCLUDED.response_status,
            response_headers = EXCLUDED.response_headers,
            response_body = EXCLUDED.response_body,
            created_at = now(),
            expires_at = EXCLUDED.expires_at
        WHERE r.expires_at <= now();
        IF NOT FOUND THEN
            RAISE EXCEPTION 'idempotency key taken' USING ERRCODE = 'CQ001';
        END IF;
    END IF;

    FOR i IN 1 .. coalesce(array_length(p_stream_ids, 1), 0) LOOP
        IF p_expected_versions[i] = 0 THEN
            INSERT INTO aggregate_states (stream_id, stream_type, version, state)
            VALUES (p_stream_ids[i], p_stream_types[i], p_new_versions[i], p_states[i])
            ON CONFLICT (stream_id) DO NOTHING;
        ELSE
            UPDATE aggregate_states
               SET version = p_new_versions[i], state = p_states[i], updated_at = now()
             WHERE stream_id = p_stream_ids[i] AND version = p_expected_versions[i];
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream % is not at version %', p_stream_ids[i], p_expected_versions[i]
                USING ERRCODE = 'CQ002';
        END IF;
    END LOOP;

    WITH inserted AS (
        INSERT INTO events (
            event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata
        )
        SELECT * FROM unnest(
            p_event_ids, p_event_stream_ids, p_event_stream_types, p_event_versions,
            p_event_types, p_schema_versions, p_data, p_metadata
        )
        RETURNING global_position
    ), queued AS (
        INSERT INTO outbox (global_position) SELECT global_position FROM inserted
        RETURNING global_position
    )
    SELECT array_agg(global_position ORDER BY global_position) INTO positions FROM queued;

    IF positions IS NOT NULL THEN
        PERFORM pg_notify('cqrs_outbox', '');
    END IF;
    RETURN coalesce(positions, '{}'::bigint[]);
END;
$$;
"""


def upgrade() -> None:
    op.create_table(
        "aggregate_states",
        sa.Column("stream_id", sa.UUID(), nullable=False),
        sa.Column("stream_type", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_aggregate_states")),
    )
    op.execute(APPEND_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS cqrs_append")
    op.drop_table("aggregate_states")

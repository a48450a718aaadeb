"""`cqrs limits show | reset PRINCIPAL`: the configured rate limits and one subject's state in Redis.

PRINCIPAL is what the limits are kept by: `user:<id>`, `key:<api key id>` or
`ip:<address>` (a bare user id or address works too). Tiers are not stored
anywhere but in tokens, so `--tier` says which tier's policies to show.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

import click

from operator_cli.settings_option import settings_or_exit
from operator_cli.tables import echo_table
from shared.infrastructure.redis import create_redis
from shared.ratelimit.buckets import BucketAnswer, RedisBuckets, bucket_keys
from shared.ratelimit.policies import ANONYMOUS, DEFAULT_TIER, Policy, RouteClass
from shared.ratelimit.setup import abuse_of, limits_of
from shared.settings import HttpApiSettings

ROUTE_CLASSES: tuple[RouteClass, ...] = ("queries", "commands", "auth")


@click.group("limits")
def limits() -> None:
    """Rate limits: the policies in force and a principal's buckets."""


def subject_of(principal: str) -> str:
    """The limiter's subject for what an operator typed."""
    kind, _, value = principal.partition(":")
    if kind in ("user", "key") and value:
        return f"{kind}:{uuid.UUID(value)}"
    if kind == "ip" and value:
        return f"ip:{ipaddress.ip_address(value)}"
    try:
        return f"user:{uuid.UUID(principal)}"
    except ValueError:
        pass
    try:
        return f"ip:{ipaddress.ip_address(principal)}"
    except ValueError:
        raise click.BadParameter(
            "expected user:<id>, key:<api key id> or ip:<address>", param_hint="PRINCIPAL"
        ) from None


def applicable(settings: HttpApiSettings, subject: str, tier: str) -> list[tuple[RouteClass, str, Policy]]:
    """The route classes and policies that count this subject's requests."""
    found: list[tuple[RouteClass, str, Policy]] = []
    for route_class in ROUTE_CLASSES:
        class_limits = limits_of(settings, route_class)
        if subject.startswith("ip:"):
            if class_limits.anonymous is not None:
                found.append((route_class, ANONYMOUS, class_limits.anonymous))
            continue
        chosen = class_limits.for_tier(tier)
        if chosen is not None:
            found.append((route_class, *chosen))
    return found


def _policy_text(policy: Policy) -> str:
    text = f"{policy.algorithm} {policy.quota}/{policy.window_seconds:g}s"
    return text + (f" burst {policy.effective_burst}" if policy.algorithm == "gcra" else "")


@limits.command("show")
@click.argument("principal")
@click.option("--tier", default=DEFAULT_TIER, show_default=True, help="The tier whose policies apply.")
def show(principal: str, tier: str) -> None:
    """The policies in force, then PRINCIPAL's state in each of its buckets."""
    settings = settings_or_exit(HttpApiSettings)
    subject = subject_of(principal)
    if not settings.rate_limits_enabled:
        click.echo("rate limits are off (CQRS_RATE_LIMITS_ENABLED=false)")
        return
    policies: list[tuple[str, ...]] = [("route class", "tier", "policy", "without Redis")]
    for route_class in ROUTE_CLASSES:
        class_limits = limits_of(settings, route_class)
        named = [*class_limits.tiers.items()]
        if class_limits.anonymous is not None:
            named.append((ANONYMOUS, class_limits.anonymous))
        policies += [
            (route_class, name, _policy_text(policy), class_limits.on_redis_failure) for name, policy in named
        ]
    echo_table(policies)
    click.echo("")
    found = applicable(settings, subject, tier)
    states = asyncio.run(_peek(settings, subject, found))
    rows: list[tuple[str, ...]] = [("route class", "policy", "remaining", "full again in", "blocked for")]
    for (route_class, name, policy), state in zip(found, states, strict=True):
        rows.append(
            (
                route_class,
                f'"{name}" {policy.quota}/{policy.window_seconds:g}s',
                str(state.remaining),
                f"{state.reset_seconds:.1f} s",
                f"{state.blocked_seconds:.0f} s" if state.blocked_seconds else "-",
            )
        )
    click.echo(f"{subject} (tier {tier}):" if not subject.startswith("ip:") else f"{subject}:")
    echo_table(rows)
    click.echo("(tokens leased to API processes and not yet spent count as used)")


@limits.command("reset")
@click.argument("principal")
def reset(principal: str) -> None:
    """Forget PRINCIPAL's buckets, refusals and block: its next requests start with full quotas."""
    settings = settings_or_exit(HttpApiSettings)
    subject = subject_of(principal)
    removed = asyncio.run(_reset(settings, subject))
    click.echo(f"{subject}: {removed} key(s) removed")


async def _peek(
    settings: HttpApiSettings, subject: str, found: list[tuple[RouteClass, str, Policy]]
) -> list[BucketAnswer]:
    redis = create_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    try:
        buckets = RedisBuckets(redis, key_prefix=settings.redis_key_prefix, abuse=abuse_of(settings))
        return [await buckets.take(subject, route_class, policy, want=0) for route_class, _, policy in found]
    finally:
        await redis.aclose()


async def _reset(settings: HttpApiSettings, subject: str) -> int:
    keys = {
        key
        for route_class in ROUTE_CLASSES
        for algorithm in ("token_bucket", "gcra")
        for key in bucket_keys(
            settings.redis_key_prefix, subject, route_class, Policy(algorithm=algorithm, quota=1)
        )
    }
    redis = create_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    try:
        return int(await redis.delete(*sorted(keys)))
    finally:
        await redis.aclose()

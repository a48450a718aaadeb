"""Static checks on the deployment files: no Docker needed, so they run everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

INFRA_SERVICES = {"postgres", "nats", "redis"}
ONE_SHOT_SERVICES = {"migrate"}
# The projector service joins with `cqrs projector run` (the projections issue).
APP_SERVICES = {"migrate", "command-api", "query-api", "relay", "projector"}
REQUIRED_SERVICES = INFRA_SERVICES | APP_SERVICES


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        document = yaml.safe_load(fh)
    result: dict[str, dict[str, Any]] = document["services"]
    return result


def _long_running(services: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(set(services) - ONE_SHOT_SERVICES)


def _container_ports(service: dict[str, Any]) -> set[int]:
    # Short syntax is "[ip:][host:]container[/proto]"; long syntax is a mapping.
    ports: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def _environment(service: dict[str, Any]) -> dict[str, str]:
    # Compose accepts both a mapping and a list of KEY=VALUE strings.
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    if isinstance(command, list):
        # `sh -c "..."` wraps the real command line in its last argument.
        if command[:2] == ["sh", "-c"]:
            return str(command[2])
        return " ".join(str(part) for part in command)
    return str(command)


def test_compose_has_no_obsolete_version_key() -> None:
    """The compose file follows the Compose Specification, which has no top-level version key."""
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert "version" not in document


def test_every_required_service_exists(services: dict[str, dict[str, Any]]) -> None:
    """Compose defines the infrastructure and every application process."""
    assert set(services) >= REQUIRED_SERVICES, REQUIRED_SERVICES - set(services)


def test_every_service_has_image_or_build(services: dict[str, dict[str, Any]]) -> None:
    """Every service says where its container image comes from."""
    missing = [name for name, svc in services.items() if "image" not in svc and "build" not in svc]
    assert missing == []


def test_long_running_services_have_healthchecks(
    services: dict[str, dict[str, Any]],
) -> None:
    """Every long-running service has a healthcheck with a test command."""
    missing = [
        name for name in _long_running(services) if not services[name].get("healthcheck", {}).get("test")
    ]
    assert missing == []


def test_long_running_services_restart(services: dict[str, dict[str, Any]]) -> None:
    """Every long-running service is restarted by Docker after a crash."""
    policies = {name: services[name].get("restart") for name in _long_running(services)}
    wrong = {
        name: policy
        for name, policy in policies.items()
        if policy not in {"always", "unless-stopped", "on-failure"}
    }
    assert wrong == {}


def test_migrate_is_one_shot(services: dict[str, dict[str, Any]]) -> None:
    """The migrate job runs once and is not restarted, so a failed migration halts the rollout."""
    # An unquoted `no` would load as False, which Compose rejects.
    assert services["migrate"]["restart"] == "no"


def test_services_wait_for_migrations(services: dict[str, dict[str, Any]]) -> None:
    """Long-running app services start only after migrate has completed successfully."""
    for name in sorted(APP_SERVICES - ONE_SHOT_SERVICES):
        depends_on = services[name].get("depends_on", {})
        assert isinstance(depends_on, dict), name
        assert depends_on.get("migrate", {}).get("condition") == "service_completed_successfully", name


def test_healthy_conditions_point_at_healthchecked_services(
    services: dict[str, dict[str, Any]],
) -> None:
    """Every service_healthy dependency targets a service that has a healthcheck, or startup would hang."""
    for name, svc in services.items():
        depends_on = svc.get("depends_on", {})
        if not isinstance(depends_on, dict):
            continue
        for target, spec in depends_on.items():
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}"


@pytest.mark.parametrize(("service", "port"), [("command-api", 8000), ("query-api", 8001)])
def test_api_publishes_its_port(services: dict[str, dict[str, Any]], service: str, port: int) -> None:
    """Each HTTP API publishes the port it listens on."""
    assert port in _container_ports(services[service])
    assert f"--port {port}" in _command_text(services[service])


def test_infrastructure_ports_bound_to_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    """Postgres, NATS and Redis are published on 127.0.0.1 only, never on every interface."""
    for name in sorted(INFRA_SERVICES):
        for entry in services[name].get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), f"{name}: {entry}"


def test_app_services_run_cqrs_commands(services: dict[str, dict[str, Any]]) -> None:
    """Every app service runs its own `cqrs ...` command, one process per container."""
    commands = {name: _command_text(services[name]) for name in sorted(APP_SERVICES)}
    for name, text in commands.items():
        assert text.startswith("cqrs "), f"{name}: {text!r}"
    assert len(set(commands.values())) == len(commands), commands


def test_app_services_use_prod_profile(services: dict[str, dict[str, Any]]) -> None:
    """App services run with CQRS_PROFILE=prod, never the embedded dev profile."""
    profiles = {name: _environment(services[name]).get("CQRS_PROFILE") for name in sorted(APP_SERVICES)}
    assert profiles == dict.fromkeys(sorted(APP_SERVICES), "prod")


def test_postgres_volume_uses_pg18_layout(services: dict[str, dict[str, Any]]) -> None:
    """The Postgres volume is mounted at /var/lib/postgresql, where the 18+ image requires it."""
    targets = [
        volume["target"] if isinstance(volume, dict) else str(volume).split(":")[1]
        for volume in services["postgres"].get("volumes", [])
    ]
    assert "/var/lib/postgresql" in targets


def test_dockerfile_is_multi_stage() -> None:
    """The Dockerfile builds in one stage and ships another, so build tooling stays out of the image."""
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    stages = [line for line in lines if line.upper().startswith("FROM ")]
    assert len(stages) >= 2


def test_dockerfile_final_stage_runs_as_non_root() -> None:
    """The final image stage switches to a user other than root."""
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    users = [line.split()[1] for line in lines[last_from:] if line.upper().startswith("USER ")]
    assert users, "no USER instruction in the final stage"
    # USER takes "name[:group]"; root can be spelled by name or by uid.
    assert users[-1].split(":")[0] not in {"root", "0"}

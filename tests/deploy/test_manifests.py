"""The deployment files: every Kubernetes manifest against the official schema (offline), compose.yaml's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type hints
import pytest
import yaml

from bot.policy.service import load_policy
from bot.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# A version kubernetes-validate ships a strict schema for: unknown fields are errors, not ignored.
KUBERNETES_VERSION = "1.30.0"
SETTINGS_VARIABLES = {str(field.validation_alias.choices[0]) for field in Settings.model_fields.values()}  # type: ignore[union-attr]  # every field sets one alias
REPLICAS = ("chaosbot-1", "chaosbot-2")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def resources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in documents(path):
            found[doc["kind"]] = doc
    return found


def bot_container() -> dict[str, Any]:
    container: dict[str, Any] = resources()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    return container


def test_every_kubernetes_manifest_is_valid_against_the_strict_schema() -> None:
    paths = sorted(KUBERNETES.glob("*.yaml"))
    assert len(paths) >= 6
    for path in paths:
        for doc in documents(path):
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{path.name}: {doc['kind']} is invalid: {exc.message} at {list(exc.path)}")


def test_the_strict_schema_refuses_a_misspelt_field() -> None:
    deployment = resources()["Deployment"]
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_deployment_runs_two_replicas_that_revert_gracefully_and_report_health() -> None:
    kinds = resources()
    spec = kinds["Deployment"]["spec"]
    assert spec["replicas"] == 2
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 60
    container = bot_container()
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    pdb = kinds["PodDisruptionBudget"]["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["selector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_secrets_come_from_the_secret_and_every_variable_is_a_real_setting() -> None:
    kinds = resources()
    secret_keys = set(kinds["Secret"]["stringData"])
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL"} <= secret_keys
    env = {item["name"]: item for item in bot_container()["env"]}
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL", "REDIS_URL"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "chaosbot-secrets", "key": name}
    assert set(env) <= SETTINGS_VARIABLES
    job = kinds["Job"]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["chaosbot", "db", "upgrade"]


def test_the_configmap_holds_a_policy_chaosbot_accepts(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(resources()["ConfigMap"]["data"]["policy.yml"], encoding="utf-8")
    assert "staging" in load_policy(policy).environments
    mount = bot_container()["volumeMounts"][0]["mountPath"]
    env = {item["name"]: item.get("value") for item in bot_container()["env"]}
    assert env["CHAOSBOT_POLICY"] == f"{mount}/policy.yml"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def test_compose_runs_the_shared_services_a_one_shot_migration_and_two_replicas() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", *REPLICAS}
    assert services["migrate"]["command"] == ["chaosbot", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in REPLICAS:
        replica = services[name]
        assert replica["command"] == ["chaosbot", "serve"]
        assert "/healthz" in " ".join(replica["healthcheck"]["test"])
        assert replica["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert replica["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert replica["stop_grace_period"] == "60s"
        assert replica["env_file"] == [".env"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]


def test_both_replicas_share_one_database_and_one_redis() -> None:
    services = compose()["services"]
    environments = [services[name]["environment"] for name in (*REPLICAS, "migrate")]
    assert len({env["DATABASE_URL"] for env in environments}) == 1
    assert len({services[name]["environment"]["REDIS_URL"] for name in REPLICAS}) == 1
    database_url = environments[0]["DATABASE_URL"]
    assert database_url.startswith("postgresql+psycopg://") and "@postgres:5432/" in database_url
    assert services[REPLICAS[0]]["environment"]["REDIS_URL"].startswith("redis://redis:6379/")
    assert len({services[name]["ports"][0].split(":")[0] for name in REPLICAS}) == 2
    assert set(services[REPLICAS[0]]["environment"]) <= SETTINGS_VARIABLES


def test_compose_keeps_secrets_out_of_the_file() -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert "xoxb-" not in text and "SLACK_SIGNING_SECRET" not in text
    assert "${POSTGRES_PASSWORD:?" in text
    example = (DEPLOY / ".env.example").read_text(encoding="utf-8")
    assert "SLACK_BOT_TOKEN=" in example and "SLACK_SIGNING_SECRET=" in example

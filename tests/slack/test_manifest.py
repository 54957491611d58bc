"""``app_manifest.yml``: valid against Slack's published manifest schema, and in step with the code.

The schema (MIT, github.com/slackapi/manifest-schema, licence beside it) is vendored in
``tests/slack/manifest_schema/`` so a clone alone runs this suite. Its top-level file refers to the versioned
schemas by remote URL, which are resolved to the local copies with a ``referencing`` Registry (no network).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7
from slack_sdk import WebClient

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path(__file__).resolve().parent / "manifest_schema"
MANIFEST = ROOT / "app_manifest.yml"
APP = ROOT / "bot" / "slack" / "app.py"
EVENTS_PATH = "/slack/events"  # served by bot/slack/web.py

# The bot-token scope each Web API method needs (api.slack.com/methods/<method>); None = no scope needed.
SCOPE_OF: dict[str, str | None] = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    "chat.delete": "chat:write",
    "chat.getPermalink": None,
    "views.open": None,
    "views.push": None,
    "views.update": None,
    "views.publish": None,
    "usergroups.users.list": "usergroups:read",
    "usergroups.list": "usergroups:read",
    "users.info": "users:read",
    "conversations.join": "channels:join",
    "reactions.add": "reactions:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
SLASH_COMMAND_SCOPE = "commands"
CALL = re.compile(r"\bclient\.([A-Za-z]+(?:_[A-Za-z]+)+)\(")


@cache
def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def schema_and_registry() -> tuple[dict[str, Any], Registry]:
    top = SCHEMA_DIR / "manifest.schema.json"
    schema = json.loads(top.read_text(encoding="utf-8"))
    remote = sorted(set(re.findall(r'"\$ref":\s*"(https?://[^"#]+)', top.read_text(encoding="utf-8"))))
    assert remote, "manifest.schema.json refers to no versioned schema"
    resources = []
    for uri in remote:
        local = SCHEMA_DIR / "schemas" / uri.rsplit("/", 1)[1]
        assert local.exists(), f"{uri} has no local copy at {local}"
        contents = json.loads(local.read_text(encoding="utf-8"))
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT7)))

    def refuse(uri: str) -> Resource:  # anything not stored locally would need the network: fail instead
        raise NoSuchResource(ref=uri)

    return schema, Registry(retrieve=refuse).with_resources(resources)


def test_the_manifest_is_valid_against_slacks_schema() -> None:
    schema, registry = schema_and_registry()
    Draft7Validator.check_schema(schema)
    validator = Draft7Validator(schema, registry=registry)
    errors = list(validator.iter_errors(manifest()))
    if errors:
        # oneOf over the versions hides the cause: report the best match against the declared version's schema.
        version = manifest().get("_metadata", {}).get("major_version", 1)
        versioned = registry.contents(
            f"https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/manifest.schema.{version}.0.0.json"
        )
        detail = best_match(Draft7Validator(versioned, registry=registry).iter_errors(manifest()))
        pytest.fail(
            f"app_manifest.yml is not a valid Slack manifest: {detail.message if detail else errors[0].message}"
        )


def test_the_schema_check_catches_a_broken_manifest() -> None:
    schema, registry = schema_and_registry()
    broken = json.loads(json.dumps(manifest()))
    broken["features"]["slash_commands"][0]["command"] = "chaos with spaces"
    broken["oauth_config"]["scopes"]["bot"] = "chat:write"  # a string, not a list
    assert list(Draft7Validator(schema, registry=registry).iter_errors(broken))


def listeners(decorator: str) -> set[str]:
    """Literal first arguments of ``@app.<decorator>(...)`` in bot/slack/app.py."""
    found = set()
    for node in ast.walk(ast.parse(APP.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == decorator):
            continue
        target, args = node.func.value, node.args
        if isinstance(target, ast.Name) and target.id == "app" and args and isinstance(args[0], ast.Constant):
            found.add(str(args[0].value))
    return found


def test_the_manifest_declares_exactly_what_the_app_listens_to() -> None:
    features, settings = manifest()["features"], manifest()["settings"]
    commands = [c["command"] for c in features.get("slash_commands", [])]
    assert commands == ["/chaos"]
    assert set(commands) == listeners("command")
    for command in features["slash_commands"]:
        assert command["url"].endswith(EVENTS_PATH)

    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"].endswith(EVENTS_PATH)
    subscriptions = settings["event_subscriptions"]
    assert subscriptions["bot_events"] == ["app_home_opened"]
    assert set(subscriptions["bot_events"]) == listeners("event")
    assert not subscriptions.get("user_events")
    assert subscriptions["request_url"].endswith(EVENTS_PATH)
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["bot_user"]["display_name"]


def api_method(client_method: str) -> str:
    """``chat_postMessage`` → ``chat.postMessage``, read from slack_sdk's own source so it is exact."""
    source = inspect.getsource(getattr(WebClient, client_method))
    match = re.search(r'api_call\(\s*"([^"]+)"', source)
    assert match, f"WebClient.{client_method} calls no Web API method"
    return match.group(1)


def web_api_calls() -> dict[str, set[str]]:
    """Every Web API method called under bot/, with the files that call it."""
    calls: dict[str, set[str]] = {}
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for name in CALL.findall(path.read_text(encoding="utf-8")):
            if hasattr(WebClient, name):
                calls.setdefault(api_method(name), set()).add(str(path.relative_to(ROOT)))
    return calls


def test_the_scan_finds_the_calls_the_app_makes() -> None:
    assert api_method("chat_postMessage") == "chat.postMessage"
    assert api_method("usergroups_users_list") == "usergroups.users.list"
    found = web_api_calls()
    for method in ("chat.postMessage", "chat.postEphemeral", "chat.update", "views.open", "views.publish"):
        assert method in found, f"the scan missed {method}: found {sorted(found)}"
    assert "usergroups.users.list" in found


def test_the_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    calls = web_api_calls()
    unknown = sorted(set(calls) - set(SCOPE_OF))
    assert not unknown, f"add the scope of {unknown} (called in {[sorted(calls[m]) for m in unknown]}) to SCOPE_OF"
    needed = {scope for method in calls if (scope := SCOPE_OF[method])}
    if manifest()["features"].get("slash_commands"):
        needed.add(SLASH_COMMAND_SCOPE)
    declared = set(manifest()["oauth_config"]["scopes"]["bot"])
    missing = {scope: sorted(m for m in calls if SCOPE_OF[m] == scope) for scope in needed - declared}
    assert not missing, f"the code calls methods whose scope the manifest lacks: {missing}"
    assert not declared - needed, f"the manifest asks for scopes nothing uses: {sorted(declared - needed)}"
    assert not manifest()["oauth_config"]["scopes"].get("user"), "chaosbot needs no user-token scopes"

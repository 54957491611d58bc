"""The chaostoolkit adapter runs experiments written by others, through Chaos Toolkit's own library."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adapters.base import AdapterError, AdapterParamsError
from adapters.chaostoolkit import UNSUPPORTED_ACTIVITY_KEYS, UNSUPPORTED_KEYS, ChaosToolkitAdapter
from bot.catalogue.models import StopCondition
from bot.catalogue.service import CatalogueError, parse_catalogue
from tests.adapters.servers import Call, FakeBackend, Reply, RunningServer, running

EXPERIMENTS = Path(__file__).parent / "chaostoolkit"
MINUTE = timedelta(minutes=1)


class Portal(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.flags: dict[str, Any] = {}

    def route(self, call: Call) -> Reply:
        if call.path == "/health":
            return Reply(200, {"ok": True})
        if call.path.startswith("/flags/") and call.method == "PUT":
            self.flags[call.path.removeprefix("/flags/")] = call.body.get("enabled")
            return Reply(200, {})
        return Reply(404, {})


@pytest.fixture
def portal(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    with running(Portal()) as served:
        monkeypatch.setenv("CTK_PORTAL_URL", served.url)
        yield served


@pytest.fixture
def lang_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tutorial's experiment works on default.locale.txt in the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default.locale.txt").write_text("welcome=hello\n", encoding="utf-8")
    shutil.copy(EXPERIMENTS / "lang-file.json", tmp_path / "lang-file.json")
    return tmp_path / "lang-file.json"


def params(path: Path | str) -> Any:
    return ChaosToolkitAdapter.validate({"experiment": str(path)})


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_tutorial_experiment_injects_its_method_and_reverts_with_its_rollback(lang_file: Path) -> None:
    adapter = ChaosToolkitAdapter()
    p = params(lang_file)
    assert adapter.preflight(p).ok and "relies on chaosbot's lease" in adapter.preflight(p).detail
    handle = adapter.prepare(p, run_id="RUN-1", duration=MINUTE)
    handle = adapter.inject(p, handle, duration=MINUTE)
    assert (lang_file.parent / "default.locale.txt").read_text() == "welcome=bonjour\n"  # the method ran (sed)
    assert handle.data["ran"] == [{"activity": "switch-language-to-french", "status": "succeeded"}]
    [step] = adapter.revert(p, handle)
    assert (lang_file.parent / "default.locale.txt").read_text() == "welcome=hello\n"  # the rollback ran
    assert (step.name, step.succeeded, step.error) == ("switch-language-back-to-english", True, None)
    assert 0 < step.duration_seconds < 5
    assert json.dumps(handle.to_json())  # the handle is plain data, no configuration or secret


def test_an_abort_does_not_wait_for_a_paused_method_and_stops_it_at_the_next_boundary(portal: RunningServer) -> None:
    adapter = ChaosToolkitAdapter()
    p = params(EXPERIMENTS / "portal.json")
    handle = adapter.inject(p, adapter.prepare(p, run_id="RUN-2", duration=MINUTE), duration=MINUTE)
    assert portal.backend.flags == {"share-token": True}  # the first action ran before inject returned
    began = time.monotonic()
    adapter.revert(p, handle)  # the method is waiting out a 30 s pause
    assert time.monotonic() - began < 5
    assert portal.backend.flags == {"share-token": False}
    time.sleep(0.2)
    assert "second" not in portal.backend.flags  # stopped at the boundary: the later action never ran


def test_a_failing_rollback_fails_the_revert_so_the_engine_raises_the_alarm(
    lang_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = json.loads(lang_file.read_text())
    experiment["rollbacks"][0]["provider"]["path"] = "false"
    lang_file.write_text(json.dumps(experiment))
    adapter = ChaosToolkitAdapter()
    p = params(lang_file)
    handle = adapter.inject(p, adapter.prepare(p, run_id="RUN-3", duration=MINUTE), duration=MINUTE)
    with pytest.raises(AdapterError, match="rollbacks failed: 'switch-language-back-to-english'"):
        adapter.revert(p, handle)


def test_each_rollback_s_result_is_reported_and_a_failure_s_text_never_shows_a_secret(
    lang_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTK_ROLLBACK_TOKEN", "tok-5up3r-s3cret")
    experiment = json.loads(lang_file.read_text())
    experiment["secrets"] = {"ops": {"token": {"type": "env", "key": "CTK_ROLLBACK_TOKEN"}}}
    refused = {"type": "process", "path": "sh", "arguments": ["-c", "echo token ${token} refused >&2; exit 3"]}
    experiment["rollbacks"].append({"type": "action", "name": "tell-the-flag-service", "provider": refused})
    lang_file.write_text(json.dumps(experiment))
    adapter = ChaosToolkitAdapter()
    p = params(lang_file)
    handle = adapter.inject(p, adapter.prepare(p, run_id="RUN-5", duration=MINUTE), duration=MINUTE)

    with pytest.raises(AdapterError) as raised:
        adapter.revert(p, handle)

    first, second = raised.value.steps
    assert (first.name, first.succeeded) == ("switch-language-back-to-english", True)  # the next still ran
    assert (second.name, second.succeeded) == ("tell-the-flag-service", False)
    assert second.error == "exited with status 3: token *** refused"
    assert "tok-5up3r-s3cret" not in raised.value.message and "token *** refused" in raised.value.message


def test_a_failed_first_action_fails_the_inject_without_showing_a_secret(
    lang_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTK_FLAG_TOKEN", "tok-m3thod-s3cret")
    experiment = json.loads(lang_file.read_text())
    experiment["secrets"] = {"ops": {"token": {"type": "env", "key": "CTK_FLAG_TOKEN"}}}
    experiment["method"][0]["provider"] = {
        "type": "process",
        "path": "sh",
        "arguments": ["-c", "echo token ${token} refused >&2; exit 2"],
    }
    lang_file.write_text(json.dumps(experiment))
    adapter = ChaosToolkitAdapter()
    p = params(lang_file)

    with pytest.raises(AdapterError) as raised:
        adapter.inject(p, adapter.prepare(p, run_id="RUN-6", duration=MINUTE), duration=MINUTE)

    assert raised.value.message == (
        "the method's activity 'switch-language-to-french' failed: exited with status 2: token *** refused"
    )


def test_a_probe_that_cannot_be_taken_says_why_without_showing_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.engine.probes import take_sample

    monkeypatch.setenv("CTK_PROBE_TOKEN", "tok-pr0be-s3cret")
    experiment = json.loads((EXPERIMENTS / "portal.json").read_text())
    experiment["secrets"] = {"portal": {"token": {"type": "env", "key": "CTK_PROBE_TOKEN"}}}
    experiment["configuration"] = {}
    [probe] = experiment["steady-state-hypothesis"]["probes"]
    probe["provider"]["url"] = "http://127.0.0.1:9/health?token=${token}"  # nothing listens on port 9
    (tmp_path / "portal.json").write_text(json.dumps(experiment))
    [condition] = ChaosToolkitAdapter.stop_conditions({"experiment": str(tmp_path / "portal.json")})

    with httpx.Client() as client:
        sample = take_sample(StopCondition.model_validate(condition), client)

    assert sample.error and "token=***" in sample.detail and "tok-pr0be-s3cret" not in sample.detail


def test_a_revert_in_another_process_runs_the_rollbacks_from_the_handle_alone(lang_file: Path) -> None:
    first, second = ChaosToolkitAdapter(), ChaosToolkitAdapter()
    p = params(lang_file)
    handle = first.inject(p, first.prepare(p, run_id="RUN-4", duration=MINUTE), duration=MINUTE)
    ChaosToolkitAdapter._methods.clear()  # what a new process knows: nothing but the persisted handle
    second.revert(p, type(handle).from_json(handle.to_json()))
    assert (lang_file.parent / "default.locale.txt").read_text() == "welcome=hello\n"


def test_features_chaosbot_does_not_run_are_refused_at_load_naming_them() -> None:
    with pytest.raises(AdapterParamsError, match=r"activity references .*file-must-exist"):
        params(EXPERIMENTS / "moving-file.json")


def test_a_missing_extension_package_is_named(tmp_path: Path) -> None:
    with pytest.raises(AdapterParamsError, match=r"chaosk8s\.pod\.actions.*chaostoolkit-k8s"):
        params(EXPERIMENTS / "users-impacted.json")


def test_chaos_toolkit_s_own_validation_runs_at_load(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"title": "t", "description": "d", "method": [{"type": "action", "name": "x"}]}))
    with pytest.raises(AdapterParamsError, match=r"Chaos Toolkit says the experiment is invalid: .*provider"):
        params(broken)
    with pytest.raises(AdapterParamsError, match="does not exist"):
        params(tmp_path / "missing.json")


def test_the_catalogue_reads_the_experiment_path_relative_to_its_own_folder(tmp_path: Path) -> None:
    shutil.copy(EXPERIMENTS / "portal.json", tmp_path / "portal.json")
    entry = {
        "id": "CE-07",
        "title": "Flag flip from Chaos Toolkit",
        "hypothesis": "The portal keeps serving.",
        "method": "The team's Chaos Toolkit experiment.",
        "expected_outcome": "No errors.",
        "safeguards": ["Staging only."],
        "rollback_steps": ["Run `/chaos abort`."],
        "environments": ["staging"],
        "fault": {"adapter": "chaostoolkit", "params": {"experiment": "portal.json"}},
        "max_duration": "5m",
        "rto": "1m",
    }
    catalogue = parse_catalogue({"experiments": [entry]}, source=str(tmp_path / "catalogue.yml"))
    assert catalogue.experiments[0].fault.params["experiment"] == str(tmp_path / "portal.json")
    entry["fault"] = {"adapter": "chaostoolkit", "params": {"experiment": "nowhere.json"}}
    with pytest.raises(CatalogueError, match=r"fault\.params\.experiment: .*does not exist"):
        parse_catalogue({"experiments": [entry]}, source=str(tmp_path / "catalogue.yml"))


def test_steady_state_probes_become_stop_conditions_judged_by_their_own_tolerance(lang_file: Path) -> None:
    from bot.catalogue.models import ChaosToolkitProbe, StopCondition
    from bot.catalogue.thresholds import threshold_text
    from bot.engine.probes import take_sample

    entry = {
        "id": "CE-08",
        "title": "Language file from Chaos Toolkit",
        "hypothesis": "The locale stays English.",
        "method": "The tutorial's experiment.",
        "expected_outcome": "The locale is back after the rollback.",
        "safeguards": ["A temporary folder."],
        "rollback_steps": ["Run `/chaos abort`."],
        "environments": ["staging"],
        "fault": {"adapter": "chaostoolkit", "params": {"experiment": "lang-file.json"}},
        "max_duration": "1m",
        "rto": "1m",
    }
    [experiment] = parse_catalogue({"experiments": [entry]}, source=str(lang_file.parent / "c.yml")).experiments
    names = [condition.name for condition in experiment.stop_conditions]
    assert names == ["lookup-lang-file", "lookup-text-in-lang-file"]
    grep = experiment.stop_conditions[1]
    assert isinstance(grep.probe, ChaosToolkitProbe)
    assert "tolerance of the Chaos Toolkit probe 'lookup-text-in-lang-file'" in threshold_text(grep)
    with httpx.Client() as client:
        assert take_sample(grep, client).ok  # grep finds welcome=hello: exit status 0, the tolerance
        (lang_file.parent / "default.locale.txt").write_text("welcome=bonjour\n")
        breached = take_sample(grep, client)
        assert not breached.ok and not breached.error and breached.detail == "exit status 1 outside tolerance 0"
        missing = StopCondition(
            name="gone", probe=ChaosToolkitProbe(kind="chaostoolkit", experiment=str(lang_file), probe="nope")
        )
        assert take_sample(missing, client).error


def test_import_drafts_an_entry_for_review_and_write_appends_one_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.catalogue.service import bundled_path, load_catalogue
    from bot.cli import main

    shutil.copy(EXPERIMENTS / "portal.json", tmp_path / "portal.json")
    catalogue = tmp_path / "catalogue.yml"
    shutil.copy(bundled_path(), catalogue)
    command = ["catalogue", "import", str(tmp_path / "portal.json"), "--catalogue", str(catalogue)]
    assert main(command) == 0
    drafted = capsys.readouterr().out
    assert "id: CE-07" in drafted and "adapter: chaostoolkit" in drafted and "experiment: portal.json" in drafted
    assert "By hand, flip-flag-off: PUT ${portal_url}/flags/share-token" in drafted
    assert drafted.count("# REVIEW:") == 5 and "Stop conditions (added at load): portal-answers" in drafted
    before = catalogue.read_text()
    assert main([*command, "--write"]) == 0
    assert catalogue.read_text().startswith(before)
    imported = next(e for e in load_catalogue(catalogue).experiments if e.id == "CE-07")
    assert imported.fault.params["experiment"] == str(tmp_path / "portal.json")
    assert [c.name for c in imported.stop_conditions] == ["portal-answers"]
    assert (
        main(["catalogue", "import", str(tmp_path / "portal.json"), "--catalogue", str(catalogue), "--id", "CE-07"])
        == 2
    )


def test_the_readme_s_example_entry_loads_and_names_every_feature_chaosbot_refuses(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Chaos Toolkit experiments", 1)[1].split("\n### ", 1)[0]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert example is not None, "the README shows no example catalogue entry"
    (tmp_path / "experiments").mkdir()
    shutil.copy(EXPERIMENTS / "portal.json", tmp_path / "experiments" / "portal.json")
    [entry] = parse_catalogue(yaml.safe_load(example.group(1)), source=str(tmp_path / "catalogue.yml")).experiments
    assert entry.fault.adapter == "chaostoolkit" and [c.name for c in entry.stop_conditions] == ["portal-answers"]

    refused = section.split("**Refused at load, by name:**", 1)[1].split("\n- ", 1)[0]
    for key in {*UNSUPPORTED_KEYS, *UNSUPPORTED_ACTIVITY_KEYS}:
        assert f"`{key}`" in refused, f"the README does not say chaosbot refuses `{key}`"
    supported = section.split("**Supported:**", 1)[1].split("\n- ", 1)[0]
    for provider in ("http", "process", "python"):
        assert f"`{provider}`" in supported

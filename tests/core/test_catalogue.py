"""The experiment catalogue: the playbook's CE-01..CE-06, custom files, precise errors, and frozen history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.catalogue.models import Catalogue
from bot.catalogue.service import CatalogueError, load_catalogue
from bot.cli import main
from bot.settings import load_settings
from tests.core.conftest import BuildCore
from tests.core.helpers import bundled_entries, bundled_entry, plan_run, write_catalogue

# The playbook's catalogue table (15-05): id -> a phrase of its hypothesis.
PLAYBOOK = {
    "CE-01": "cache outage",
    "CE-02": "expired share tokens",
    "CE-03": "webhook",
    "CE-04": "resend",
    "CE-05": "replica",
    "CE-06": "burst",
}


def custom_entry(experiment_id: str = "CE-07", **changes: Any) -> dict[str, Any]:
    entry = bundled_entry("CE-01")
    entry.update(id=experiment_id, title=f"Custom {experiment_id}", **changes)
    return entry


def problems_of(path: Path) -> list[str]:
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    assert str(path) in str(caught.value)
    return caught.value.problems


# -- the bundled playbook catalogue --------------------------------------------------------------


def test_bundled_catalogue_has_exactly_the_playbook_experiments() -> None:
    catalogue = load_catalogue()

    assert [experiment.id for experiment in catalogue.experiments] == sorted(PLAYBOOK)
    for experiment in catalogue.experiments:
        assert PLAYBOOK[experiment.id] in experiment.hypothesis.lower(), experiment.id


@pytest.mark.parametrize("experiment_id", sorted(PLAYBOOK))
def test_bundled_experiment_has_every_field_the_playbook_requires(experiment_id: str) -> None:
    experiment = load_catalogue().get(experiment_id)

    assert experiment is not None
    for field in ("title", "hypothesis", "method", "expected_outcome"):
        assert getattr(experiment, field).strip(), field
    assert all(step.strip() for step in experiment.safeguards) and experiment.safeguards
    assert all(step.strip() for step in experiment.rollback_steps) and experiment.rollback_steps
    assert experiment.environments and experiment.fault.adapter
    assert experiment.stop_conditions, "every experiment needs a stop condition that can abort it"
    assert experiment.max_duration.total_seconds() > 0 and experiment.rto.total_seconds() > 0


def test_only_the_failover_experiment_may_touch_production() -> None:
    catalogue = load_catalogue()

    in_production = [e.id for e in catalogue.experiments if "production" in e.environments]
    assert in_production == ["CE-05"]
    assert all("staging" in e.environments for e in catalogue.experiments)


def test_cache_outage_lasts_the_playbooks_five_minutes() -> None:
    experiment = load_catalogue().get("CE-01")

    assert experiment is not None and experiment.max_duration.total_seconds() == 300


def test_lookup_ignores_case_and_surrounding_spaces() -> None:
    catalogue = load_catalogue()

    assert catalogue.get(" ce-03 ") is catalogue.get("CE-03") is not None
    assert catalogue.get("CE-99") is None


# -- custom catalogue files ---------------------------------------------------------------------


def test_custom_catalogue_named_by_chaosbot_catalogue_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_catalogue(tmp_path / "team.yml", [custom_entry("CE-07"), custom_entry("GD-10")])
    monkeypatch.setenv("CHAOSBOT_CATALOGUE", str(path))

    catalogue = load_catalogue(load_settings().catalogue_path)

    assert [e.id for e in catalogue.experiments] == ["CE-07", "GD-10"]
    assert catalogue.get("GD-10") is not None and catalogue.get("GD-10").title == "Custom GD-10"


def test_cli_validate_lists_a_custom_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_catalogue(tmp_path / "team.yml", [custom_entry("CE-07")])
    monkeypatch.setenv("CHAOSBOT_CATALOGUE", str(path))

    assert main(["catalogue", "validate"]) == 0

    out = capsys.readouterr().out
    assert "CE-07" in out and "1 experiments valid" in out and str(path) in out


def test_cli_validate_of_a_bad_file_fails_and_prints_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = custom_entry("CE-07")
    del entry["hypothesis"]
    path = write_catalogue(tmp_path / "bad.yml", [entry])
    monkeypatch.delenv("CHAOSBOT_CATALOGUE", raising=False)

    assert main(["catalogue", "validate", str(path)]) != 0

    err = capsys.readouterr().err
    assert str(path) in err and "CE-07: hypothesis" in err


# -- precise validation errors ------------------------------------------------------------------


def test_missing_hypothesis_names_entry_and_field(tmp_path: Path) -> None:
    entry = custom_entry("CE-07")
    del entry["hypothesis"]

    problems = problems_of(write_catalogue(tmp_path / "c.yml", [custom_entry("CE-08"), entry]))

    assert problems == ["CE-07: hypothesis: Field required"]


def test_entry_without_id_is_named_by_its_position(tmp_path: Path) -> None:
    entry = custom_entry("CE-09")
    del entry["id"]

    problems = problems_of(write_catalogue(tmp_path / "c.yml", [custom_entry("CE-07"), custom_entry("CE-08"), entry]))

    assert "entry #3: id: Field required" in problems


def test_duration_in_words_is_refused_with_the_accepted_forms(tmp_path: Path) -> None:
    problems = problems_of(write_catalogue(tmp_path / "c.yml", [custom_entry(max_duration="5 minutes")]))

    assert len(problems) == 1
    assert problems[0].startswith("CE-07: max_duration: ")
    assert "'5m'" in problems[0]


@pytest.mark.parametrize("duration", ["0s", -5, "5min", "5d", True])
def test_other_bad_durations_are_refused(tmp_path: Path, duration: object) -> None:
    problems = problems_of(write_catalogue(tmp_path / "c.yml", [custom_entry(rto=duration)]))

    assert [p.split(": ")[:2] for p in problems] == [["CE-07", "rto"]]


def test_unknown_adapter_lists_the_known_ones(tmp_path: Path) -> None:
    entry = custom_entry()
    entry["fault"] = {"adapter": "litmus", "params": {}}

    problems = problems_of(write_catalogue(tmp_path / "c.yml", [entry]))

    assert len(problems) == 1
    assert problems[0].startswith("CE-07: fault.adapter: ")
    assert "'litmus'" in problems[0] and "redis" in problems[0] and "http" in problems[0]


def test_redis_fault_without_url_names_the_parameter(tmp_path: Path) -> None:
    entry = custom_entry()
    entry["fault"] = {"adapter": "redis", "params": {"mode": "all"}}

    problems = problems_of(write_catalogue(tmp_path / "c.yml", [entry]))

    assert problems == ["CE-07: fault.params.url: Field required"]


def test_bad_adapter_parameter_value_reads_like_the_other_problems(tmp_path: Path) -> None:
    entry = custom_entry()
    entry["fault"] = {"adapter": "redis", "params": {"url": "http://cache:6379"}}

    problems = problems_of(write_catalogue(tmp_path / "c.yml", [entry]))

    assert len(problems) == 1 and problems[0].startswith("CE-07: fault.params.url: ")
    assert "Value error" not in problems[0]


def test_duplicate_id_is_named(tmp_path: Path) -> None:
    problems = problems_of(write_catalogue(tmp_path / "c.yml", [custom_entry("CE-07"), custom_entry("CE-07")]))

    assert len(problems) == 1
    assert "CE-07" in problems[0] and "twice" in problems[0]


def test_prometheus_probe_without_threshold_names_the_stop_condition(tmp_path: Path) -> None:
    entry = bundled_entry("CE-02")
    del entry["stop_conditions"][0]["probe"]["max"]

    problems = problems_of(write_catalogue(tmp_path / "c.yml", [entry]))

    assert problems == ["CE-02: stop_conditions.0.probe: a prometheus probe needs a threshold: max, min or both"]


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    first, second = custom_entry("CE-07"), custom_entry("CE-08", max_duration="soon")
    del first["method"]

    problems = problems_of(write_catalogue(tmp_path / "c.yml", [first, second]))

    assert [p.split(": ")[:2] for p in problems] == [["CE-07", "method"], ["CE-08", "max_duration"]]


def test_invalid_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("experiments:\n  - id: CE-07\n   title: [unclosed\n", encoding="utf-8")

    problems = problems_of(path)

    assert len(problems) == 1 and problems[0].startswith("not valid YAML")
    assert "line" in problems[0]


def test_file_without_experiments_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.yml"
    path.write_text("experimments: []\n", encoding="utf-8")

    assert problems_of(path) == ["expected a mapping with a list under 'experiments'"]


def test_missing_file_is_reported_with_its_path(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "nowhere.yml")

    assert problems == ["cannot read the file: No such file or directory"]


# -- content hash and frozen history ------------------------------------------------------------


def test_content_hash_is_stable_across_loads_and_key_order(tmp_path: Path) -> None:
    entry = custom_entry()
    reordered = dict(reversed(list(entry.items())))
    first = load_catalogue(write_catalogue(tmp_path / "a.yml", [entry])).experiments[0]
    second = load_catalogue(write_catalogue(tmp_path / "b.yml", [reordered])).experiments[0]

    assert first.content_hash() == second.content_hash()
    assert len(first.content_hash()) == 64


def test_equivalent_durations_give_the_same_hash(tmp_path: Path) -> None:
    as_text = load_catalogue(write_catalogue(tmp_path / "a.yml", [custom_entry(rto="5m")])).experiments[0]
    as_seconds = load_catalogue(write_catalogue(tmp_path / "b.yml", [custom_entry(rto=300)])).experiments[0]

    assert as_text.content_hash() == as_seconds.content_hash()


@pytest.mark.parametrize(
    "change",
    [
        {"hypothesis": "A different hypothesis."},
        {"rollback_steps": ["Only one step."]},
        {"max_duration": "6m"},
        {"environments": ["staging", "production"]},
    ],
)
def test_content_hash_changes_when_content_changes(tmp_path: Path, change: dict[str, Any]) -> None:
    before = load_catalogue(write_catalogue(tmp_path / "a.yml", [custom_entry()])).experiments[0]
    after = load_catalogue(write_catalogue(tmp_path / "b.yml", [custom_entry(**change)])).experiments[0]

    assert before.content_hash() != after.content_hash()


def test_bundled_hashes_are_all_different() -> None:
    hashes = {experiment.content_hash() for experiment in load_catalogue().experiments}

    assert len(hashes) == len(PLAYBOOK)


def edited_catalogue(tmp_path: Path, **change: Any) -> Catalogue:
    entries = bundled_entries()
    entries[0].update(change)
    return load_catalogue(write_catalogue(tmp_path / "edited.yml", entries))


def test_run_records_the_exact_catalogue_entry(build_core: BuildCore) -> None:
    core = build_core()
    experiment = core.rules.experiment("CE-01")

    run = plan_run(core, experiment="CE-01")

    stored = core.queries.run(run.id)
    assert stored.experiment == experiment.snapshot()
    assert stored.experiment_hash == experiment.content_hash()
    assert stored.experiment["hypothesis"] == experiment.hypothesis


def test_later_catalogue_edit_does_not_alter_a_stored_run(tmp_path: Path, build_core: BuildCore) -> None:
    original = build_core()
    run = plan_run(original, experiment="CE-01")
    recorded, recorded_hash = original.queries.run(run.id).experiment, original.queries.run(run.id).experiment_hash

    edited = build_core(catalogue=edited_catalogue(tmp_path, hypothesis="Rewritten later.", max_duration="1h"))

    again = edited.queries.run(run.id)
    assert again.experiment == recorded and again.experiment_hash == recorded_hash
    assert again.experiment["hypothesis"] != "Rewritten later."
    newer = plan_run(edited, experiment="CE-01")
    assert newer.experiment_hash != recorded_hash
    assert newer.experiment["hypothesis"] == "Rewritten later."


def test_stored_hash_matches_the_stored_snapshot(build_core: BuildCore) -> None:
    from bot.catalogue.models import Experiment

    core = build_core()
    run = core.queries.run(plan_run(core, experiment="CE-05", environment="production").id)

    assert Experiment.model_validate(run.experiment).content_hash() == run.experiment_hash


def test_plan_edit_is_checked_against_the_recorded_entry_not_todays_catalogue(
    tmp_path: Path, build_core: BuildCore
) -> None:
    from bot.errors import InvalidInput
    from bot.runs.rules import PlanRequest

    run = plan_run(build_core(), experiment="CE-01")
    widened = build_core(catalogue=edited_catalogue(tmp_path, environments=["staging", "production"]))

    with pytest.raises(InvalidInput, match="may run only in: staging"):
        widened.transitions.edit("oliver", run.id, PlanRequest(experiment_id="CE-01", environment="production"))


def test_misspelt_field_is_refused_not_silently_ignored(tmp_path: Path) -> None:
    entry = custom_entry()
    entry["hypotesis"] = entry.pop("hypothesis")

    problems = problems_of(write_catalogue(tmp_path / "c.yml", [entry]))

    assert sorted(problems) == ["CE-07: hypotesis: Extra inputs are not permitted", "CE-07: hypothesis: Field required"]

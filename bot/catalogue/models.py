"""Experiments as declarative, validated data (the playbook's catalogue)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

# Re-exported: durations in the catalogue are read and shown the one way bot.vocabulary defines.
from bot.vocabulary import format_duration as format_duration
from bot.vocabulary import parse_duration as parse_duration

EXPERIMENT_ID = re.compile(r"^[A-Z][A-Z0-9]*-\d{2,}$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
Duration = Annotated[timedelta, Field(description="seconds, or '90s' / '5m' / '2h'")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpProbe(_Strict):
    """GET (or another method) a URL; the sample is its latency in ms, breached on a bad status or slowness."""

    kind: Literal["http"]
    url: str
    method: Literal["GET", "HEAD", "POST"] = "GET"
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    expect_status: list[int] = Field(default_factory=lambda: [200])
    max_latency_ms: float | None = Field(None, gt=0)

    unit: ClassVar[str] = "ms"

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """(upper, lower): the values a sample must stay within, for charts and statistics."""
        return self.max_latency_ms, None


class PrometheusProbe(_Strict):
    """An instant query; the sample is the first result's value, compared with ``max`` and/or ``min``."""

    kind: Literal["prometheus"]
    url: str = Field(description="Prometheus base URL, e.g. http://prometheus:9090")
    query: str
    max: float | None = None
    min: float | None = None
    timeout_seconds: float = Field(5.0, gt=0, le=60)

    unit: ClassVar[str] = ""

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        return self.max, self.min

    @model_validator(mode="after")
    def _has_threshold(self) -> PrometheusProbe:
        if self.max is None and self.min is None:
            raise ValueError("a prometheus probe needs a threshold: max, min or both")
        return self


class AlertsProbe(_Strict):
    """Breached while Alertmanager has an active alert matching every matcher that no silence hides.

    The run's own silences hide the alerts it is expected to fire, so only something else that pages stops it.
    """

    kind: Literal["alerts"]
    url: str = Field(description="Alertmanager base URL, e.g. ${ALERTMANAGER_URL}")
    matchers: dict[str, str] = Field(min_length=1, description="label: value, e.g. severity: page")
    timeout_seconds: float = Field(5.0, gt=0, le=60)

    unit: ClassVar[str] = "alerts"

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        return 0.0, None  # any alert firing is outside


class ChaosToolkitProbe(_Strict):
    """A steady-state probe of a Chaos Toolkit experiment, judged by the experiment's own tolerance."""

    kind: Literal["chaostoolkit"]
    experiment: str = Field(description="the experiment's path (the fault's, for a chaostoolkit entry)")
    probe: str = Field(min_length=1, description="the probe's name in its steady-state hypothesis")

    unit: ClassVar[str] = ""

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        return None, None  # a tolerance is a rule, not a line on a chart


Probe = Annotated[HttpProbe | PrometheusProbe | AlertsProbe | ChaosToolkitProbe, Field(discriminator="kind")]


class Silence(_Strict):
    """Alertmanager matchers (``label: value``) for alerts the run is expected to fire, and why."""

    matchers: dict[str, str] = Field(min_length=1)
    comment: str | None = Field(None, max_length=300)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        """``{alertname: X, env: staging, comment: why}`` as written in the catalogue, or the explicit form."""
        if isinstance(value, dict) and "matchers" not in value:
            matchers = {k: v for k, v in value.items() if k != "comment"}
            return {"matchers": matchers, "comment": value.get("comment")}
        return value

    @field_validator("matchers")
    @classmethod
    def _names(cls, matchers: dict[str, str]) -> dict[str, str]:
        for name, value in matchers.items():
            if not LABEL_NAME.match(name):
                raise ValueError(f"{name!r} is not an Alertmanager label name")
            if not isinstance(value, str) or not value:
                raise ValueError(f"the value of {name!r} must be a non-empty string")
        return matchers


class StopCondition(_Strict):
    """A probe with a threshold: breaching it aborts the run."""

    name: str = Field(min_length=1, max_length=80)
    probe: Probe


class Fault(_Strict):
    adapter: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ObservabilityLink(_Strict):
    """A dashboard, log query or trace search for the run's window: ``{start}``/``{end}`` are epoch ms,
    ``{start:iso}``/``{end:iso}`` ISO 8601 in UTC; they are filled in the retrospective. A ``${VAR}``
    (a base URL, never a secret: the link is shown to people) is read from the environment then."""

    title: str = Field(min_length=1, max_length=80)
    url: str = Field(min_length=8, max_length=2000)

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        if not value.startswith(("https://", "http://", "${")):
            raise ValueError("expected an http(s) address, or one starting with a ${VAR} base URL")
        return value


class Experiment(_Strict):
    id: str
    title: str = Field(min_length=1, max_length=120)
    hypothesis: str = Field(min_length=1)
    method: str = Field(min_length=1)
    expected_outcome: str = Field(min_length=1)
    safeguards: list[str] = Field(min_length=1)
    rollback_steps: list[str] = Field(min_length=1)
    environments: list[str] = Field(min_length=1)
    fault: Fault
    stop_conditions: list[StopCondition] = Field(default_factory=list)
    # Alerts this run is expected to fire: silenced while the fault is on, lifted with the revert.
    silences: list[Silence] = Field(default_factory=list, max_length=20)
    max_duration: Duration
    rto: Duration
    probe_interval: Duration = Field(default=timedelta(seconds=5))
    observability: list[ObservabilityLink] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not EXPERIMENT_ID.match(value):
            raise ValueError("expected an id like CE-01")
        return value

    @field_validator("max_duration", "rto", "probe_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_serializer("max_duration", "rto", "probe_interval")
    def _seconds(self, value: timedelta) -> int:
        return int(value.total_seconds())

    @field_validator("stop_conditions")
    @classmethod
    def _unique_names(cls, value: list[StopCondition]) -> list[StopCondition]:
        names = [condition.name for condition in value]
        if len(names) != len(set(names)):
            raise ValueError("stop condition names must be unique within an experiment")
        return value

    def snapshot(self) -> dict[str, Any]:
        """The entry as JSON-ready data: what a run records, so a later catalogue edit changes no history."""
        data = self.model_dump(mode="json")
        if not data["observability"]:  # absent as before it existed, so older entries keep their content hash
            del data["observability"]
        return data

    def content_hash(self) -> str:
        canonical = json.dumps(self.snapshot(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class Catalogue(_Strict):
    experiments: list[Experiment]

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalogue:
        seen: set[str] = set()
        for experiment in self.experiments:
            if experiment.id in seen:
                raise ValueError(f"experiment id {experiment.id} appears twice")
            seen.add(experiment.id)
        return self

    def get(self, experiment_id: str) -> Experiment | None:
        wanted = experiment_id.strip().upper()
        return next((e for e in self.experiments if e.id == wanted), None)

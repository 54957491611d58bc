"""Everything the run engine says to people, as ``Words`` (people via ``who``, durations via ``format_duration``).

Keeping it in one module keeps the engine's phrasing consistent with the rest of the bot, and lets the
logic modules read as logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from bot.catalogue.models import Experiment
from bot.engine.verdict import Verdict
from bot.vocabulary import format_duration, format_seconds, run_label
from bot.words import Words, who


def shutting_down() -> Words:
    return Words.of("This chaosbot process is shutting down; start the run again in a moment.")


def kill_switch_engaged() -> Words:
    return Words.of("The global kill switch is engaged: nothing can start until an approver runs `/chaos resume`.")


def started_elsewhere(label: str) -> Words:
    return Words.of(f"{label} is being started by another chaosbot process.")


def fault_unusable(experiment_id: str, problem: str) -> Words:
    return Words.of(f"{experiment_id}'s fault cannot be used: {problem}")


def preflight_failed(label: str, detail: str) -> Words:
    return Words.of(f"Preflight failed for {label}, so nothing was injected and it stays approved: {detail}")


def steady_state_not_met(label: str, problems: Sequence[str]) -> Words:
    return Words.of(
        f"{label} did not start: the steady state does not hold ({'; '.join(problems)}), so nothing "
        "was injected. It stays approved; start it again once the system is healthy."
    )


def not_announced(label: str, seconds: float) -> Words:
    return Words.of(
        f"{label} did not start: Slack did not take its announcement within {seconds:g} s, and nobody can "
        "press Abort while Slack cannot be reached. Nothing was injected; it stays approved (a scheduled "
        "start is tried again until its plan expires)."
    )


def failed_before_inject(label: str, problem: str) -> Words:
    return Words.of(f"{label} failed before anything was injected: {problem}")


def inject_failed(label: str, problem: str, *, undone: bool) -> Words:
    after = "What may have been applied was reverted" if undone else "The revert failed too (see alert)"
    return Words.of(f"Could not inject the fault of {label}: {problem}. {after}; {label} is marked failed.")


def announcement(
    actor: str,
    label: str,
    experiment: Experiment,
    *,
    rehearsal: bool,
    preflight_ok: bool,
    preflight_detail: str,
    production: bool,
) -> Words:
    conditions = ", ".join(c.name for c in experiment.stop_conditions) or "none"
    check = "passed" if preflight_ok else "FAILED (dry run goes on)"
    if production and preflight_ok:
        check += " (production: revert path and kill switch verified)"
    return Words.of(
        f"{label} started by ",
        who(actor),
        f"{' as a dry run' if rehearsal else ''}: injecting {experiment.fault.adapter} for up to "
        f"{format_duration(experiment.max_duration)}. Stop conditions: {conditions}, probed every "
        f"{format_duration(experiment.probe_interval)}. Preflight {check}: {preflight_detail}",
    )


def injected(label: str) -> Words:
    return Words.of(f"Fault injected into {label}; watching its stop conditions.")


def failed_to_start(label: str, reason: str, reverted: Words, pending: Words) -> Words:
    return Words.of(f"{label} failed to start: {reason}. ", reverted, pending)


def aborted(actor: str, run_id: int, reason: str, detail: Words) -> Words:
    said = f": {reason.rstrip('.')}." if reason else "."
    return Words.of(f"{run_label(run_id)} aborted by ", who(actor), f"{said} ", detail)


def cannot_abort_blind(run_id: int) -> Words:
    return Words.of(
        f"Cannot revert {run_label(run_id)} from here: the database is unreachable and no copy of its "
        "fault handles is available. Follow its rollback steps by hand."
    )


def not_running(label: str, state: str) -> Words:
    return Words.of(f"{label} is not running ({state}): there is nothing to abort. To withdraw it, cancel it.")


def controller_lost(run_id: int) -> str:
    """The end reason of a run recovered by the dead man's switch (stored as the run's end reason)."""
    return (
        f"controller lost: the chaosbot process running {run_label(run_id)} stopped renewing its lease; "
        "faults reverted from their persisted handles"
    )


def recovered(run_id: int, reason: str, reverted: Words, pending: Words) -> Words:
    return Words.of(f"{run_label(run_id)} aborted, {reason}. ", reverted, pending)


def internal_error(error: BaseException) -> str:
    return f"the run engine hit an internal error ({type(error).__name__}); reverted to be safe"


def maximum_reached(run_id: int, rto: timedelta) -> Words:
    return Words.of(
        f"{run_label(run_id)} reached its maximum duration: fault reverted; measuring recovery "
        f"(RTO {format_duration(rto)})."
    )


def recovered_after_abort(run_id: int, seconds: float | None, rto: timedelta) -> Words:
    rto_text = format_duration(rto)
    if seconds is None:
        return Words.of(
            f"{run_label(run_id)}: the steady state had not come back when the watch after the abort ended "
            f"(RTO {rto_text})."
        )
    within = "within" if seconds <= rto.total_seconds() else "over"
    return Words.of(
        f"{run_label(run_id)} recovered: the steady state was back {format_seconds(seconds)} after the revert, "
        f"{within} the RTO of {rto_text}."
    )


def end_revert_failed(failures: Sequence[str]) -> str:
    return f"could not revert at the end of the maximum duration: {'; '.join(failures)}"


def failed(run_id: int, reason: str, pending: Words) -> Words:
    return Words.of(f"{run_label(run_id)} failed: {reason}.", pending)


def completed(run_id: int, summary: str, pending: Words) -> Words:
    return Words.of(f"{run_label(run_id)} completed: {summary}.", pending)


def completed_reason(summary: str) -> str:
    return f"maximum duration reached; {summary}"


def verdict(verdict: Verdict, rto: timedelta, recovery: float | None) -> str:
    """The summary stored with a completed run's outcome."""
    rto_text = format_duration(rto)
    took = format_seconds(recovery) if recovery is not None else ""
    return {
        Verdict.NOT_WATCHED: "no stop conditions, so recovery was not measured",
        Verdict.NOT_EVALUATED: (
            "its stop conditions could not be evaluated (a rehearsal), so the hypothesis was not tested"
        ),
        Verdict.NOT_SAMPLED: (
            "no sample was taken while the fault was on (a probe interval longer than the fault, or a late watcher), "
            "so the hypothesis was not tested"
        ),
        Verdict.NEVER_CAME_BACK: (
            f"the steady state did not come back after the revert (RTO {rto_text}): hypothesis refuted"
        ),
        Verdict.WITHIN_RTO: f"recovered in {took} after the revert, within the RTO of {rto_text}: hypothesis held",
        Verdict.OVER_RTO: f"recovered in {took} after the revert, over the RTO of {rto_text}: hypothesis refuted",
    }[verdict]


def reverted(*, anything: bool, ok: bool, failures: Sequence[str]) -> Words:
    if not anything:
        return Words.of("Nothing left to revert.")
    if ok:
        return Words.of("Fault reverted.")
    return Words.of(f"REVERT FAILED: {'; '.join(failures)}. Follow the manual rollback steps (alert posted).")


def revert_alert(run_id: int, failures: Sequence[str], attempts: int, rollback_steps: str) -> Words:
    # No "@here" here: Notifier.alert is loud by contract and the Slack publisher adds the mention.
    return Words.of(
        f"{run_label(run_id)}: the fault could NOT be reverted after {attempts} attempt{'s' if attempts != 1 else ''} "
        f"({'; '.join(failures)}). Roll it back by hand now:\n{rollback_steps}"
    )


def record_pending() -> Words:
    return Words.of(" The database is unreachable: the record is written as soon as it is back.")


SHUT_DOWN_REASON = "chaosbot was shut down"


def adopted(run_id: int, replica: str, handed_over_by: str) -> Words:
    return Words.of(
        f"{run_label(run_id)} is now watched by {replica}: {handed_over_by} shut down and handed it over. "
        "The fault stays on and its stop conditions are still watched."
    )


def handing_over(run_id: int, replica: str) -> Words:
    return Words.of(f"{replica} is shutting down: handing {run_label(run_id)} over to another chaosbot replica.")


def silenced(label: str, ids: list[str]) -> Words:
    return Words.of(
        f":shushing_face: {label}: the alerts it is expected to fire are silenced in Alertmanager until its revert"
        f" ({len(ids)} silence{'s' if len(ids) != 1 else ''}: {', '.join(ids)})."
    )

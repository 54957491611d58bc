"""Loading the approvals policy file and applying its rules to one approval."""

from __future__ import annotations

from collections.abc import Mapping, Set
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.errors import NotPermitted
from bot.policy.models import Policy, Role
from bot.words import Person, Words, listing

BUNDLED = "demo_policy.yml"


class PolicyError(Exception):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def bundled_path() -> Path:
    return Path(str(resources.files("bot.policy").joinpath(BUNDLED)))


def load_policy(path: Path | None = None) -> Policy:
    source = path or bundled_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        return Policy.model_validate(raw)
    except OSError as exc:
        raise PolicyError(str(source), [f"cannot read the file: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(str(source), [f"not valid YAML: {exc}"]) from None
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise PolicyError(str(source), problems) from None


def role_to_credit(
    policy: Policy,
    *,
    run_label: str,
    environment: str,
    owner: str,
    approver: str,
    approved: Mapping[Role, str],
    held: Set[Role],
) -> Role:
    """The required, still-missing role this person's approval counts for, or ``NotPermitted`` saying why not.

    ``approved`` maps each role already approved to the user who approved it; ``held`` are the approver's
    roles, resolved before any transaction (a role directory may have to ask the chat platform).
    """
    if approver == owner:
        raise NotPermitted(f"You own {run_label}, so you cannot approve it: someone else must.")
    if approver in approved.values():
        role = next(role for role, user in approved.items() if user == approver)
        raise NotPermitted(
            f"You already approved {run_label} as {role.label}; one person's approval counts for one role."
        )
    roles = approvable_roles(
        policy, environment=environment, owner=owner, approver=approver, approved=approved, held=held
    )
    if roles:
        return roles[0]
    missing = [role for role in policy.required_roles(environment) if role not in approved]
    raise NotPermitted(_why_not(policy, run_label, environment, missing, held, approved))


def approvable_roles(
    policy: Policy,
    *,
    environment: str,
    owner: str,
    approver: str,
    approved: Mapping[Role, str],
    held: Set[Role],
) -> list[Role]:
    """The still-missing required roles this person could approve now (empty when they may not approve)."""
    if approver == owner or approver in approved.values():
        return []
    return [role for role in policy.required_roles(environment) if role not in approved and role in held]


def _why_not(
    policy: Policy,
    run_label: str,
    environment: str,
    missing: list[Role],
    held: Set[Role],
    approved: Mapping[Role, str],
) -> Words:
    still = listing((Words.of(f"{role.label} (", listing(policy.holders(role).who()), ")") for role in missing), "; ")
    already = sorted(role for role in held if role in approved)
    if already:
        done = listing(Words.of(f"{role.label} by ", Person(approved[role])) for role in already)
        return Words.of(f"Your role on {run_label} is already approved (", done, "). Still missing: ", still, ".")
    if held:
        yours = ", ".join(role.label for role in sorted(held))
        return Words.of(
            f"{environment.capitalize()} runs do not need your role ({yours}). {run_label} still needs: ", still, "."
        )
    return Words.of(f"You hold none of the roles {run_label} ({environment}) still needs. Still missing: ", still, ".")

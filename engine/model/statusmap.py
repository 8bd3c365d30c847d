"""Reading a backend's words through a kind's observe block: statuses and job outcomes
to states. Shared by reconcile (which compares) and ingest (which applies)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from fleetlog.dsl.spec import MachineSpec


def map_status(spec: MachineSpec, status: str | None) -> str | None:
    """The state the observe map gives ``status``: exact rules win over globs; among
    globs the first declared wins. None when nothing matches (or no observe block)."""
    if status is None or spec.observe is None:
        return None
    for rule in spec.observe.rules:
        if not rule.is_glob and rule.pattern == status:
            return rule.state
    for rule in spec.observe.rules:
        if rule.is_glob and fnmatch.fnmatchcase(status, rule.pattern):
            return rule.state
    return None


def observable_states(spec: MachineSpec) -> frozenset[str]:
    return frozenset(r.state for r in spec.observe.rules) if spec.observe else frozenset()


def final_state(spec: MachineSpec) -> str | None:
    return next((s.name for s in spec.states if s.final), None)


def job_rule_state(spec: MachineSpec, operations: Iterable[str], status: str) -> str | None:
    """The state the kind's ``job`` rules give ``status`` of any of ``operations``."""
    if spec.observe is None:
        return None
    ops = list(operations)
    for rule in spec.observe.job_rules:
        if status in rule.statuses and any(_op_matches(rule.operation, op) for op in ops):
            return rule.state
    return None


def _op_matches(rule_op: str, op: str) -> bool:
    """``OP_INSTANCE_CREATE`` matches the opcode and Ganeti's summaries of it
    (``INSTANCE_CREATE(snf-1)``)."""
    bare = rule_op.removeprefix("OP_")
    return op == rule_op or op == bare or op.startswith(bare + "(")

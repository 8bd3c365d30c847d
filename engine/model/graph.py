"""Diagrams of a kind: mermaid text (no dependencies) or graphviz DOT/SVG/PNG.

DOT and images go through ``transitions``' GraphMachine (``machine.graph_cls(machine)``)
with the ``graphviz`` engine, imported only here. Rendering SVG/PNG needs Debian's
``graphviz`` (the ``dot`` binary); its absence is a clear error, not a traceback.
"""

from __future__ import annotations

from typing import Any

from fleetlog.dsl.spec import MachineSpec
from fleetlog.engine.model.kinds import machine_kwargs, quiet_transitions
from fleetlog.errors import FleetlogError, UsageError

FORMATS = ("mermaid", "dot", "svg", "png")


class GraphError(FleetlogError):
    exit_code = 1


def mermaid(spec: MachineSpec, highlight: str | None = None) -> str:
    """A ``stateDiagram-v2``: initial from ``[*]``, final states to ``[*]``, error states
    and the highlighted state styled."""
    lines = ["stateDiagram-v2", f"    %% {spec.name}: {spec.title}"]
    for st in spec.states:
        lines.append(f'    state "{st.name}" as {_mid(st.name)}')
    lines.append(f"    [*] --> {_mid(spec.initial)}")
    for t in spec.transitions:
        for src in t.sources:
            lines.append(f"    {_mid(src)} --> {_mid(t.dest)}: {t.trigger}")
        if t.on_failure is not None:
            for src in t.sources:
                lines.append(f"    {_mid(src)} --> {_mid(t.on_failure.state)}: {t.trigger} failed")
    for st in spec.states:
        if st.final:
            lines.append(f"    {_mid(st.name)} --> [*]")
    lines.append("    classDef error fill:#fdd,color:#900")
    lines.append("    classDef current fill:#ffd27f,stroke:#c60,stroke-width:3px")
    errors = [_mid(s.name) for s in spec.states if s.error]
    if errors:
        lines.append(f"    class {','.join(errors)} error")
    if highlight:
        lines.append(f"    class {_mid(highlight)} current")
    return "\n".join(lines) + "\n"


def _mid(name: str) -> str:
    return "s_" + "".join(c if c.isalnum() else "_" for c in name)


def _graphviz_graph(spec: MachineSpec, highlight: str | None) -> Any:
    quiet_transitions()
    from transitions.extensions.diagrams import GraphMachine

    kwargs = machine_kwargs(spec)
    for t in spec.transitions:
        if t.on_failure is not None:
            kwargs["transitions"].append(
                {
                    "trigger": f"{t.trigger} failed",
                    "source": list(t.sources),
                    "dest": t.on_failure.state,
                }
            )
    machine = GraphMachine(graph_engine="graphviz", title=spec.title, **kwargs)
    graph = machine.graph_cls(machine)
    if highlight:
        graph.set_node_style(highlight, "active")
    return graph.get_graph(title=f"{spec.name}: {spec.title}")


def render(spec: MachineSpec, fmt: str, highlight: str | None = None) -> str | bytes:
    if fmt not in FORMATS:
        raise UsageError(f"unknown graph format {fmt!r} (choose from {', '.join(FORMATS)})")
    if highlight is not None and highlight not in spec.state_names:
        raise UsageError(f"{highlight!r} is not a state of {spec.name}")
    if fmt == "mermaid":
        return mermaid(spec, highlight)
    g = _graphviz_graph(spec, highlight)
    if fmt == "dot":
        return str(g.source)
    import graphviz

    try:
        return bytes(g.pipe(format=fmt))
    except graphviz.ExecutableNotFound:
        raise GraphError(
            "graphviz's 'dot' program is not installed (Debian: apt-get install graphviz)"
        ) from None
    except graphviz.CalledProcessError as exc:
        raise GraphError(f"graphviz failed: {exc}") from None

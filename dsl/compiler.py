"""Parse tree -> ``MachineSpec``, plus the name uses the checks resolve.

The compiler is a straight walk over the tree the grammar produces. It never stops at
the first problem: structural mistakes it can see on its own (an unknown type, a
repeated step option, a malformed ``{template}``) become diagnostics and the walk goes
on with a harmless stand-in, so ``dsl.checks`` can report everything else in the same
run. Every name *use* is recorded in ``Lowered.uses`` with its position.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Tree

from fleetlog.dsl import spec as s
from fleetlog.dsl.diagnostics import Diagnostic, did_you_mean
from fleetlog.dsl.errors import TemplateError
from fleetlog.dsl.interpolate import Placeholder
from fleetlog.dsl.interpolate import parse as parse_template
from fleetlog.dsl.literals import decode_string, parse_duration, parse_float, parse_int
from fleetlog.dsl.sourcemap import Role, Use

SIMPLE_TYPES = ("str", "int", "float", "bool")
#: Job outcomes a ``job "OP" STATUS -> STATE`` rule may name (Ganeti's final job statuses;
#: ``running`` for a job the backend reports started).
JOB_STATUSES = ("success", "error", "canceled", "running")
_OBSERVE_KEYS = {
    "absent_ok": "absent_ok",
    "compare": "compares",
    "job_rule": "job_rules",
    "jobid": "job_attr",
    "delete_orphans": "delete_orphans",
}
_WORDS = {
    "on": "on",
    "absent": "absent if",
    "listing": "list",
    "jobs": "jobs",
    "owned": "owned",
    "jobid": "job id in",
    "building": "building",
    "delete_orphans": "delete orphans via",
}
STATE_FLAGS = ("error", "final")
DEFAULT_WAIT_EVERY = 5.0
MAX_EXPR_DEPTH = 64


@dataclass
class Lowered:
    """What the compiler produces: the spec, the uses to check, its own diagnostics."""

    spec: s.MachineSpec
    uses: list[Use] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def compile_tree(tree: Tree[Token], source: str = "", filename: str = "<string>") -> Lowered:
    """Lower a parse tree (``dsl.parser.parse``) to a spec with its definition hash."""
    machine = tree.children[0] if tree.data == "start" else tree
    assert isinstance(machine, Tree)
    walker = _Compiler(filename)
    spec = walker.machine(machine)
    spec = dataclasses.replace(spec, source=source, filename=filename)
    spec = dataclasses.replace(spec, definition_hash=s.definition_hash(spec))
    return Lowered(spec, walker.uses, walker.diagnostics)


def _pos(tok: Token) -> s.Pos:
    return s.Pos(tok.line or 0, tok.column or 0)


def _trees(node: Tree[Token], data: str | None = None) -> Iterator[Tree[Token]]:
    for child in node.children:
        if isinstance(child, Tree) and (data is None or child.data == data):
            yield child


def _tokens(node: Tree[Token]) -> list[Token]:
    return [c for c in node.children if isinstance(c, Token)]


class _Compiler:
    """One walk over one machine; collects uses and diagnostics as it goes."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.uses: list[Use] = []
        self.diagnostics: list[Diagnostic] = []

    # ---- bookkeeping ------------------------------------------------------------------
    def error(self, tok: Token, message: str, hint: str | None = None, offset: int = 0) -> None:
        self.diagnostics.append(
            Diagnostic(
                self.filename,
                tok.line or 0,
                (tok.column or 0) + offset,
                message,
                hint=hint,
                length=max(1, len(str(tok)) - offset),
            )
        )

    def use(
        self,
        role: Role,
        tok: Token,
        scope: str | None,
        attr: str | None = None,
        context: str = "",
        name: str | None = None,
    ) -> None:
        self.uses.append(
            Use(role, name or str(tok), _pos(tok), len(str(tok)), scope, attr, context)
        )

    # ---- machine ----------------------------------------------------------------------
    def machine(self, tree: Tree[Token]) -> s.MachineSpec:
        name_tok, *rest = tree.children
        assert isinstance(name_tok, Token)
        title = ""
        params: list[s.ParamSpec] = []
        secrets: list[s.SecretSpec] = []
        states: list[s.StateSpec] = []
        observe: s.ObserveSpec | None = None
        transitions: list[s.TransitionSpec] = []
        for child in rest:
            if isinstance(child, Token):
                title = decode_string(str(child))[0]
            elif child.data == "param":
                params.append(self.param(child, None))
            elif child.data == "secret":
                tok = child.children[0]
                assert isinstance(tok, Token)
                secrets.append(s.SecretSpec(str(tok), _pos(tok)))
            elif child.data == "state":
                states.append(self.state(child))
            elif child.data == "observe":
                block = self.observe(child)
                if observe is not None:
                    self.error(
                        _first_token(child),
                        "a machine has one observe block",
                        hint=f"merge it into the one at line {observe.pos.line}",
                    )
                else:
                    observe = block
            elif child.data == "transition":
                transitions.append(self.transition(child))
        return s.MachineSpec(
            name=str(name_tok),
            title=title,
            params=tuple(params),
            secrets=tuple(secrets),
            states=tuple(states),
            observe=observe,
            transitions=tuple(transitions),
        )

    def param(self, tree: Tree[Token], scope: str | None) -> s.ParamSpec:
        name_tok, type_tree, *default = tree.children
        assert isinstance(name_tok, Token) and isinstance(type_tree, Tree)
        ptype, choices, ref_kind = self.type_of(type_tree)
        spec = s.ParamSpec(
            str(name_tok), ptype, choices=choices, ref_kind=ref_kind, pos=_pos(name_tok)
        )
        if default:
            assert isinstance(default[0], Tree)
            value_tree = default[0].children[0]
            assert isinstance(value_tree, Tree)
            bare = value_tree.data == "bare"
            if value_tree.data == "empty":
                tok = name_tok  # `[]` has no token of its own to point at
                value: Any = ()
            else:
                tok = _first_token(value_tree)
                value = str(tok) if bare else self.literal(value_tree)
            if ptype == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            spec = dataclasses.replace(spec, default=value, has_default=True)
            self.use("default", tok, scope, "bare" if bare else None, name=str(name_tok))
        return spec

    def type_of(self, tree: Tree[Token]) -> tuple[s.ParamType, tuple[str, ...], str | None]:
        toks = _tokens(tree)
        if tree.data == "ref_type":
            return "ref", (), str(toks[0])
        if tree.data == "refs_type":
            return "refs", (), str(toks[0])
        if tree.data == "enum_type":
            choices: list[str] = []
            for tok in toks:
                value = decode_string(str(tok))[0] if tok.type == "STRING" else str(tok)
                if value in choices:
                    self.error(tok, f"enum choice '{value}' is listed twice")
                choices.append(value)
            return "enum", tuple(choices), None
        name = str(toks[0])
        if name not in SIMPLE_TYPES:
            known = (*SIMPLE_TYPES, "enum", "ref")
            self.error(
                toks[0],
                f"unknown type '{name}'; types are {', '.join(known)}",
                hint=did_you_mean(name, known),
            )
            return "str", (), None
        return name, (), None  # type: ignore[return-value]

    def state(self, tree: Tree[Token]) -> s.StateSpec:
        toks = _tokens(tree)
        initial = toks[0].type == "INITIAL"
        if initial:
            toks = toks[1:]
        name_tok, *flag_toks = toks
        flags: set[str] = set()
        for tok in flag_toks:
            if str(tok) not in STATE_FLAGS:
                self.error(
                    tok,
                    f"unknown state flag '{tok}'; flags are error, final",
                    hint=did_you_mean(str(tok), STATE_FLAGS),
                )
            flags.add(str(tok))
        return s.StateSpec(
            str(name_tok),
            initial=initial,
            error="error" in flags,
            final="final" in flags,
            pos=_pos(name_tok),
        )

    def observe(self, tree: Tree[Token]) -> s.ObserveSpec:
        head = _first_token(tree)
        fields: dict[str, Any] = {"command": None, "rules": []}
        for child in tree.children:
            if isinstance(child, Token):
                fields["command"] = self.template(child, None)
                continue
            kind = str(child.data)
            if kind == "rule":
                pattern_tok, state_tok = _tokens(child)
                self.use("state", state_tok, None, context="an observe rule")
                fields["rules"].append(
                    s.ObserveRule(
                        decode_string(str(pattern_tok))[0], str(state_tok), _pos(pattern_tok)
                    )
                )
                continue
            repeatable = kind in ("absent_ok", "compare", "job_rule", "unknown")
            key = _OBSERVE_KEYS.get(kind, kind)
            if not repeatable and key in fields:
                self.error(_first_token(child), f"an observe block has one '{_WORDS[kind]}'")
                continue
            value = getattr(self, f"observe_{kind}")(child)
            if kind == "building":
                value, grace = value
                if grace is not None:
                    fields["grace"] = grace
            if repeatable:
                fields.setdefault(key, []).extend(value if kind == "unknown" else [value])
            else:
                fields[key] = value
        for key in ("rules", "unknown", "absent_ok", "compares", "job_rules"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return s.ObserveSpec(pos=_pos(head), **fields)

    def observe_on(self, tree: Tree[Token]) -> str | None:
        tok = _tokens(tree)[0]
        self.use("ref", tok, None, context="on")
        return None if str(tok) == "self" else str(tok)

    def observe_absent(self, tree: Tree[Token]) -> s.AbsentSpec:
        exit_code: int | None = None
        op: Any = None
        expected: str | None = None
        for sub in _trees(tree):
            if sub.data == "exit_code":
                exit_code = self.integer(_tokens(sub)[0])
            else:
                found, expected = self.condition(sub)
                if found not in ("contains", "equals"):
                    self.error(
                        _first_token(sub) if sub.children else _first_token(tree),
                        f"'absent if' reads the output with contains or equals, not {found}",
                        hint="write 'absent if exit N' to judge the exit status",
                    )
                else:
                    op = found
        return s.AbsentSpec(exit_code, op, expected)

    def observe_unknown(self, tree: Tree[Token]) -> list[str]:
        return [decode_string(str(t))[0] for t in _tokens(tree)]

    def observe_listing(self, tree: Tree[Token]) -> s.ListingSpec:
        toks = _tokens(tree)
        command_tok, format_tok = toks[0], toks[-1]
        self.use("format", format_tok, None, context="a listing")
        columns: tuple[str, ...] = ()
        separator: str | None = None
        for sub in _trees(tree):
            if sub.data == "columns":
                tok = _tokens(sub)[0]
                columns = tuple(c.strip() for c in decode_string(str(tok))[0].split(","))
                if not all(columns):
                    self.error(tok, "an empty column name", hint='write columns "name,status"')
            elif sub.data == "separator":
                tok = _tokens(sub)[0]
                separator = decode_string(str(tok))[0]
                if not separator:
                    self.error(tok, "an empty separator")
        return s.ListingSpec(
            self.template(command_tok, None),
            str(format_tok),
            self.on(tree, None),
            columns,
            separator,
            _pos(command_tok),
        )

    observe_jobs = observe_listing

    def observe_owned(self, tree: Tree[Token]) -> str:
        tok = _tokens(tree)[0]
        prefix = decode_string(str(tok))[0]
        if not prefix:
            self.error(tok, "an empty ownership prefix owns everything", hint="drop 'owned'")
        return prefix

    def observe_jobid(self, tree: Tree[Token]) -> str:
        tok = _tokens(tree)[0]
        self.use("attribute", tok, None, context="job id in")
        return str(tok)

    def observe_building(self, tree: Tree[Token]) -> tuple[tuple[str, ...], float | None]:
        states: list[str] = []
        for tok in _tokens(tree):
            self.use("state", tok, None, context="building")
            states.append(str(tok))
        grace: float | None = None
        for sub in _trees(tree, "grace"):
            grace = self.duration(_tokens(sub)[0], positive=False)
        return tuple(states), grace

    def observe_absent_ok(self, tree: Tree[Token]) -> s.AbsentOk:
        states: list[str] = []
        for tok in _tokens(tree):
            self.use("state", tok, None, context="absent ok in")
            states.append(str(tok))
        unless: list[str] = []
        for sub in _trees(tree, "unless"):
            for tok in _tokens(sub):
                self.use("trigger", tok, None, context="absent ok ... unless action")
                unless.append(str(tok))
        return s.AbsentOk(tuple(states), tuple(unless))

    def observe_compare(self, tree: Tree[Token]) -> s.CompareSpec:
        group_tok = _tokens(tree)[0]
        pairs: list[tuple[str, str]] = []
        for pair in _trees(tree, "field_pair"):
            name_tok, field_tok = _tokens(pair)
            self.use("attribute", name_tok, None, context="compare")
            pairs.append((str(name_tok), decode_string(str(field_tok))[0]))
        return s.CompareSpec(str(group_tok), tuple(pairs), _pos(group_tok))

    def observe_job_rule(self, tree: Tree[Token]) -> s.JobRule:
        op_tok, *status_toks, state_tok = _tokens(tree)
        for tok in status_toks:
            if str(tok) not in JOB_STATUSES:
                self.error(
                    tok,
                    f"unknown job status '{tok}'; job rules read {', '.join(JOB_STATUSES)}",
                    hint=did_you_mean(str(tok), JOB_STATUSES),
                )
        self.use("state", state_tok, None, context="a job rule")
        return s.JobRule(
            decode_string(str(op_tok))[0],
            tuple(str(t) for t in status_toks),
            str(state_tok),
            _pos(op_tok),
        )

    def observe_delete_orphans(self, tree: Tree[Token]) -> str:
        tok = _tokens(tree)[0]
        self.use("trigger", tok, None, context="delete orphans via")
        return str(tok)

    # ---- transitions ------------------------------------------------------------------
    def transition(self, tree: Tree[Token]) -> s.TransitionSpec:
        trigger_tok = tree.children[0]
        assert isinstance(trigger_tok, Token)
        trigger = str(trigger_tok)
        params: list[s.ParamSpec] = []
        sources: list[str] = []
        dest = ""
        guard: s.Expr | None = None
        body: Tree[Token] | None = None
        for child in tree.children[1:]:
            if isinstance(child, Token):
                dest = str(child)
                self.use("state", child, trigger, context=f"the destination of '{trigger}'")
            elif child.data == "tparams":
                params = [self.param(p, trigger) for p in _trees(child)]
            elif child.data == "sources":
                for tok in _tokens(child):
                    sources.append(str(tok))
                    self.use("source", tok, trigger, context=f"a source of '{trigger}'")
            elif child.data == "guard":
                guard = self.expr(child.children[0], trigger, trigger_tok)
            elif child.data == "body":
                body = child
        spec = s.TransitionSpec(
            trigger, tuple(sources), dest, params=tuple(params), pos=_pos(trigger_tok), when=guard
        )
        return self.body(spec, body) if body is not None else spec

    def body(self, spec: s.TransitionSpec, tree: Tree[Token]) -> s.TransitionSpec:
        trigger = spec.trigger
        locks: list[str] = []
        steps: list[s.StepSpec] = []
        skip: s.ProbeSpec | None = None
        failure: s.FailureSpec | None = None
        for item in _trees(tree):
            if item.data == "lock":
                for tok in _tokens(item):
                    self.use("ref", tok, trigger, context="lock")
                    if str(tok) not in locks:
                        locks.append(str(tok))
            elif item.data == "skip":
                if skip is not None:
                    self.error(_first_token(item), f"transition '{trigger}' has two 'skip if'")
                skip = self.probe(next(_trees(item)), trigger)
            elif item.data == "step":
                steps.append(self.step(item, trigger))
            elif item.data == "failure":
                if failure is not None:
                    self.error(_first_token(item), f"transition '{trigger}' has two 'on failure'")
                failure = self.failure(item, trigger)
        return dataclasses.replace(
            spec, locks=tuple(locks), skip_if=skip, steps=tuple(steps), on_failure=failure
        )

    def failure(self, tree: Tree[Token], trigger: str) -> s.FailureSpec:
        on_tok, state_tok = _tokens(tree)
        self.use("state", state_tok, trigger, context=f"the failure state of '{trigger}'")
        undo: list[str] = []
        for undo_tree in _trees(tree, "undo"):
            for tok in _tokens(undo_tree):
                self.use("undo", tok, trigger)
                undo.append(str(tok))
        return s.FailureSpec(str(state_tok), tuple(undo), _pos(on_tok))

    # ---- steps ------------------------------------------------------------------------
    def step(self, tree: Tree[Token], trigger: str) -> s.StepSpec:
        name_tok, action_tree, *options = tree.children
        assert isinstance(name_tok, Token) and isinstance(action_tree, Tree)
        fields: dict[str, Any] = {"action": self.action(action_tree, trigger)}
        sets: list[s.SetSpec] = []
        for opt in options:
            assert isinstance(opt, Tree)
            key = str(opt.data)
            if key == "set":
                sets.append(self.set_option(opt, trigger, sets))
                continue
            if key in fields:
                word = "undo" if key == "compensate" else key
                self.error(
                    _first_token(opt) if opt.children else name_tok,
                    f"step '{name_tok}' has more than one '{word}'",
                )
            fields[key] = self.option(opt, trigger, name_tok)
        return s.StepSpec(str(name_tok), pos=_pos(name_tok), sets=tuple(sets), **fields)

    def set_option(self, tree: Tree[Token], trigger: str, earlier: list[s.SetSpec]) -> s.SetSpec:
        name_tok = _tokens(tree)[0]
        value_tree = next(_trees(tree))
        self.use("attribute", name_tok, trigger, context="set")
        if any(x.name == str(name_tok) for x in earlier):
            self.error(name_tok, f"the step sets '{name_tok}' twice")
        if value_tree.data == "output":
            pattern: str | None = None
            for tok in _tokens(value_tree):
                pattern = decode_string(str(tok))[0]
                try:
                    compiled = re.compile(pattern)
                except re.error as exc:
                    self.error(tok, f"bad pattern: {exc}")
                else:
                    if compiled.groups < 1:
                        self.error(
                            tok,
                            "the pattern has no group to take the value from",
                            hint='write the part to keep in parentheses: "JobID: ([0-9]+)"',
                        )
            return s.SetSpec(str(name_tok), None, True, pattern, _pos(name_tok))
        if value_tree.data == "ref":
            value: Any = self.ref(value_tree, trigger, "a set value")
        else:
            value = ("lit", self.literal(value_tree))
        return s.SetSpec(str(name_tok), value, False, None, _pos(name_tok))

    def option(self, tree: Tree[Token], trigger: str, step_tok: Token) -> Any:
        if tree.data == "idempotent":
            return True
        if tree.data == "when":
            return self.expr(tree.children[0], trigger, step_tok)
        if tree.data == "check":
            return self.probe(next(_trees(tree)), trigger)
        if tree.data == "timeout":
            return self.duration(_tokens(tree)[0])
        if tree.data == "compensate":
            return self.action(next(_trees(tree)), trigger)
        count_tok = _tokens(tree)[0]
        count = self.integer(count_tok)
        if count < 0:
            self.error(count_tok, "retry count must be 0 or more")
        every, backoff = 0.0, 1.0
        for sub in _trees(tree):
            tok = _tokens(sub)[0]
            if sub.data == "every":
                every = self.duration(tok, positive=False)
            else:
                backoff = self.number(tok)
                if backoff < 1:
                    self.error(tok, "backoff must be at least 1 (the interval never shrinks)")
        return s.RetrySpec(count, every, backoff)

    def action(self, tree: Tree[Token], trigger: str) -> s.Action:
        toks = _tokens(tree)
        if tree.data == "run":
            return s.RunAction(self.template(toks[0], trigger), on=self.on(tree, trigger))
        if tree.data == "ensure":
            each = toks[0].type == "EACH"
            reverse = any(t.type == "REVERSED" for t in toks)
            ref_tok, state_tok, trigger_tok = [t for t in toks if t.type == "NAME"]
            if reverse and not each:
                reversed_tok = next(t for t in toks if t.type == "REVERSED")
                self.error(
                    reversed_tok,
                    "'reversed' goes with 'ensure each LIST reversed'",
                    hint=f"write 'ensure each {ref_tok} reversed is ...' for a list param",
                )
            self.use("ref", ref_tok, trigger, context="ensure each" if each else "ensure")
            if str(ref_tok) == "self" and not each:
                self.use("state", state_tok, trigger, context="ensure self")
                self.use("trigger", trigger_tok, trigger, context="ensure self")
            return s.EnsureAction(
                str(ref_tok), str(state_tok), str(trigger_tok), each=each, reverse=reverse
            )
        if tree.data == "wait":
            op, expected = self.condition(next(t for t in _trees(tree) if t.data != "on"))
            probe = s.ProbeSpec(
                self.template(toks[0], trigger), op, expected, self.on(tree, trigger), _pos(toks[0])
            )
            every = DEFAULT_WAIT_EVERY
            for sub in _trees(tree, "every"):
                every = self.duration(_tokens(sub)[0])
            return s.WaitAction(probe, self.duration(toks[1]), every)
        return self.call(tree, trigger)

    def call(self, tree: Tree[Token], trigger: str) -> s.CallAction:
        plugin_tree, *arg_trees = _trees(tree)
        plugin_toks = _tokens(plugin_tree)
        plugin = ".".join(str(t) for t in plugin_toks)
        first = plugin_toks[0]
        self.uses.append(Use("plugin", plugin, _pos(first), len(plugin), trigger))
        args: list[tuple[str, Any]] = []
        for arg in arg_trees:
            key_tok, value_tree = arg.children
            assert isinstance(key_tok, Token) and isinstance(value_tree, Tree)
            if any(k == str(key_tok) for k, _ in args):
                self.error(key_tok, f"argument '{key_tok}' is given twice")
            if value_tree.data == "ref":
                value: Any = self.ref(value_tree, trigger, "an argument")
            else:
                value = self.literal(value_tree)
            args.append((str(key_tok), value))
        return s.CallAction(plugin, tuple(args))

    def on(self, tree: Tree[Token], trigger: str | None) -> str | None:
        for sub in _trees(tree, "on"):
            tok = _tokens(sub)[0]
            self.use("ref", tok, trigger, context="on")
            return None if str(tok) == "self" else str(tok)
        return None

    def probe(self, tree: Tree[Token], trigger: str) -> s.ProbeSpec:
        command_tok = _tokens(tree)[0]
        op: s.ProbeOp = "succeeds"
        expected: str | None = None
        for sub in _trees(tree):
            if sub.data != "on":
                op, expected = self.condition(sub)
        return s.ProbeSpec(
            self.template(command_tok, trigger),
            op,
            expected,
            self.on(tree, trigger),
            _pos(command_tok),
        )

    def condition(self, tree: Tree[Token]) -> tuple[s.ProbeOp, str | None]:
        toks = _tokens(tree)
        expected = decode_string(str(toks[0]))[0] if toks else None
        op: s.ProbeOp = tree.data  # type: ignore[assignment]
        return op, expected

    # ---- values -----------------------------------------------------------------------
    def template(self, tok: Token, scope: str | None) -> str:
        """A command string: decoded, its placeholders recorded as value uses and the
        whole string (as written) as a command use, whose shell quoting checks read."""
        text, offsets = decode_string(str(tok))
        try:
            segments = parse_template(text)
        except TemplateError as exc:
            offset = offsets[exc.index] if exc.index < len(offsets) else len(str(tok)) - 1
            self.error(tok, exc.reason, offset=offset)
            return text
        self.uses.append(Use("command", str(tok), _pos(tok), len(str(tok)), scope))
        for seg in segments:
            if isinstance(seg, Placeholder):
                offset = offsets[seg.offset] + 1
                label = seg.name + (f".{seg.attr}" if seg.attr else "")
                self.uses.append(
                    Use(
                        "value",
                        seg.name,
                        s.Pos(tok.line or 0, (tok.column or 0) + offset),
                        len(label),
                        scope,
                        seg.attr,
                        "a {placeholder}",
                    )
                )
        return text

    def literal(self, tree: Tree[Token]) -> Any:
        tok = _first_token(tree)
        kind = tree.data
        if kind == "string":
            return decode_string(str(tok))[0]
        if kind == "int_":
            return self.integer(tok)
        if kind == "float_":
            return self.number(tok)
        return {"true": True, "false": False, "none": None}[str(kind)]

    def integer(self, tok: Token) -> int:
        try:
            return parse_int(str(tok))
        except ValueError as exc:
            self.error(tok, str(exc))
            return 0

    def number(self, tok: Token) -> float:
        try:
            return parse_float(str(tok))
        except ValueError as exc:
            self.error(tok, str(exc))
            return 0.0

    def duration(self, tok: Token, positive: bool = True) -> float:
        try:
            seconds = parse_duration(str(tok))
        except ValueError as exc:
            self.error(tok, str(exc))
            return 1.0
        if positive and seconds <= 0:
            self.error(tok, f"duration '{tok}' must be more than zero")
        return seconds

    def ref(self, tree: Tree[Token], scope: str | None, context: str) -> s.Expr:
        toks = _tokens(tree)
        attr = str(toks[1]) if len(toks) > 1 else None
        self.uses.append(
            Use(
                "value",
                str(toks[0]),
                _pos(toks[0]),
                len(str(toks[0])) + (len(attr) + 1 if attr else 0),
                scope,
                attr,
                context,
            )
        )
        return ("name", str(toks[0])) if attr is None else ("attr", str(toks[0]), attr)

    def expr(
        self, node: Tree[Token] | Token, scope: str | None, anchor: Token, depth: int = 0
    ) -> s.Expr:
        """A guard as the tuple ``Expr`` of spec.py; names recorded as uses. ``anchor``
        (the step or transition name) positions errors in a guard with no token of its
        own, such as ``[[[]]]``."""
        assert isinstance(node, Tree)
        if depth > MAX_EXPR_DEPTH:
            tok = _first_token(node)
            if not any(d.message.startswith("guard nested") for d in self.diagnostics):
                self.error(
                    tok if tok.line else anchor,
                    f"guard nested more than {MAX_EXPR_DEPTH} levels deep",
                )
            return ("lit", None)
        kids = [c for c in node.children if isinstance(c, Tree)]
        sub = (
            [self.expr(k, scope, anchor, depth + 1) for k in kids]
            if node.data not in _LEAVES
            else []
        )
        match node.data:
            case "ref":
                return self.ref(node, scope, "a guard")
            case "or_" | "and_":
                return (node.data[:-1], sub[0], sub[1])
            case "not_":
                return ("not", sub[0])
            case "list":
                return ("list", tuple(sub))
            case "cmp":
                op = str(_tokens(node)[0])
                self.choices(kids[0], kids[1], scope)
                self.choices(kids[1], kids[0], scope)
                return ("cmp", op, sub[0], sub[1])
            case "in_" | "not_in":
                self.choices(kids[0], kids[1], scope)
                return ("cmp", "in" if node.data == "in_" else "not in", sub[0], sub[1])
        return ("lit", self.literal(node))

    def choices(self, name_side: Tree[Token], value_side: Tree[Token], scope: str | None) -> None:
        """Record ``param == "x"`` / ``param in ["x"]`` so enum choices can be checked."""
        if name_side.data != "ref" or len(name_side.children) != 1:
            return
        name = str(name_side.children[0])
        values = [value_side] if value_side.data == "string" else list(_trees(value_side))
        if value_side.data not in ("string", "list"):
            return
        for v in values:
            if v.data == "string":
                tok = _first_token(v)
                self.use("choice", tok, scope, decode_string(str(tok))[0], name=name)


_LEAVES = frozenset({"ref", "string", "int_", "float_", "true", "false", "none"})


def _first_token(tree: Tree[Token]) -> Token:
    """The leftmost token under ``tree``, found without recursion (guards can be deep)."""
    stack: list[Tree[Token] | Token] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            return node
        stack.extend(reversed(node.children))
    return Token("NAME", "", line=0, column=0)

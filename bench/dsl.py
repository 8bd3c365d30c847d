"""Benchmark: parse + compile time of every shipped machine and of generated ~300-line
machines (goal: under 20 ms each, once the parser is built).

Two generated inputs: ``generated-300`` has the shape of the shipped machines (comments,
blank lines, a step per line or two), ``generated-dense-300`` puts every option on every
step — about twice the tokens per line — as a stress case.

Prints one JSON object: the one-off cost of building the Lark parser, then for each input
its line count and the best and median of N compiles in milliseconds. Run it with
``python bench/dsl.py [--repeat N]``; it is a benchmark, not a test, so nothing here
asserts a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fleetlog import dsl  # noqa: E402
from fleetlog.dsl.parser import get_parser  # noqa: E402

GOAL_MS = 20.0


def generated_realistic(transitions: int = 24) -> str:
    """A ~300-line machine shaped like the shipped ones: comments, one step per line or
    two, the options real procedures use."""
    lines = [
        "# generated for bench/dsl.py: the shape of machines/vm.fsm, scaled up",
        'machine big "Generated guest" {',
        "    param host: ref big = none",
        "    param storage: enum(exascale, asm) = exascale",
        '    param image: str = "gold_image"',
        "    secret token",
        "",
        "    initial state s0",
    ]
    lines += [f"    state s{i}" for i in range(1, transitions + 1)]
    lines += [
        "    state ERROR : error",
        "",
        "    observe {",
        '        "running" -> s1',
        '        "ERROR_*" -> ERROR',
        "    }",
    ]
    for i in range(transitions):
        lines += [
            "",
            f"    # stage {i}: deploy and verify",
            f"    transition stage{i} : s{i}, ERROR -> s{i + 1} {{",
            f'        step prepare run "vm_maker --deploy prepare{i} --name {{name}}" on host',
            "                     idempotent timeout 30m",
            f'        step apply   run "vm_maker --deploy apply{i} --name {{name}}" on host',
            '                     retry 2 every 10s when storage == "exascale"',
            '        step verify  wait "vm_maker --status {name}" on host until equals "running"',
            "                     timeout 10m every 10s",
            "        on failure -> ERROR",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def generated_dense(transitions: int = 28) -> str:
    """A ~300-line stress machine: every option on every step, several per line."""
    lines = ['machine dense "generated for the benchmark" {']
    lines += [f"    param p{i}: int = {i}" for i in range(10)]
    lines += [
        "    param host: ref dense = none",
        "    param mode: enum(fast, safe) = safe",
        "    secret token",
        "    initial state s0",
    ]
    lines += [f"    state s{i}" for i in range(1, transitions + 1)]
    lines += [
        "    state failed : error",
        '    observe "status {host.name}" {',
        '        "ok" -> s1',
        '        "ERROR_*" -> failed',
        "    }",
    ]
    for i in range(transitions):
        lines += [
            f"    transition t{i}(n: int = 3) : s{i}, failed -> s{i + 1} when p{i % 10} >= 0 {{",
            "        lock self",
            f'        skip if probe "check {{name}} {i}" contains "done"',
            f'        step a run "cmd --n {{n}} --p {{p{i % 10}}} --t {{token}}" on host'
            " retry 3 every 2s",
            f'        step b call plugin.step{i}(x=1, y=p{i % 10}, z="s") check "probe {{name}}"',
            '        step c run "x {kind}" when mode == "fast" and not (n > 5) undo run "y"',
            '        step d wait "status" until contains "up" timeout 5m every 10s',
            "        on failure -> failed undo [c]",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def time_compile(text: str, name: str, repeat: int) -> dict[str, float | int | bool]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        dsl.compile_source(text, name)
        samples.append((time.perf_counter() - start) * 1000)
    return {
        "lines": text.count("\n") + 1,
        "best_ms": round(min(samples), 3),
        "median_ms": round(statistics.median(samples), 3),
        "under_goal": statistics.median(samples) < GOAL_MS,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    start = time.perf_counter()
    get_parser()
    build_ms = (time.perf_counter() - start) * 1000
    inputs = {p.name: p.read_text() for p in sorted((ROOT / "machines").glob("*.fsm"))}
    inputs["generated-300.fsm"] = generated_realistic()
    inputs["generated-dense-300.fsm"] = generated_dense()
    results = {name: time_compile(text, name, args.repeat) for name, text in inputs.items()}
    print(
        json.dumps(
            {
                "bench": "dsl.compile_source",
                "python": sys.version.split()[0],
                "parser_build_ms": round(build_ms, 1),
                "repeat": args.repeat,
                "goal_ms": GOAL_MS,
                "results": results,
                "all_under_goal": all(r["under_goal"] for r in results.values()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Diskless step plugins (Ocean Stack's diskless image generation).

Each goes through ``ctx.run`` so it behaves the same on the sim, local and ssh backends.

- ``clush(nodes, command)``: the seed's ``clush -S -bw NODESET CMD``: ``command`` is a
  template rendered like a ``run`` step's (``{param}`` shell-quoted, secrets redacted in
  what is shown; ``{node}`` is the node it runs on), run on every node of the set; the
  step fails if any node fails (``-S``) and identical outputs are gathered (``-b``).
- ``cloud_init_result(job)``: read ``/run/cloud-init/result.json`` and record its
  non-fatal errors (the step succeeds; only a missing or malformed file fails it).
- ``extract_boot(job, dest)``: copy the running kernel and initramfs out of the VM as
  ``DEST/vmlinuz-K.new`` and ``DEST/initramfs-K.img.new``.
- ``iscsi_login(servers, target)``: per iSCSI server: its ``wwn_target_prefix``,
  discovery, then login (an existing session counts as logged in).
- ``luks_open(multipath)``: the LUN's ``ID_FS_UUID`` (``/dev/mapper/<uuid>`` with
  multipath, ``/dev/sda`` without), then ``cryptsetup luksOpen`` with the key in /dev/shm.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

__all__ = ["cloud_init_result", "clush", "extract_boot", "iscsi_login", "luks_open"]


class StepFailed(RuntimeError):
    pass


def _nodes(nodes: str) -> list[str]:
    """The node set's names, counted before it is expanded (``fleetlog.limits``): a set
    over the cap, or a malformed one, fails the step and says why."""
    from ClusterShell.NodeSet import NodeSetParseError

    from fleetlog import limits

    try:
        return limits.expand_nodeset(nodes)
    except (NodeSetParseError, ValueError) as exc:
        raise StepFailed(f"clush: bad node set {limits.shown(nodes)}: {exc}") from None


def _fold(names: list[str]) -> str:
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet

    return str(NodeSet.fromlist(names, resolver=RESOLVER_NOGROUP))


def _render(ctx: Any, template: str, extra: dict[str, str]) -> tuple[str, str]:
    from fleetlog.dsl import render

    scope = ctx.scope

    def lookup(name: str, attr: str | None = None) -> Any:
        if attr is None and name in extra:
            return extra[name]
        return scope.lookup(name, attr)

    real = render(template, lookup, scope.secret_names)
    shown = render(template, lookup, scope.secret_names, redact=True)
    return real, shown


def clush(ctx: Any, nodes: str, command: str) -> str:
    outputs: dict[str, list[str]] = {}
    failed: list[str] = []
    shown = command
    for node in _nodes(nodes):
        real, shown = _render(ctx, command, {"node": node})
        res = ctx.run(real, host=node)
        text = (res.stdout + res.stderr).strip()
        if not res.ok:
            failed.append(f"{node}: exit {res.exit_code}: {text.splitlines()[-1] if text else ''}")
        outputs.setdefault(text, []).append(node)
    if failed:
        raise StepFailed(f"clush -S -w {nodes} {shown}: " + "; ".join(failed))
    lines = []
    for text, names in outputs.items():
        lines.append(f"---------------\n{_fold(names)}\n---------------\n{text}")
    return "\n".join(lines)


def _vm(job: str, command: str) -> str:
    return f"pcocc ssh -J {shlex.quote(job)} -p 422 vm0 {command}"


def cloud_init_result(ctx: Any, job: str) -> str:
    res = ctx.run(_vm(job, "cat /run/cloud-init/result.json"))
    if not res.ok:
        raise StepFailed(f"no cloud-init result yet: {(res.stderr or res.stdout).strip()}")
    try:
        v1 = json.loads(res.stdout)["v1"]
        errors = list(v1.get("errors") or [])
    except (ValueError, KeyError, TypeError) as exc:
        raise StepFailed(f"malformed /run/cloud-init/result.json: {exc}") from None
    if not errors:
        return "cloud-init finished without errors"
    listed = "\n".join(f"  - {e}" for e in errors)
    return f"cloud-init finished with {len(errors)} non-fatal error(s):\n{listed}"


def extract_boot(ctx: Any, job: str, dest: str) -> str:
    res = ctx.run(_vm(job, "uname -r"))
    kernel = res.stdout.strip()
    if not res.ok or not kernel:
        raise StepFailed(f"uname -r failed in {job}: {(res.stderr or res.stdout).strip()}")
    copied = []
    for name in (f"vmlinuz-{kernel}", f"initramfs-{kernel}.img"):
        target = f"{dest.rstrip('/')}/{name}.new"
        q = shlex.quote
        cp = ctx.run(f"pcocc scp -J {q(job)} {q('vm0:/boot/' + name)} {q(target)}")
        if not cp.ok:
            raise StepFailed(f"copying {name} failed: {(cp.stderr or cp.stdout).strip()}")
        copied.append(target)
    return "\n".join(copied)


def iscsi_login(ctx: Any, servers: str, target: str) -> str:
    q = shlex.quote
    said = []
    for server in _nodes(servers):
        pre = ctx.run("stacker lio config --get wwn_target_prefix", host=server)
        prefix = pre.stdout.strip()
        if not pre.ok or not prefix:
            raise StepFailed(f"{server}: cannot read wwn_target_prefix: {pre.stderr.strip()}")
        disc = ctx.run(f"iscsiadm -m discovery -t st -p {q(server)}")
        if not disc.ok:
            said_err = (disc.stderr or disc.stdout).strip()
            raise StepFailed(f"discovery on {server} failed: {said_err}")
        wwn = prefix + target
        login = ctx.run(f"iscsiadm -m node -T {q(wwn)} -p {q(server + ':3260')} -l")
        if login.exit_code == 15:
            said.append(f"{server}: {wwn} already logged in")
        elif not login.ok:
            raise StepFailed(f"login to {server} failed: {(login.stderr or login.stdout).strip()}")
        else:
            said.append(f"{server}: logged in to {wwn}")
    return "\n".join(said)


def luks_open(
    ctx: Any,
    multipath: bool,
    keyfile: str = "/dev/shm/luksKey",
    name: str = "luks_root",
    device: str = "/dev/sda",
) -> str:
    q = shlex.quote
    if multipath:
        res = ctx.run(f"udevadm info -q property {q(device)}")
        uuid = next(
            (ln.split("=", 1)[1] for ln in res.stdout.splitlines() if ln.startswith("ID_FS_UUID=")),
            "",
        )
        if not res.ok or not uuid:
            raise StepFailed(f"no ID_FS_UUID for {device}: {(res.stderr or res.stdout).strip()}")
        device = f"/dev/mapper/{uuid}"
    res = ctx.run(f"cryptsetup luksOpen -d {q(keyfile)} {q(device)} {q(name)}")
    if not res.ok:
        raise StepFailed(f"luksOpen {device} failed: {(res.stderr or res.stdout).strip()}")
    return f"{device} opened as /dev/mapper/{name}"

"""Fake tools of Ocean Stack's diskless image generation: building an image with pcocc,
exporting it from the iSCSI servers with stacker, and booting a node out of the DisklessTrap.

Image side (the admin host, e.g. ``top1``; files under ``/volspoms1`` are on the shared
GlusterFS volume, see ``linux.SHARED_VOLUMES``):

- ``prepare-ocean-image.sh VM`` creates ``/volspoms1/pcocc/persistent_drives/VM.qcow2``
  (backing file ``rhel.latest.qcow2``); it refuses to overwrite one (back it up first).
- ``pcocc alloc VM``; ``pcocc status VM``; ``pcocc release VM``;
  ``pcocc ssh -J VM -p 422 vm0 CMD...`` with CMD ``cat /run/cloud-init/result.json``,
  ``reboot``, ``puppet-apply``, ``dracut -fMv``, ``uname -r``, ``true``, ``hostname``;
  ``pcocc scp -J VM vm0:PATH DEST``; ``pcocc console -J VM --tail|--send exit``.
  After ``alloc`` sshd answers only after a few seeded polls (cloud-init still running);
  the result file lists the seed's two non-fatal errors. A reboot lands in the
  DisklessTrap initramfs (console prompt ``root@VM_DisklessTrap:/root#``) once puppet
  installed it; ``console --send exit`` leaves it.
- ``qemu-img convert -f qcow2 -O raw SRC DST`` (``gluster://HOST/path`` accepted); it
  refuses a drive whose VM is still allocated (the qcow2 write lock) and, like the real
  one on GlusterFS, prints "All subvolumes are down" noise on stderr yet exits 0.
- ``stacker lio encrypt -k KEY -s RAW -d ENC`` creates KEY if absent and encrypts.

iSCSI server side: ``stacker lio export -n NAME -W WWN -d ENC -w NODESET``,
``stacker lio config --save``, ``stacker lio config --get wwn_target_prefix``,
``stacker lio list``. A server whose state has ``lio.chap`` (seeded by a test) checks
the CHAP credentials of discovery and login.

Node side (in the DisklessTrap): ``iscsid-conf --multipath yes|no --discovery-auth U P UI PI
--session-auth U P UI PI`` (the DisklessTrap's helper writing the seed's iscsid.conf),
``iscsiadm -m discovery -t st -p SERVER``, ``iscsiadm -m node -T WWN -p SERVER:3260 -l``
(exit 15 when the session exists), ``iscsiadm -m session``,
``mpathconf --enable|--disable ...``, ``udevadm info -q property DEV``,
``cryptsetup luksOpen -d KEYFILE DEV NAME``; the rest (partprobe, lvm, mounts,
systemctl) is in ``linux``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fleetlog.engine.backends.sim import (
    ToolContext,
    ToolFailure,
    ToolResult,
    secret_digest,
    sim_tool,
)
from fleetlog.machines.sim.tools.linux import DEFAULT_UNITS, FS, fs_tool

DRIVES = "/volspoms1/pcocc/persistent_drives"
BACKING = f"{DRIVES}/rhel.latest.qcow2"
KERNEL = "3.10.0-957.35.2.el7.x86_64"
CLOUD_INIT_ERRORS = [
    "('users-groups', TypeError(\"Can not create sudoers rule addition with type u'bool'\",))",
    "('scripts-user', RuntimeError('Runparts: 1 failures in 1 attempted commands',))",
]
GLUSTER_NOISE = "".join(
    f"[2020-01-14 14:43:29.80{3547 + i}] E [MSGID: 108006] "
    "[afr-common.c:5214:__afr_handle_child_down_event] "
    f"0-volspoms1-replicate-{i}: All subvolumes are down. Going offline until atleast one "
    "of them comes back up.\n"
    for i in range(1, 6)
)

DEFAULT_UNITS.update(
    {
        # a diskless node waits in the DisklessTrap's emergency shell until told to boot
        "dracut-emergency": {"active": True, "enabled": True},
        "iscsid": {"active": False, "enabled": False},
        "multipathd": {"active": False, "enabled": False},
    }
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _strip_gluster(path: str) -> str:
    if path.startswith("gluster://"):
        rest = path[len("gluster://") :]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return path


# ----------------------------------------------------------------------------- image
@fs_tool("prepare-ocean-image.sh")
def prepare_image(ctx: ToolContext, fs: FS) -> ToolResult:
    if len(ctx.args) != 1:
        raise ToolFailure("usage: prepare-ocean-image.sh COMPUTE_VM", exit_code=2)
    vm = ctx.args[0]
    drive = f"{DRIVES}/{vm}.qcow2"
    if fs.exists(drive):
        raise ToolFailure(f"prepare-ocean-image.sh: {drive} exists: back it up first")
    fs.write(
        drive,
        {"format": "qcow2", "backing": BACKING, "size": 53687091200, "vm": vm, "puppet": 0},
    )
    ctx.log(f"create {drive}")
    return ToolResult(
        0,
        f"Formatting '{drive}', fmt=qcow2 size=53687091200 backing_file='{BACKING}' "
        "encryption=off cluster_size=65536 lazy_refcounts=off\n",
    )


def _jobs(ctx: ToolContext) -> dict[str, Any]:
    jobs: dict[str, Any] = ctx.state.setdefault("pcocc", {}).setdefault("jobs", {})
    return jobs


def _job_opt(args: list[str]) -> tuple[str | None, list[str]]:
    job, rest, i = None, [], 0
    while i < len(args):
        if args[i] == "-J" and i + 1 < len(args):
            job, i = args[i + 1], i + 2
            continue
        rest.append(args[i])
        i += 1
    return job, rest


def _running(ctx: ToolContext, job: str | None) -> dict[str, Any]:
    if job is None:
        raise ToolFailure("pcocc: no job given (-J)", exit_code=2)
    j: dict[str, Any] | None = _jobs(ctx).get(job)
    if j is None:
        raise ToolFailure(f"pcocc: no such job: {job}")
    return j


@fs_tool("pcocc")
def pcocc(ctx: ToolContext, fs: FS) -> ToolResult:
    if not ctx.args:
        raise ToolFailure("usage: pcocc alloc|status|release|ssh|scp|console ...", exit_code=2)
    verb, args = ctx.args[0], list(ctx.args[1:])
    jobs = _jobs(ctx)
    if verb == "alloc":
        if len(args) != 1:
            raise ToolFailure("usage: pcocc alloc TEMPLATE", exit_code=2)
        vm = args[0]
        if vm in jobs:
            raise ToolFailure(f"pcocc: {vm} is already allocated")
        drive = f"{DRIVES}/{vm}.qcow2"
        if not fs.exists(drive):
            raise ToolFailure(f"pcocc: persistent drive {drive} not found")
        jobs[vm] = {
            "drive": drive,
            "phase": "cloud-init",
            "polls": ctx.random.randrange(3),  # sshd answers once cloud-init is done
            "trap_installed": False,
        }
        ctx.log(f"alloc {vm}")
        return ToolResult(0, f"pcocc/{1000 + ctx.call_number} allocated {vm}\n")
    if verb == "status":
        job = args[0] if args else None
        if job not in jobs:
            return ToolResult(1, f"{job}: not allocated\n")
        return ToolResult(0, f"{job}: running ({jobs[job]['phase']})\n")
    if verb == "release":
        job = args[0] if args else None
        if job in jobs:
            del jobs[job]
            ctx.log(f"release {job}")
        return ToolResult(0, "Terminating the cluster...\n")
    job, rest = _job_opt(args)
    j = _running(ctx, job)
    if verb == "console":
        if rest == ["--tail"]:
            line = {
                "trap": f"root@{job}_DisklessTrap:/root# ",
                "up": f"{job} login: ",
                "cloud-init": "cloud-init[902]: Resolving Dependencies",
            }[j["phase"]]
            return ToolResult(0, line + "\n")
        if rest == ["--send", "exit"]:
            if j["phase"] != "trap":
                raise ToolFailure(f"pcocc: no shell waiting on the console of {job}")
            j["phase"] = "up"
            ctx.log(f"{job} left the DisklessTrap")
            return ToolResult(0, f"root@{job}_DisklessTrap:/root# exit\n")
        raise ToolFailure("usage: pcocc console -J JOB --tail|--send exit", exit_code=2)
    if verb == "ssh":
        if rest[:2] == ["-p", "422"]:
            rest = rest[2:]
        if not rest or rest[0] != "vm0":
            raise ToolFailure("usage: pcocc ssh -J JOB -p 422 vm0 COMMAND...", exit_code=2)
        return _in_vm(ctx, fs, job or "", j, rest[1:])
    if verb == "scp":
        if len(rest) != 2 or not rest[0].startswith("vm0:"):
            raise ToolFailure("usage: pcocc scp -J JOB vm0:PATH DEST", exit_code=2)
        _reachable(j)
        src, dest = rest[0][4:], rest[1]
        drive = fs.read(j["drive"])
        name = src.rsplit("/", 1)[-1]
        if name not in (f"vmlinuz-{KERNEL}", f"initramfs-{KERNEL}.img"):
            raise ToolFailure(f"scp: {src}: No such file or directory")
        fs.write(dest, {"file": name, "initramfs_rebuilt": drive.get("initramfs") == KERNEL})
        ctx.log(f"scp {job}:{src} {dest}")
        return ToolResult(0)
    raise ToolFailure(f"pcocc: unknown command {verb!r}", exit_code=2)


def _reachable(j: dict[str, Any]) -> None:
    if j["phase"] == "cloud-init":
        if j["polls"] > 0:
            j["polls"] -= 1
            raise ToolFailure("ssh: connect to host vm0 port 422: Connection refused", 255)
        j["phase"] = "up"
        j["trap_installed"] = True  # cloud-init's puppet run installed dracut-ccc-modules
    if j["phase"] == "trap":
        raise ToolFailure("ssh: connect to host vm0 port 422: Connection refused", 255)


def _in_vm(ctx: ToolContext, fs: FS, job: str, j: dict[str, Any], cmd: list[str]) -> ToolResult:
    try:
        _reachable(j)
    except ToolFailure as exc:
        # the poll counter must survive the failed connection: not a ToolFailure rollback
        return ToolResult(exc.exit_code, "", exc.message + "\n")
    drive = fs.read(j["drive"])
    if cmd == ["cat", "/run/cloud-init/result.json"]:
        # ``cloud_init`` on the admin host (``fleetlog sim fault add cloud-init``) makes
        # cloud-init finish with other errors, or leave a malformed result file.
        override = ctx.state.get("cloud_init") or {}
        if override.get("malformed"):
            return ToolResult(0, '{"v1": {"errors": [\n')
        result = {
            "v1": {
                "datasource": "DataSourceNoCloud [seed=/dev/sr0][dsmode=net]",
                "errors": list(override.get("errors", CLOUD_INIT_ERRORS)),
            }
        }
        return ToolResult(0, json.dumps(result, indent=1) + "\n")
    if cmd in (["true"], ["hostname"]):
        return ToolResult(0, f"{job}\n" if cmd == ["hostname"] else "")
    if cmd == ["uname", "-r"]:
        return ToolResult(0, KERNEL + "\n")
    if cmd == ["reboot"]:
        j["phase"] = "trap" if j["trap_installed"] else "up"
        ctx.log(f"{job} reboot")
        return ToolResult(0)
    if cmd == ["puppet-apply"]:
        drive["puppet"] = drive.get("puppet", 0) + 1
        fs.write(j["drive"], drive)
        ctx.log(f"{job} puppet-apply")
        return ToolResult(0, "Notice: Applied catalog in 121.63 seconds\n")
    if cmd == ["dracut", "-fMv"]:
        if not drive.get("puppet"):
            raise ToolFailure("dracut: module 'ccc-disklesstrap' not found (run puppet first)")
        drive["initramfs"] = KERNEL
        fs.write(j["drive"], drive)
        ctx.log(f"{job} dracut")
        return ToolResult(
            0, f"*** Creating initramfs image file '/boot/initramfs-{KERNEL}.img' done ***\n"
        )
    raise ToolFailure(f"bash: {' '.join(cmd)}: command not found", exit_code=127)


@fs_tool("qemu-img")
def qemu_img(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    if args[:5] != ["convert", "-f", "qcow2", "-O", "raw"] or len(args) != 7:
        raise ToolFailure("usage: qemu-img convert -f qcow2 -O raw SRC DST", exit_code=2)
    src, dst = _strip_gluster(args[5]), _strip_gluster(args[6])
    content = fs.read(src)
    if not isinstance(content, dict) or content.get("format") != "qcow2":
        raise ToolFailure(f"qemu-img: Could not open '{src}': Image is not in qcow2 format")
    for job, j in _jobs(ctx).items():
        if j["drive"] == src:
            raise ToolFailure(
                f"qemu-img: Could not open '{src}': Failed to get shared \"write\" lock\n"
                f"Is another process using the image [{src}]? (pcocc job {job})"
            )
    fs.write(dst, {**content, "format": "raw", "from": src})
    ctx.log(f"convert {src} {dst}")
    return ToolResult(0, "", GLUSTER_NOISE)


@fs_tool("stacker")
def stacker(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    if args[:1] != ["lio"] or len(args) < 2:
        raise ToolFailure("usage: stacker lio encrypt|export|config|list ...", exit_code=2)
    verb, rest = args[1], args[2:]
    opts: dict[str, str] = {}
    flags: set[str] = set()
    i = 0
    while i < len(rest):
        if rest[i] in ("-k", "-s", "-d", "-n", "-W", "-w", "--get") and i + 1 < len(rest):
            opts[rest[i]] = rest[i + 1]
            i += 2
        else:
            flags.add(rest[i])
            i += 1
    lio = ctx.state.setdefault("lio", {})
    prefix = lio.setdefault("prefix", f"iqn.2020-01.com.stacker.{ctx.host}:")
    exports = lio.setdefault("exports", {})
    if verb == "encrypt":
        key, raw, enc = opts.get("-k"), opts.get("-s"), opts.get("-d")
        if not (key and raw and enc):
            raise ToolFailure("usage: stacker lio encrypt -k KEY -s RAW -d ENC", exit_code=2)
        content = fs.read(raw)
        if not isinstance(content, dict) or content.get("format") != "raw":
            raise ToolFailure(f"stacker: {raw} is not a raw image")
        if not fs.exists(key):
            fs.write(key, f"luks-key-{ctx.random.getrandbits(128):032x}\n")
            ctx.log(f"new key {key}")
        key_sha = _sha(str(fs.read(key)))
        uuid = hashlib.sha256(f"{enc}:{key_sha}".encode()).hexdigest()[:32]
        fs.write(enc, {**content, "format": "luks", "key_sha": key_sha, "uuid": uuid})
        ctx.log(f"encrypt {raw} {enc}")
        return ToolResult(0, f"{enc}: encrypted with {key}\n")
    if verb == "export":
        name, wwn, enc, nodes = opts.get("-n"), opts.get("-W"), opts.get("-d"), opts.get("-w")
        if not (name and wwn and enc and nodes):
            raise ToolFailure(
                "usage: stacker lio export -n NAME -W WWN -d IMAGE -w NODESET", exit_code=2
            )
        content = fs.read(enc)
        if not isinstance(content, dict) or content.get("format") != "luks":
            raise ToolFailure(f"stacker: {enc} is not an encrypted image")
        record = {
            "wwn": prefix + wwn,
            "image": enc,
            "nodes": nodes,
            "uuid": content["uuid"],
            "key_sha": content["key_sha"],
        }
        if exports.get(name) != record:
            exports[name] = record
            ctx.log(f"export {name} to {nodes}")
        return ToolResult(0, f"{prefix}{wwn}: exported to {nodes}\n")
    if verb == "config":
        if "--save" in flags:
            if lio.get("saved") != exports:
                lio["saved"] = json.loads(json.dumps(exports))
                ctx.log("config saved")
            return ToolResult(0, "Configuration saved to /etc/target/saveconfig.json\n")
        if opts.get("--get") == "wwn_target_prefix":
            return ToolResult(0, prefix + "\n")
        raise ToolFailure("usage: stacker lio config --save|--get wwn_target_prefix", 2)
    if verb == "list":
        return ToolResult(
            0, "".join(f"{n} {r['wwn']} {r['nodes']}\n" for n, r in sorted(exports.items()))
        )
    raise ToolFailure(f"stacker: unknown command lio {verb}", exit_code=2)


# ----------------------------------------------------------------------------- node
ISCSID_CONF = "/etc/iscsi/iscsid.conf"
INITIATOR = "/etc/iscsi/initiatorname.iscsi"
_TIMEOUTS = """iscsid.startup = /bin/systemctl start iscsid.socket iscsiuio.socket
node.startup = automatic
node.leading_login = No
node.session.timeo.replacement_timeout = {replacement}
node.conn[0].timeo.login_timeout = 15
node.conn[0].timeo.logout_timeout = 15
node.session.err_timeo.abort_timeout = 15
node.session.err_timeo.lu_reset_timeout = 30
node.session.err_timeo.tgt_reset_timeout = 30
node.session.initial_login_retry_max = 8
node.session.cmds_max = 128
node.session.queue_depth = 32
node.session.xmit_thread_priority = -20
node.session.iscsi.InitialR2T = No
node.session.iscsi.ImmediateData = Yes
node.session.iscsi.FirstBurstLength = 262144
node.session.iscsi.MaxBurstLength = 16776192
node.conn[0].iscsi.MaxRecvDataSegmentLength = 262144
node.conn[0].iscsi.MaxXmitDataSegmentLength = 0
discovery.sendtargets.iscsi.MaxRecvDataSegmentLength = 32768
node.conn[0].iscsi.HeaderDigest = None
node.session.nr_sessions = 1
node.session.iscsi.FastAbort = Yes
node.session.scan = auto
"""
_AUTH = """discovery.sendtargets.auth.authmethod = CHAP
discovery.sendtargets.auth.username = {0}
discovery.sendtargets.auth.password = {1}
discovery.sendtargets.auth.username_in = {2}
discovery.sendtargets.auth.password_in = {3}
node.session.auth.authmethod = CHAP
node.session.auth.username_in = {6}
node.session.auth.password_in = {7}
node.session.auth.username = {4}
node.session.auth.password = {5}
"""


@fs_tool("iscsid-conf")
def iscsid_conf(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    try:
        mp = args[args.index("--multipath") + 1]
        d = args.index("--discovery-auth")
        s = args.index("--session-auth")
        creds = args[d + 1 : d + 5] + args[s + 1 : s + 5]
    except (ValueError, IndexError):
        creds = []
        mp = ""
    if len(creds) != 8 or mp.lower() not in ("yes", "no", "true", "false"):
        raise ToolFailure(
            "usage: iscsid-conf --multipath yes|no --discovery-auth USER PASS USER_IN PASS_IN "
            "--session-auth USER PASS USER_IN PASS_IN",
            exit_code=2,
        )
    if not all(creds):
        raise ToolFailure("iscsid-conf: empty CHAP user name or password", exit_code=2)
    # The CHAP names and passwords are secrets: the world keeps their digests (what the
    # servers compare), never their values, and logs the call with digests too.
    creds = [ctx.conceal(c) for c in creds]
    multipath = mp.lower() in ("yes", "true")
    text = _TIMEOUTS.format(replacement=15 if multipath else 600) + _AUTH.format(*creds)
    if not multipath:
        text = text.replace(
            "node.conn[0].timeo.logout_timeout = 15\n",
            "node.conn[0].timeo.logout_timeout = 15\nnode.conn[0].timeo.noop_out_interval = 0\n"
            "node.conn[0].timeo.noop_out_timeout = 0\n",
        )
    if not fs.exists(INITIATOR):
        fs.write(INITIATOR, f"InitiatorName=iqn.1994-05.com.redhat:{ctx.host}\n")
    if not fs.exists(ISCSID_CONF) or fs.read(ISCSID_CONF) != text:
        fs.write(ISCSID_CONF, text)
        ctx.log(f"write {ISCSID_CONF}")
    return ToolResult(0)


def _conf_value(fs: FS, key: str) -> str | None:
    if not fs.exists(ISCSID_CONF):
        return None
    for line in str(fs.read(ISCSID_CONF)).splitlines():
        k, sep, v = line.partition(" = ")
        if sep and k.strip() == key:
            return v.strip()
    return None


def _chap_ok(fs: FS, server_state: dict[str, Any], prefix: str) -> bool:
    """A server seeded with ``lio.chap`` checks the node's credentials (both sides hold
    digests: the world never stores a secret's value)."""
    chap = server_state.get("lio", {}).get("chap")
    if not chap:
        return True
    expected = chap.get(prefix, {})
    for key in ("username", "password", "username_in", "password_in"):
        if key in expected and _conf_value(fs, f"{prefix}.auth.{key}") != expected[key]:
            return False
    return True


def _in_nodeset(host: str, nodes: str) -> bool:
    """Whether ``host`` is in the node set ``nodes`` (counted before it is expanded:
    fleetlog.limits; a malformed or over-large set names no host)."""
    from ClusterShell.NodeSet import NodeSetParseError

    from fleetlog import limits

    try:
        return host in limits.expand_nodeset(nodes)
    except (NodeSetParseError, ValueError):
        return False


@fs_tool("iscsiadm")
def iscsiadm(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    opts: dict[str, str] = {}
    flags: set[str] = set()
    i = 0
    while i < len(args):
        if args[i] in ("-m", "-t", "-p", "-T") and i + 1 < len(args):
            opts[args[i]] = args[i + 1]
            i += 2
        else:
            flags.add(args[i])
            i += 1
    iscsi = ctx.state.setdefault("iscsi", {})
    sessions: dict[str, str] = iscsi.setdefault("sessions", {})
    mode = opts.get("-m")
    if mode == "session":
        if not sessions:
            raise ToolFailure("iscsiadm: No active sessions.", exit_code=21)
        return ToolResult(
            0,
            "".join(
                f"tcp: [{n}] {srv}:3260,1 {wwn} (non-flash)\n"
                for n, (srv, wwn) in enumerate(sorted(sessions.items()), start=1)
            ),
        )
    portal = opts.get("-p", "")
    server = portal.split(":", 1)[0]
    if not server:
        raise ToolFailure("iscsiadm: no portal given (-p)", exit_code=7)
    srv_state = dict(ctx.world.host_state(server))
    if not srv_state:
        raise ToolFailure(f"iscsiadm: cannot make connection to {server}: No route to host", 4)
    exports = srv_state.get("lio", {}).get("saved") or srv_state.get("lio", {}).get("exports", {})
    visible = {n: r for n, r in exports.items() if _in_nodeset(ctx.host, r["nodes"])}
    if mode == "discovery":
        if opts.get("-t") not in ("st", "sendtargets"):
            raise ToolFailure("usage: iscsiadm -m discovery -t st -p SERVER", exit_code=2)
        if not _chap_ok(fs, srv_state, "discovery.sendtargets"):
            raise ToolFailure(
                f"iscsiadm: discovery login to {server} rejected: initiator failed authorization",
                exit_code=24,
            )
        if not visible:
            raise ToolFailure("iscsiadm: No portals found", exit_code=21)
        found = sorted(r["wwn"] for r in visible.values())
        if iscsi.setdefault("discovered", {}).get(server) != found:
            iscsi["discovered"][server] = found
            ctx.log(f"discovered {server}")
        return ToolResult(0, "".join(f"{server}:3260,1 {w}\n" for w in found))
    if mode == "node" and "-l" in flags:
        wwn = opts.get("-T", "")
        if wwn not in iscsi.get("discovered", {}).get(server, []):
            raise ToolFailure("iscsiadm: No records found (run discovery first)", exit_code=21)
        if sessions.get(server) == wwn:
            raise ToolFailure(
                "iscsiadm: default: 1 session requested, but 1 already present.", exit_code=15
            )
        record = next((r for r in visible.values() if r["wwn"] == wwn), None)
        if record is None or not _chap_ok(fs, srv_state, "node.session"):
            raise ToolFailure(
                f"iscsiadm: Could not login to [iface: default, target: {wwn}, portal: "
                f"{server},3260].\niscsiadm: initiator reported error (24 - iSCSI login "
                "failed due to authorization failure)",
                exit_code=24,
            )
        sessions[server] = wwn
        devices = ctx.state.setdefault("devices", {})
        dev = f"/dev/sd{chr(ord('a') + len(sessions) - 1)}"
        devices[dev] = {
            "ro": False,
            "uuid": record["uuid"],
            "key_sha": record["key_sha"],
            "luks": True,
        }
        ctx.log(f"login {server} {wwn}")
        _refresh_multipath(ctx)
        return ToolResult(
            0, f"Login to [iface: default, target: {wwn}, portal: {server},3260] successful.\n"
        )
    raise ToolFailure("usage: iscsiadm -m discovery|node|session ...", exit_code=2)


def _refresh_multipath(ctx: ToolContext) -> None:
    """multipathd maps every iSCSI path of one LUN to ``/dev/mapper/<uuid>``."""
    devices = ctx.state.setdefault("devices", {})
    running = ctx.state.get("units", {}).get("multipathd", {}).get("active")
    for name, dev in list(devices.items()):
        if name.startswith("/dev/sd") and dev.get("luks") and running:
            mapped = f"/dev/mapper/{dev['uuid']}"
            if mapped not in devices:
                devices[mapped] = {k: v for k, v in dev.items() if k != "ro"} | {"ro": False}
                ctx.log(f"multipath {mapped}")


@fs_tool("mpathconf")
def mpathconf(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    units = ctx.state.setdefault("units", {})
    unit = units.setdefault("multipathd", dict(DEFAULT_UNITS["multipathd"]))
    if "--enable" in args:
        text = (
            "defaults {\n polling_interval 10\n failback immediate\n no_path_retry queue\n"
            " user_friendly_names yes\n find_multipaths yes\n prio random\n"
            ' uid_attribute ID_FS_UUID\n}\nblacklist {\n devnode "^zram.*"\n}\n'
        )
        if not fs.exists("/etc/multipath.conf"):
            fs.write("/etc/multipath.conf", text)
            ctx.log("write /etc/multipath.conf")
        if "--with_multipathd" in args and not unit["active"]:
            unit["active"] = True
            ctx.log("start multipathd")
        _refresh_multipath(ctx)
        return ToolResult(0)
    if "--disable" in args:
        if fs.remove("/etc/multipath.conf"):
            ctx.log("rm /etc/multipath.conf")
        if unit["active"]:
            unit["active"] = False
            ctx.log("stop multipathd")
        return ToolResult(0)
    raise ToolFailure("usage: mpathconf --enable|--disable [--with_multipathd y|n]", 2)


@sim_tool("udevadm")
def udevadm(ctx: ToolContext) -> ToolResult:
    args = list(ctx.args)
    if args[:3] != ["info", "-q", "property"] or len(args) != 4:
        raise ToolFailure("usage: udevadm info -q property DEVICE", exit_code=2)
    dev = ctx.state.get("devices", {}).get(args[3])
    if dev is None:
        raise ToolFailure(f'Unknown device "{args[3]}": No such device', exit_code=4)
    lines = [f"DEVNAME={args[3]}"]
    if dev.get("luks"):
        lines += [f"ID_FS_UUID={dev['uuid']}", "ID_FS_TYPE=crypto_LUKS"]
    return ToolResult(0, "\n".join(lines) + "\n")


@fs_tool("cryptsetup")
def cryptsetup(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    if len(args) != 5 or args[0] != "luksOpen" or args[1] != "-d":
        raise ToolFailure("usage: cryptsetup luksOpen -d KEYFILE DEVICE NAME", exit_code=2)
    keyfile, device, name = args[2], args[3], args[4]
    devices = ctx.state.setdefault("devices", {})
    dev = devices.get(device)
    if dev is None:
        raise ToolFailure(f"Device {device} does not exist or access denied.", exit_code=4)
    if not dev.get("luks"):
        raise ToolFailure(f"Device {device} is not a valid LUKS device.", exit_code=1)
    mapped = f"/dev/mapper/{name}"
    if mapped in devices:
        raise ToolFailure(f"Device {name} already exists.", exit_code=5)
    if not fs.exists(keyfile):
        raise ToolFailure(f"Failed to open key file {keyfile}.", exit_code=1)
    if _sha(str(fs.read(keyfile))) != dev["key_sha"]:
        raise ToolFailure("No key available with this passphrase.", exit_code=2)
    devices[mapped] = {
        "ro": False,
        "partitions": [{"fs": "xfs"}, {"vg": "system", "lvs": [{"name": "var", "fs": "xfs"}]}],
    }
    ctx.log(f"luksOpen {device} {name}")
    return ToolResult(0)


def diskless_site(
    world: Any,
    *,
    admin: str = "top1",
    servers: tuple[str, ...] = ("iscsi_srv1", "iscsi_srv2"),
    chap: dict[str, dict[str, str]] | None = None,
) -> None:
    """Seed the admin host and the iSCSI servers (nodes need nothing: they are trapped).

    ``chap`` ({"discovery.sendtargets": {...}, "node.session": {...}}) makes the servers
    check the nodes' CHAP credentials; only their digests are stored.
    """
    world.set_host_state(admin, {"role": "admin", "hostname": admin})
    for srv in servers:
        state: dict[str, Any] = {"role": "iscsi_server", "hostname": srv}
        if chap:
            digests = {
                prefix: {key: secret_digest(value) for key, value in creds.items()}
                for prefix, creds in chap.items()
            }
            state["lio"] = {"chap": digests}
        world.set_host_state(srv, state)


@sim_tool("reboot")
def reboot(ctx: ToolContext) -> ToolResult:
    """A diskless node keeps nothing across a reboot: it comes back in the DisklessTrap."""
    keep = {k: v for k, v in ctx.state.items() if k in ("role", "hostname", "quirks")}
    ctx.state.clear()
    ctx.state.update(keep)
    ctx.log("reboot")
    return ToolResult(0)

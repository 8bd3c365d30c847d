"""docs/first-machine.md, executed: every file it shows is written from its block, every
command it shows is run in order from a clean temporary directory, packaging included.

The commands run in a fresh virtualenv that sees this checkout's fleetlog (a ``.pth``
adds the project's site-packages) but installs into its own, so ``pip install`` of the
example package never touches the project's environment. A console line ending in
``# exit N`` must exit N; every other line must succeed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "first-machine.md"
EXAMPLE = ROOT / "examples" / "first-machine"
FILE_LANGS = ("fsm", "toml", "python")


def blocks() -> list[tuple[str, str]]:
    """Every fenced block of the page, in order: (language, body)."""
    return re.findall(r"^```(\w+)\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def file_path(lang: str, body: str) -> str | None:
    """A file block names its path on its first line: ``# motd-steps/pyproject.toml``."""
    if lang not in FILE_LANGS:
        return None
    m = re.match(r"# ([\w./-]+)(:|\n|$)", body)
    return m.group(1) if m else None


def script() -> str:
    """The page as one shell script: files written, commands run, exit codes checked."""
    out = ["set -u"]
    for lang, body in blocks():
        path = file_path(lang, body)
        if path is not None:
            out.append(f"mkdir -p {shlex.quote(str(Path(path).parent))}")
            out.append(f"cat > {shlex.quote(path)} <<'FLEETLOG_DOC_EOF'\n{body}FLEETLOG_DOC_EOF")
        elif lang == "console":
            for line in body.splitlines():
                if not line.strip():
                    continue
                m = re.search(r"#\s*exit (\d+)\s*$", line)
                want = m.group(1) if m else "0"
                shown = shlex.quote(line)
                out.append(f'echo "\\$ "{shown} >&2; echo "\\$ "{shown}')
                out.append(line)
                out.append(
                    f'rc=$?; if [ "$rc" != {want} ]; then echo "exit $rc, not {want}: "'
                    f"{shown} >&2; exit 100; fi"
                )
    return "\n".join(out) + "\n"


def test_the_page_shows_every_step() -> None:
    langs = [lang for lang, _ in blocks()]
    assert langs.count("console") >= 5
    paths = [file_path(lang, body) for lang, body in blocks()]
    assert {"machines/motd.fsm", "motd-steps/pyproject.toml", "motd-steps/motd_steps.py"} <= set(
        p for p in paths if p
    )
    text = DOC.read_text()
    for needed in ("fleetlog.steps", "FLEETLOG_MACHINES", "--backend local", "`host` param"):
        assert needed in text, needed


def test_the_example_directory_holds_the_pages_files() -> None:
    """examples/first-machine is what the page writes, byte for byte."""
    shown = {p: body for lang, body in blocks() if (p := file_path(lang, body))}
    on_disk = {
        str(f.relative_to(EXAMPLE)): f.read_text() for f in EXAMPLE.rglob("*") if f.is_file()
    }
    assert on_disk == shown


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv seeing this checkout's fleetlog, with a ``fleetlog`` command."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "fleetlog-checkout.pth").write_text(
        f"import site; site.addsitedir({ours!r})\n"
    )
    cli = env_dir / "bin" / "fleetlog"
    cli.write_text(f"#!{python}\nfrom fleetlog.engine.cli import main\nmain()\n")
    cli.chmod(0o755)
    return env_dir


def test_the_page_runs_from_an_empty_directory(tmp_path: Path, venv: Path) -> None:
    work = tmp_path / "lab"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEETLOG_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        ["bash", "-c", script()],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "Traceback" not in log
    # The plugin came from the installed package: found through its entry point.
    site = next(iter(venv.glob("lib/python*/site-packages")))
    assert any(site.glob("motd_steps-*.dist-info")), log
    assert not list(Path(sysconfig.get_paths()["purelib"]).glob("motd_steps*"))
    # What the page promises, as the commands said it.
    assert "ok  motd" in done.stdout
    assert "motd/welcome write: absent -> present (dry run" in done.stdout
    assert 'motd.render(path="' in done.stdout  # the dry run fills the call's row
    assert "hello from fleetlog\n-- motd/welcome, managed by fleetlog\n" in done.stdout
    assert "the local backend runs commands only on this machine (localhost), but step " in (
        done.stderr
    )
    assert "--param host=localhost" in done.stderr
    assert "failed at step render -> failed" in done.stdout
    assert "completed -> absent" in done.stdout
    assert not (work / "motd.txt").exists()
    # The page's files are what it showed.
    assert (work / "machines" / "motd.fsm").read_text() == (
        EXAMPLE / "machines" / "motd.fsm"
    ).read_text()

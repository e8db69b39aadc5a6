"""Run the code blocks of a markdown page the way a reader would paste them.

The convention (docs/index.md, "Docs that run"): an HTML comment on the line right before a
fence says what the block is.

    <!-- run: shell -->                      bash, in the page's one shell session
    <!-- run: python -->                     a Python program (python3 <file>)
    <!-- run: python file=first_task.py -->  saved as first_task.py, then run as such
    <!-- run: file=check_bundle.py -->       only saved (a later block runs it)
    <!-- run: output -->                     what the run block before it prints
    <!-- run: transcript -->                 `$ command` lines run, the lines below each one
                                             are what it prints
    <!-- norun: REASON -->                   not run, and why (a reason is required)

Attributes of a run tag: `ports=5571,5572` (those port numbers, in every block and output of
the page, become free ports for the run and are mapped back before comparing), `status=fail`
(the block must exit non-zero), `timeout=SECONDS`.

All blocks of a page run in order in one temp dir and one bash session (so `cd`, `export`,
`&` and `kill %1` work across blocks as in a terminal); HOME is a fresh dir inside it. When
the page ends every process the session started is stopped.

Expected output is compared line by line with runs of blanks squeezed: `…` inside a line
matches any text, a line `...` matches any number of lines, a run of 12 or more hex
digits matches any such run (keys, hashes and ids differ on every run), and a date with its
time of day (`2026-11-30 18:50:48,740`, `…T18:50:48Z`) matches any other.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TAG = re.compile(r"^<!--\s*(run|norun):\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,})\s*([\w+-]*)")
PASTEABLE = {"python", "py", "bash", "sh", "shell", "console"}
COMMANDS = ("ledger-net ", "python ", "pip ", "curl ", "alembic ", "bash ", "export ")
KINDS = {"shell", "python", "output", "transcript", "file"}
HEX = re.compile(r"[0-9a-f]{12,}")
WHEN = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?Z?")  # a date and time of day
SENTINEL = "__doc_harness_block_done__"


@dataclass
class Block:
    page: str
    line: int             # 1-based line of the opening fence
    lang: str
    text: str
    tag: str | None = None           # "run" / "norun" / None
    kind: str = ""                   # shell, python, output, transcript, file
    attrs: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def pasteable(self) -> bool:
        """A block a reader would paste: code in a shell or Python, a `$ command` transcript, or
        an untyped block whose first line is a command (`ledger-net …`, `python …`, …)."""
        first = self.text.lstrip("\n").split("\n", 1)[0]
        return self.lang in PASTEABLE or first.startswith("$ ") or (not self.lang and first.startswith(COMMANDS))


class DocFormatError(AssertionError):
    pass


def parse(path: Path) -> list[Block]:
    """Every fenced block of a page, with its tag if the line before the fence has one."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m.groups()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(ticks):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        block = Block(path.name, i + 1, lang.lower(), "\n".join(body) + "\n")
        tag = TAG.match(lines[i - 1].strip()) if i > 0 else None
        if tag:
            _read_tag(block, tag.group(1), tag.group(2))
        blocks.append(block)
        i = j + 1
    return blocks


def _read_tag(block: Block, tag: str, rest: str) -> None:
    block.tag = tag
    if tag == "norun":
        if not rest:
            raise DocFormatError(f"{block.where}: a norun tag must say why (<!-- norun: REASON -->)")
        block.reason = rest
        return
    words = shlex.split(rest)
    if not words:
        raise DocFormatError(f"{block.where}: a run tag needs a kind: {sorted(KINDS)}")
    kind, attrs = words[0], words[1:]
    if "=" in kind:  # `run: file=NAME`
        kind, attrs = "file", words
    if kind not in KINDS:
        raise DocFormatError(f"{block.where}: unknown run kind {kind!r}; known: {sorted(KINDS)}")
    block.kind = kind
    for a in attrs:
        key, sep, value = a.partition("=")
        if not sep or key not in {"file", "ports", "status", "timeout"}:
            raise DocFormatError(f"{block.where}: unknown run attribute {a!r}")
        block.attrs[key] = value
    if kind == "file" and "file" not in block.attrs:
        raise DocFormatError(f"{block.where}: run: file needs file=NAME")


# ------------------------------------------------------------------ matching

def _line_pattern(line: str) -> str:
    out = []
    for piece in re.split(f"(…|{WHEN.pattern}|{HEX.pattern})", line):
        if piece == "…":
            out.append(".*")
        elif WHEN.fullmatch(piece):
            out.append(WHEN.pattern)
        elif HEX.fullmatch(piece):
            out.append(HEX.pattern)
        else:
            out.append(re.escape(piece))
    return "".join(out)


def _squeeze(line: str) -> str:
    return " ".join(line.split())


def output_matches(expected: str, actual: str) -> bool:
    """Whether ACTUAL is what EXPECTED shows, wildcards and all (see the module docstring)."""
    want = [_squeeze(line) for line in expected.strip("\n").split("\n")] if expected.strip() else []
    got = [_squeeze(line) for line in actual.strip("\n").split("\n")] if actual.strip() else []
    pattern = "".join(r"(?:[^\n]*\n)*?" if w == "..." else _line_pattern(w) + r"\n" for w in want)
    return re.fullmatch(pattern, "".join(g + "\n" for g in got), re.DOTALL) is not None


def first_difference(expected: str, actual: str) -> str:
    """A readable hint at where EXPECTED and ACTUAL part (for the failure message)."""
    want = [_squeeze(line) for line in expected.strip("\n").split("\n")]
    got = [_squeeze(line) for line in actual.strip("\n").split("\n")]
    for n, w in enumerate(want):
        if w == "...":
            return "(after a `...` line; compare the whole output)"
        if n >= len(got):
            return f"expected line {n + 1} {w!r}, output ended"
        if not re.fullmatch(_line_pattern(w), got[n]):
            return f"line {n + 1}: expected {w!r}, got {got[n]!r}"
    return f"output has {len(got) - len(want)} more line(s) than shown: {got[len(want):][:3]!r}"


# ------------------------------------------------------------------ running

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Session:
    """One bash process for a page, fed block after block, in a fresh temp dir."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        home = workdir / ".home"
        home.mkdir()
        bindir = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_NET_", "PYTEST_"))}
        env.update(HOME=str(home), PATH=bindir + os.pathsep + env.get("PATH", ""), PYTHONUNBUFFERED="1",
                   TERM="dumb", COLUMNS="200")
        if shutil.which("python", path=env["PATH"]) is None:  # pragma: no cover - a venv has one
            (home / "bin").mkdir()
            (home / "bin" / "python").symlink_to(sys.executable)
            env["PATH"] = str(home / "bin") + os.pathsep + env["PATH"]
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=workdir, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.count = 0

    def run(self, script: str, timeout: float) -> tuple[int, str]:
        """Run SCRIPT (bash) in the session; (exit status, stdout and stderr together)."""
        self.count += 1
        path = self.workdir / f".block{self.count}.sh"
        out = self.workdir / f".block{self.count}.out"
        path.write_text(script, encoding="utf-8")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"source {path} > {out} 2>&1 < /dev/null; echo \"{SENTINEL} $?\"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        buffer = ""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout:.0f} s; output so far:\n{_read(out)}")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 65536).decode("utf-8", "replace")
            if not chunk:
                raise AssertionError(f"the shell ended (a block ran `exit`?); output:\n{_read(out)}")
            buffer += chunk
            m = re.search(SENTINEL + r" (\d+)\n", buffer)
            if m:
                return int(m.group(1)), _read(out)

    def close(self) -> None:
        """Stop everything the page started: SIGTERM to the session's process group, then SIGKILL."""
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            return
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.1)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@dataclass
class Step:
    """One thing to run and, if the doc shows it, what it must print."""
    where: str
    script: str
    expected: str | None
    must_fail: bool
    timeout: float
    shown: str            # the command as the doc shows it (for messages)


def steps_of(blocks: list[Block], ports: dict[str, str]) -> list[Step]:
    """The page's run blocks as steps, ports substituted, outputs attached."""
    steps: list[Step] = []
    runs = [b for b in blocks if b.tag == "run"]
    for n, b in enumerate(runs):
        text = substitute(b.text, ports)
        timeout = float(b.attrs.get("timeout", "60"))
        fail = b.attrs.get("status") == "fail"
        if b.kind == "output":
            if not steps or steps[-1].expected is not None or runs[n - 1].kind in ("output", "transcript", "file"):
                raise DocFormatError(f"{b.where}: an output block must follow a shell or python run block")
            steps[-1].expected = b.text  # the doc's own ports: the run's output is mapped back to them
        elif b.kind == "shell":
            steps.append(Step(b.where, text, None, fail, timeout, b.text))
        elif b.kind in ("python", "file"):
            name = b.attrs.get("file", f".doc_block_{b.line}.py")
            script = f"cat > {shlex.quote(name)} <<'__DOC_HARNESS_EOF__'\n{text}__DOC_HARNESS_EOF__\n"
            if b.kind == "python":
                script += f"python {shlex.quote(name)}\n"
            steps.append(Step(b.where, script, None, fail, timeout, b.text))
        elif b.kind == "transcript":
            steps.extend(_transcript_steps(b, ports, timeout))
    return steps


def _transcript_steps(b: Block, ports: dict[str, str], timeout: float) -> list[Step]:
    steps: list[Step] = []
    lines = b.text.rstrip("\n").split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise DocFormatError(f"{b.where}: a transcript starts with a `$ command` line")
        command = lines[i][2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + "\n" + lines[i]
        out: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            out.append(lines[i])
            i += 1
        steps.append(Step(b.where, substitute(command, ports) + "\n", "\n".join(out), b.attrs.get("status") == "fail",
                          timeout, command))
    return steps


def substitute(text: str, ports: dict[str, str]) -> str:
    for doc_port, real in ports.items():
        text = re.sub(rf"(?<!\d){doc_port}(?!\d)", real, text)
    return text


def run_page(path: Path, workdir: Path) -> list[str]:
    """Run a page's blocks in order; the list of failures (empty when the page runs as shown)."""
    blocks = parse(path)
    doc_ports = sorted({p for b in blocks if b.tag == "run" for p in b.attrs.get("ports", "").split(",") if p})
    ports = {p: str(free_port()) for p in doc_ports}
    back = {v: k for k, v in ports.items()}
    steps = steps_of(blocks, ports)
    session = Session(workdir)
    failures: list[str] = []
    try:
        for step in steps:
            status, output = session.run(step.script, step.timeout)
            output = substitute(output, back)
            if step.must_fail and status == 0:
                failures.append(f"{step.where}: expected to fail, exited 0:\n{step.shown}\n--- output:\n{output}")
            elif not step.must_fail and status != 0:
                failures.append(f"{step.where}: exit status {status}:\n{step.shown}\n--- output:\n{output}")
            elif step.expected is not None and not output_matches(step.expected, output):
                failures.append(f"{step.where}: output differs from the doc ({first_difference(step.expected, output)})"
                                f":\n{step.shown}\n--- the doc shows:\n{step.expected}\n--- the run printed:\n{output}")
            if failures:
                break  # the page is a sequence: later blocks build on this one
    finally:
        session.close()
    return failures

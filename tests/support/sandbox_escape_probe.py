"""A hostile program that tries every way out of a sandbox it knows, and reports what it got.

It is run as a `code` task's script (``python probe.py ARGS_JSON``) and, for the warm workers,
through ``escape_probe_job`` registered by import path. ``ARGS_JSON`` names what to aim at: the
node's pid, its HTTP port, PostgreSQL's TCP address and socket path, and the names of files to
look for. The report is one JSON line; the tests read it and assert that nothing of value came
back. This module holds no tests.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import sys
import threading

SKIP_WALK = ("/proc", "/sys", "/dev", "/usr/share", "/usr/lib/locale")
MAX_FILES = 200_000


def _try(fn):  # type: ignore[no-untyped-def]
    try:
        return {"ok": True, "value": fn()}
    except BaseException as exc:  # report every refusal, whatever its type
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}


def _walk(top: str, names: set[str], found: list[str]) -> int:
    count = 0
    for root, dirs, files in os.walk(top, onerror=lambda e: None):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP_WALK]
        for f in files:
            count += 1
            if f in names or any(n in os.path.join(root, f) for n in names if "/" in n):
                path = os.path.join(root, f)
                found.append(path + " => " + repr(_try(lambda p=path: open(p, "rb").read(64).hex())))
        if count > MAX_FILES:
            break
    return count


def _proc_links(names: set[str], found: list[str]) -> dict[str, object]:
    seen: dict[str, object] = {"pids": [], "environ_hits": []}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        seen["pids"].append(int(entry))  # type: ignore[attr-defined]
        for link in ("cwd", "root"):
            target = f"/proc/{entry}/{link}"
            listing = _try(lambda t=target: os.listdir(t))
            if listing["ok"]:
                for name in listing["value"]:
                    if name in names:
                        found.append(f"{target}/{name}")
        env = _try(lambda e=entry: open(f"/proc/{e}/environ", "rb").read())
        if env["ok"]:
            seen["environ_hits"].append(env["value"].decode(errors="replace")[:2000])  # type: ignore[attr-defined]
    return seen


def _connect_tcp(host: str, port: int) -> object:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((host, port))
        return "connected"
    finally:
        s.close()


def _connect_unix(path: str) -> object:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return "connected"
    finally:
        s.close()


def _ptrace(pid: int) -> object:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "attached"


def _new_user_namespace() -> object:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER: a way to regain capabilities
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "unshared"


def _fill_disk(where: str, cap: int) -> int:
    written = 0
    block = b"\0" * (1 << 20)
    try:
        with open(os.path.join(where, "filler.bin"), "wb") as fh:
            while written < cap:
                fh.write(block)
                fh.flush()
                written += len(block)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
    return written


def _daemon() -> object:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - must never run
        os.setsid()
        threading.Event().wait(600)
        os._exit(0)
    return pid


def probe(args: dict[str, object]) -> dict[str, object]:
    """Try everything; return what happened."""
    names = set(args.get("names", []))  # type: ignore[arg-type]
    found: list[str] = []
    report: dict[str, object] = {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid()}
    report["walked"] = _walk("/", names, found)
    report["proc"] = _proc_links(names, found)
    report["mountinfo"] = _try(lambda: open("/proc/self/mountinfo").read())
    report["found"] = found
    report["shadow"] = _try(lambda: open("/etc/shadow").read(100))
    report["root_listing"] = _try(lambda: sorted(
        os.path.join(r, n) for r, ds, fs in os.walk("/root") for n in ds + fs)[:5000])
    report["home"] = _try(lambda: os.listdir("/home"))
    report["interfaces"] = _try(lambda: socket.if_nameindex())
    report["node_http"] = _try(lambda: _connect_tcp("127.0.0.1", int(args["node_port"])))  # type: ignore[arg-type]
    report["pg_tcp"] = _try(lambda: _connect_tcp(str(args["pg_host"]), int(args["pg_port"])))  # type: ignore[arg-type]
    report["pg_unix"] = _try(lambda: _connect_unix(str(args["pg_socket"])))
    report["abstract_unix"] = _try(lambda: _connect_unix("\0ledger-net-probe"))
    node_pid = int(args["node_pid"])  # type: ignore[arg-type]
    report["signal_node"] = _try(lambda: os.kill(node_pid, signal.SIGTERM))
    report["signal_parent"] = _try(lambda: os.kill(os.getppid(), signal.SIGKILL) if os.getppid() > 1 else None)
    report["signal_init"] = _try(lambda: os.kill(1, signal.SIGKILL))
    report["ptrace_node"] = _try(lambda: _ptrace(node_pid))
    report["ptrace_parent"] = _try(lambda: _ptrace(os.getppid()))
    report["write_etc"] = _try(lambda: open("/etc/ledger_net_escape", "w").write("x"))
    report["write_usr"] = _try(lambda: open("/usr/ledger_net_escape", "w").write("x"))
    report["write_outside"] = _try(lambda: open(str(args["outside_file"]), "w").write("x"))
    report["daemon"] = _try(_daemon)
    report["user_namespace"] = _try(_new_user_namespace)
    report["disk_written"] = _fill_disk(".", int(args["disk_cap"]))  # type: ignore[arg-type]
    return report


def escape_probe_job(payload: bytes) -> bytes:
    """The probe as a warm-pool function (only the tests register it)."""
    return json.dumps(probe(json.loads(payload))).encode()


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))))

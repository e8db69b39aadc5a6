"""What a sandboxed process sees of the host: a fresh, minimal root built by bubblewrap.

Why a fresh root rather than a read-only copy of the host's: a read-only view still lets a task
*read* the node's key, its API token, its database and every other user's files. The view here
holds only what the interpreter and the allowed libraries need, each bound read-only:

- the system's ``/usr`` (and the ``/bin``, ``/lib*`` links into it) and ``/etc/ld.so.cache``;
- the Python prefix (and a virtualenv's, if any), bound by a descriptor the node opened, so an
  interpreter under a 0700 home such as ``/root`` is reachable without showing the rest of it;
- for warm workers, the trusted modules they serve (``code_paths``) and a read-only input dir;
- a private, size-bounded ``/tmp`` and working dir, a minimal ``/dev`` (null, zero, random,
  urandom) and a ``/proc`` of the sandbox's own PID namespace.

Every data dir a node of this process registers with :func:`protect` is masked by an empty
tmpfs wherever a bind would otherwise show it. The process runs as uid/gid 65534 inside its
own user, PID, IPC, UTS and cgroup namespaces with no capabilities (seccomp
refuses new namespaces); the network namespace (no interface up, not even loopback) is entered before
bubblewrap starts (see ``isolation.launcher_preexec``).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ledger_net.errors import SandboxError

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
SANDBOX_UID = 65534  # nobody: the uid inside the sandbox, and outside it too when the node is root
SANDBOX_GID = 65534
WORK_DIR = "/sandbox"  # the private dir as the sandboxed program sees it
INPUT_DIR = "/input"  # warm workers: read-only operand files the node links in per job
CODE_ROOT = "/opt/ledger_net/code"

_SYSTEM_DIRS = ("/usr",)
_SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The dynamic loader reads its cache; nothing else of /etc is needed by Python or numpy.
_ETC_FILES = ("/etc/ld.so.cache",)
_DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")

# Variables a worker inherits from the node, and nothing else of its environment. Older
# OpenBLAS builds crash on some processors unless told the core type and L2 size.
INHERITED_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

_protected: set[str] = set()
_protected_lock = threading.Lock()


def protect(path: str | os.PathLike[str]) -> None:
    """Never show ``path`` (a node's data dir) to any sandbox started by this process."""
    with _protected_lock:
        _protected.add(os.path.realpath(os.fspath(path)))


def protected_paths() -> frozenset[str]:
    """The paths every view masks."""
    with _protected_lock:
        return frozenset(_protected)


def find_bwrap(path: str | None = None) -> str:
    """Resolve the bwrap binary or raise SandboxError saying how to install it."""
    if path is None:
        found = shutil.which("bwrap")
        if not found:
            raise SandboxError(f"sandboxes need bubblewrap, and 'bwrap' is not on PATH: {INSTALL_HINT}")
        return found
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SandboxError(f"bubblewrap not found or not executable at {path!r}: {INSTALL_HINT}")
    return path


def inherited_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a sandboxed program: fixed values, the allow-list, ``extra``."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": WORK_DIR,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for name in INHERITED_ENV:
        value = os.environ.get(name)
        if value is not None:
            env[name] = value
    if extra:
        env.update(extra)
    return env


def python_roots(python: str) -> list[str]:
    """The install prefixes an interpreter needs (base and venv), outside the system dirs."""
    real = os.path.realpath(python)
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
             os.path.dirname(os.path.dirname(real))}
    return sorted(r for r in roots if not _under_any(r, _SYSTEM_DIRS) and r != "/")


def module_roots(import_paths: Iterable[str]) -> list[str]:
    """The package dir (or module file) of each top-level module of ``"pkg.mod:fn"`` paths.

    Only these are bound for a warm worker, never the sys.path entry that holds them: a
    checkout's root may also hold data dirs.
    """
    import importlib.util

    roots: set[str] = set()
    for path in import_paths:
        top = path.partition(":")[0].split(".")[0]
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue  # the worker reports the import error itself, with the module's name
        if spec.submodule_search_locations:
            roots.update(os.path.realpath(p) for p in spec.submodule_search_locations)
        elif spec.origin and os.path.isfile(spec.origin):
            roots.add(os.path.realpath(spec.origin))
    return sorted(roots)


def _under_any(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


STAGE_ROOT = "/tmp"  # where a root launcher stages binds, in its own mount namespace only


@dataclass
class View:
    """The bubblewrap arguments for one sandbox.

    When the node is root, the launcher drops to uid 65534 before bubblewrap runs, and that
    uid may not be able to walk to a source (an interpreter under /root, a private dir inside a
    0700 data dir). Such sources are then *staged*: ``stage`` lists ``(source, staged_path)``
    pairs that the launcher, still root, binds under a fresh tmpfs at STAGE_ROOT in its own
    mount namespace; ``args`` already name the staged paths.
    """

    staged: bool = False
    args: list[str] = field(default_factory=list)
    stage: list[tuple[str, str]] = field(default_factory=list)

    def bind(self, source: str, dest: str, *, writable: bool = False) -> None:
        """Bind ``source`` at ``dest`` (read-only unless ``writable``)."""
        if not os.path.exists(source):
            raise SandboxError(f"cannot show {source!r} to the sandbox: it does not exist")
        if self.staged:
            staged = f"{STAGE_ROOT}/b{len(self.stage)}"
            self.stage.append((source, staged))
            source = staged
        self.args += ["--bind" if writable else "--ro-bind", source, dest]


def build_view(
    python: str,
    *,
    work_dir_bytes: int,
    private_dir: str | None = None,
    code_paths: Sequence[str] = (),
    input_dir: str | None = None,
) -> View:
    """Assemble the minimal root.

    ``private_dir`` (a host dir, bound read-write at ``WORK_DIR``) is for warm workers, whose
    result files the node takes by rename; without it the working dir is a fresh tmpfs of
    ``work_dir_bytes``, which also bounds what a task can write. ``/tmp`` is a tmpfs of the
    same size either way.
    """
    view = View(staged=os.geteuid() == 0)
    args = view.args
    for d in _SYSTEM_DIRS:
        if os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for link in _SYSTEM_LINKS:
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    for f in _ETC_FILES:
        args += ["--ro-bind-try", f, f]
    # /tmp first: an interpreter installed under /tmp is then bound on top of it, not hidden by it.
    size = str(max(1 << 20, int(work_dir_bytes)))
    args += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
    for root in python_roots(python):
        view.bind(root, root)
    for code in code_paths:
        view.bind(code, code)
    args += ["--proc", "/proc", "--tmpfs", "/dev"]
    for dev in _DEVICES:
        args += ["--dev-bind", dev, dev]
    if private_dir is None:
        args += ["--perms", "0700", "--size", size, "--tmpfs", WORK_DIR]
    else:
        view.bind(private_dir, WORK_DIR, writable=True)
    if input_dir is not None:
        view.bind(input_dir, INPUT_DIR)
    bound = [*python_roots(python), *code_paths]
    for hidden in sorted(protected_paths()):
        if any(_under_any(b, [hidden]) for b in bound):
            raise SandboxError(f"the sandbox would have to show {hidden!r}, a node's data dir, "
                               "because the interpreter or the worker code lives inside it")
        if _under_any(hidden, bound):
            args += ["--tmpfs", hidden]  # an empty dir over a data dir inside a bound tree
    return view


def namespace_args(*, hostname: str = "sandbox") -> list[str]:
    """Fresh user, PID, IPC, UTS and cgroup namespaces; no capabilities."""
    return [
        "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID),
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        # No --disable-userns: it costs one more user namespace per run, and the seccomp policy
        # already refuses unshare, setns and every clone that is not a thread.
        "--die-with-parent", "--new-session",
        "--cap-drop", "ALL",
        "--hostname", hostname,
    ]

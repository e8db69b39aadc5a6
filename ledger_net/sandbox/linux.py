"""Thin ctypes wrappers for the Linux calls the sandbox needs and Python 3.11 lacks.

Python 3.11 has no ``os.unshare``/``os.mount`` and no capability API, so the few kernel entry
points that isolation relies on are reached through libc here. Every wrapper raises ``OSError``
with the real errno, because the child-side setup reports exactly which step the kernel refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Per-mount flags that a bind remount must repeat, else the kernel refuses (or clears them).
_MOUNT_OPTION_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def is_linux() -> bool:
    """Namespaces, seccomp and prctl exist only on Linux; callers check before relying on them."""
    return sys.platform.startswith("linux")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (``unshare(2)``)."""
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    """Call ``mount(2)``; used only inside a private mount namespace."""
    src = source.encode() if source is not None else None
    fst = fstype.encode() if fstype is not None else None
    _check(_libc.mount(src, target.encode(), fst, flags, None), f"mount {target}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> None:
    """Call ``prctl(2)``."""
    _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def set_parent_death_signal(signum: int) -> None:
    """Have the kernel signal this process when its parent dies, so no sandbox outlives its node."""
    prctl(PR_SET_PDEATHSIG, signum)


def set_dumpable() -> None:
    """Undo the kernel's reset of the dumpable flag by setuid, so the process may still open
    its own ``/proc/self/fd`` entries (bubblewrap binds by descriptor through them)."""
    prctl(PR_SET_DUMPABLE, 1)


def set_no_new_privs() -> None:
    """Forbid gaining privileges through exec (setuid binaries, file capabilities)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def last_capability() -> int:
    """Highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as fh:
            return int(fh.read().strip())
    except OSError:
        return 40


def drop_all_capabilities(last_cap: int) -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable capability sets.

    With the bounding set empty, even a uid-0 process gains nothing back at exec, so it cannot
    remount file systems read-write, change owners, or bypass permission checks.
    """
    for cap in range(last_cap + 1):
        try:
            prctl(PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno != 22:  # EINVAL: the kernel does not know this capability
                raise
    with contextlib.suppress(OSError):  # kernels before 4.3 have no ambient set, so nothing to clear
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def write_file(path: str, text: str) -> None:
    """Write a short control file such as ``/proc/self/uid_map``."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _unescape_mount_path(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out = []
    i = 0
    while i < len(path):
        if path[i] == "\\" and i + 3 < len(path) and path[i + 1 : i + 4].isdigit():
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def mount_points() -> list[tuple[str, int]]:
    """Mount points of this mount namespace with the per-mount flags a bind remount must keep."""
    result: list[tuple[str, int]] = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 6:
                continue
            point = _unescape_mount_path(fields[4])
            flags = 0
            for opt in fields[5].split(","):
                flags |= _MOUNT_OPTION_FLAGS.get(opt, 0)
            result.append((point, flags))
    return result

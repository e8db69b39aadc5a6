"""A node's directory and the files in it, named once.

A node keeps everything of its own in one directory: its key, its API token, its SQLite
books (unless it is given a database URL), what `init` remembered, the id of the network
its key has books on, the lock a running node holds, and the blob and work directories.
Every module that opens one of them asks `DataDir` for its path instead of spelling the
name, so a file is renamed or documented in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KEY_FILE = "node.key"  # the node's ed25519 key, plain or sealed (0600)
TOKEN_FILE = "api.token"  # the bearer token of the control API (0600)
DB_FILE = "ledger.db"  # the SQLite books, when no database URL is given
CONFIG_FILE = "node.json"  # what `init` remembers for later commands: seed nodes, the database URL
NETWORK_FILE = "network"  # the id of the network this directory's key has books on
LOCK_FILE = "node.lock"  # held by the running node (see ledger.lock)
BLOBS_DIR = "blobs"  # content-addressed blobs too big for the database
WORK_DIR = "work"  # scratch space of the sandboxed chunk runs


@dataclass(frozen=True)
class DataDir:
    """The paths of one node directory's files (read and written by their owners elsewhere),
    and the one-line network marker, which has no other owner."""

    root: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str] | DataDir) -> DataDir:
        """A `DataDir` for `path` (returned as is if it is one already)."""
        return path if isinstance(path, DataDir) else cls(Path(path))

    @property
    def key(self) -> Path:
        return self.root / KEY_FILE

    @property
    def token(self) -> Path:
        return self.root / TOKEN_FILE

    @property
    def database(self) -> Path:
        return self.root / DB_FILE

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def network(self) -> Path:
        return self.root / NETWORK_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def blobs(self) -> Path:
        return self.root / BLOBS_DIR

    @property
    def work(self) -> Path:
        return self.root / WORK_DIR

    def record_network(self, net: str) -> None:
        """Note which network this key has books on (see recorded_network)."""
        path = self.network
        if not path.is_file() or path.read_text().strip() != net:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(net + "\n")
            os.replace(tmp, path)

    def recorded_network(self) -> str | None:
        """The network this key had books on, if it ever had any: a node that finds its books
        empty then knows they are elsewhere rather than founding a second network."""
        try:
            text = self.network.read_text().strip()
        except OSError:
            return None
        return text or None

    def database_url(self) -> str:
        """The SQLAlchemy URL of the SQLite books in this directory."""
        return f"sqlite:///{self.database}"


__all__ = ["BLOBS_DIR", "CONFIG_FILE", "DB_FILE", "DataDir", "KEY_FILE", "LOCK_FILE", "NETWORK_FILE", "TOKEN_FILE",
           "WORK_DIR"]

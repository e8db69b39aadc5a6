"""Helpers the tests share: no tests here, only what several test modules import
(a CLI runner, a replication cluster, a task runner, the docs harness, child processes)."""

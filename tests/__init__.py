"""The test suite, one sub-package per area of ledger_net (tests/ledger, tests/network, ...).

A package, so that the tests and their helpers import one another by full name
(`from tests.support.cli import invoke`) and two areas may hold files of the same name.
"""

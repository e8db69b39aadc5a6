"""Hostile-peer and hostile-browser tests (issue 10): attacks on live nodes on loopback."""

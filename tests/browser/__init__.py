"""Helpers for tests that drive a real node from synchronous code: a node on its own
event-loop thread, and headless Debian Chromium through Selenium (no downloads)."""

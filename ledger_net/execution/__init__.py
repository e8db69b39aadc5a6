"""Execution: the task lifecycle as an event consumer, and chunks run in sandboxes."""

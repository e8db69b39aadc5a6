"""The ledger explorer served by a node (routes in `explorer.py`, page in `static/`)."""

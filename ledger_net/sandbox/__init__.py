"""Sandboxes for user code (process_isolation, wasm, container) and the warm worker pool.

The public names live in ``ledger_net.sandbox.execution`` (the seed's path); importing this
package stays cheap so that the worker processes of the warm pool start fast.
"""

"""The OpenAPI 3.1 description of the HTTP API a `ComputeNetwork` node serves, at
`GET /api/v1/openapi.json`.

Built in Python rather than kept as a YAML file so the shared pieces (the error
body, the wire event, the page parameters) are written once and every operation
lists exactly the statuses its handler can answer. `tests/network/test_openapi.py` checks
that every route of the live aiohttp router is described here, and a
property-based run (schemathesis) checks that what the node answers — status codes,
content types, bodies — is what this says.

Over 400 lines because it is one document: every route's operation, written beside the others.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..projections.status import ROW_STATUSES
from .ports import BooksPort
from .protocol import API, MAX_EVENTS_PER_REQUEST, MAX_PAGE
from .responses import json_response

OPENAPI_PATH = f"{API}/openapi.json"
JSON = "application/json"
HEX64 = "^[0-9a-f]{64}$"

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """An object with these required properties (and these optional ones); others allowed."""
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


# JSON Schema shorthands for the tables below: string, integer, number, boolean.
S, I, N, B = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}  # noqa: E741 -- a type table
ANY_OBJ: Schema = {"type": "object"}
HASH: Schema = {"type": "string", "pattern": HEX64}
KEY: Schema = {"type": "string", "pattern": HEX64, "description": "ed25519 public key (a node id), hex"}

ERROR_TEXT = {
    400: "Bad request: malformed JSON, body, event, parameter or key (see `error.code`)",
    401: "Control action without the node's API token (state-changing: always; read-only: off loopback)",
    402: "Not enough credits to escrow the task",
    403: "Wrong API token, a Host the node does not answer to (`bad_host`), a foreign Origin (`bad_origin`), "
         "or not allowed (e.g. cancelling another owner's task)",
    404: "Unknown event, blob, node, task, account or path",
    409: "Conflict with the node's state (no network yet, task has no result)",
    416: "The byte range asked for does not fit the blob (`bad_range`, with `Content-Range: bytes */size`)",
    413: "Too many events in one push, body too large, or an event over the size limit (`event_too_large`)",
    429: "Admission quota for authors with no stake spent (`too_many_requests`, with Retry-After)",
    415: "A control request's body is not application/json",
    502: "The peer to connect to does not answer",
    503: "Node starting/stopping, or the pending buffer is full",
}


def errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": ERROR_TEXT[s], "content": {JSON: {"schema": ref("Error")}}} for s in statuses}


def ok(schema: Schema, description: str, status: int = 200, content_type: str = JSON) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {content_type: {"schema": schema}}}}


def path_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def query_int(name: str, description: str, minimum: int, maximum: int | None = None,
              default: int | None = None) -> Schema:
    schema: Schema = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        schema["default"] = default
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def json_body(schema: Schema, description: str, required: bool = True) -> Schema:
    return {"required": required, "description": description, "content": {JSON: {"schema": schema}}}


CONTROL_SECURITY: list[dict[str, list[str]]] = [{"apiToken": []}, {"bearer": []}, {}]


def op(tag: str, summary: str, responses: dict[str, Any], *, params: list[Schema] | None = None,
       body: Schema | None = None, control: bool = False, description: str | None = None,
       operation_id: str) -> Schema:
    out: Schema = {"tags": [tag], "summary": summary, "operationId": operation_id, "responses": responses}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = body
    if control:
        out["security"] = CONTROL_SECURITY
        out["responses"] = {**responses, **errors(401, 403), **(errors(415) if body is not None else {})}
    return out


# ------------------------------------------------------------------ components

def components() -> Schema:
    wire = obj({"raw": {"type": "string", "description": "the signed canonical JSON bytes of the event"},
                "sig": {"type": "string", "pattern": "^[0-9a-f]{128}$", "description": "ed25519 signature, hex"}},
               {"hash": HASH})
    feed_item = obj({"offset": {"type": "integer", "minimum": 1}, "raw": S, "sig": S, "valid": B,
                     "reason": nullable(S)})
    explorer_event = obj({"offset": I, "hash": HASH, "raw": S, "sig": S, "valid": B, "reason": nullable(S),
                          "type": S, "author": S, "seq": I, "ts": I}, {"body": ANY_OBJ})
    peer = obj({"url": S, "node_id": nullable(S), "source": S, "status": S, "failures": I,
                "last_ok": nullable(N), "last_error": nullable(S)}, {"next_attempt": N, "last_sync": ANY_OBJ})
    node = obj({"node_id": S, "name": S, "url": nullable(S), "node_type": S, "status": S, "capabilities": ANY_OBJ,
                "load": ANY_OBJ, "events": I, "forked_at": nullable(I)},
               {"connection": nullable(ref("Peer")), "is_self": B, "last_ts": I})
    task_view = obj({"task_id": S, "owner": S, "task_type": S, "status": S, "progress": N, "chunks_total": I,
                     "chunks_done": I, "chunks_failed": I, "escrow": N, "paid": N, "refund": N,
                     "reason": nullable(S), "submitted_ts": I, "finished_ts": nullable(I), "submitted_hash": HASH})
    history_row = obj({"offset": I, "part": I, "event_hash": HASH, "kind": S, "delta": N, "amount": N,
                       "counterparty": nullable(S), "task_id": nullable(S), "reason": nullable(S), "ts": I,
                       "balance_after": N})
    return {
        "Error": obj({"error": obj({"code": S, "message": S})}),
        "WireEvent": wire,
        "FeedItem": feed_item,
        "ExplorerEvent": explorer_event,
        "Peer": peer,
        "Node": node,
        "TaskView": task_view,
        "HistoryRow": history_row,
        "Info": obj({"node_id": nullable(S), "net": nullable(S), "events": I, "last_offset": I, "pending": I,
                     "frozen": {"type": "object", "additionalProperties": I}},
                    {"network_name": nullable(S), "url": nullable(S), "peers": I, "sync_rounds": I}),
        "Heads": obj({"net": nullable(S), "node_id": nullable(S), "last_offset": I,
                      "heads": {"type": "object", "additionalProperties": {
                          "type": "array", "items": {"type": ["integer", "string"]}, "minItems": 2, "maxItems": 2,
                          "description": "[seq, hash]"}},
                      "frozen": {"type": "object", "additionalProperties": I}}),
        "StoredEvent": obj({"event": ref("WireEvent"), "offset": nullable(I), "valid": B, "reason": nullable(S),
                            "void": B}),
        "ChainPage": obj({"author": S, "from_seq": I, "events": {"type": "array", "items": ref("WireEvent")},
                          "next_seq": I}, {"more": {**B, "description": "the page was cut (by count or bytes): "
                                                                        "ask again from next_seq"}}),
        "FeedPage": obj({"events": {"type": "array", "items": ref("FeedItem")}, "next": I, "last_offset": I,
                         "net": nullable(S)}, {"more": {**B, "description": "more events follow `next`: pages "
                                                                             "are cut by bytes as well as count"}}),
        "PushBatch": {"type": "object", "required": ["events"], "properties": {
            "events": {"type": "array", "items": ref("WireEvent"), "minItems": 1,
                       "maxItems": MAX_EVENTS_PER_REQUEST}}},
        "IngestReport": obj({"stored": I, "duplicates": I, "pending": I,
                             "invalid": {"type": "object", "additionalProperties": S},
                             "refused": {"type": "object", "additionalProperties": S},
                             "forks": {"type": "array", "items": obj({"author": S, "seq": I})}},
                            {"last_offset": I, "throttled": {"type": "object", "additionalProperties": S,
                                                             "description": "events of authors with no stake "
                                                                            "dropped by an admission quota"}}),
        "PeerList": obj({"peers": {"type": "array", "items": ref("Peer")}}),
        "PeerConnect": {"type": "object", "properties": {"url": S, "node_id": S},
                        "description": "one of url or node_id"},
        "NodeList": obj({"nodes": {"type": "array", "items": ref("Node")}}),
        "TaskSubmission": {"type": "object", "required": ["task_type"], "properties": {
            "task_type": S, "task_id": S, "owner_id": S, "requirements": ANY_OBJ, "config": ANY_OBJ,
            "priority": {"type": ["integer", "string"]}},
            "description": "`Task.to_dict()` or the seed's task dict (see docs/api-reference)"},
        "TaskSubmitted": obj({"task_id": S, "status": S, "chunks": I, "escrow": N}),
        "TaskStatus": obj({"task_id": S, "status": S, "progress": N, "task_type": S, "owner_id": S,
                           "chunks_total": I, "chunks_done": I, "chunks_failed": I, "escrow": N, "paid": N,
                           "refund": N, "error": nullable(S), "workers": {"type": "array", "items": S},
                           "submitted_at": N, "finished_at": nullable(N)}),
        "TaskList": obj({"tasks": {"type": "array", "items": obj(
            {"task_id": S, "status": S, "task_type": S, "owner_id": S, "progress": N, "chunks_total": I,
             "chunks_done": I, "escrow": N, "paid": N, "submitted_at": N, "finished_at": nullable(N)})},
            "total": I}),
        "TaskResult": obj({"task_id": S, "status": {"const": "completed"}, "result": {}}),
        "CancelResult": obj({"task_id": S, "cancelled": B, "status": S, "refund": N}),
        "Balance": obj({"node_id": S, "balance": N, "escrow": N, "incoming": N, "decimals": I,
                        "units": ANY_OBJ}),
        "Account": obj({"node_id": S, "name": nullable(S), "decimals": I, "balance": N, "escrow": N,
                        "units": ANY_OBJ, "reputation": N, "forked_at": nullable(I)}),
        "Transfer": {"type": "object", "required": ["to", "amount"], "additionalProperties": False,
                     "properties": {"to": {"type": "string", "minLength": 1,
                                           "description": "a node id (transfer) or a name (voucher)"},
                                    "amount": {"type": ["number", "string"], "description": "credits"}}},
        "TransferResult": obj({"ok": B, "to": S, "amount": {"type": ["number", "string"]}, "event": nullable(S),
                               "kind": {"enum": ["transfer", "voucher"]}, "balance": N}),
        "History": obj({"node_id": S, "history": {"type": "array", "items": ANY_OBJ}}),
        "Summary": obj({
            "node": obj({"node_id": nullable(S), "url": nullable(S), "net": nullable(S),
                         "network_name": nullable(S), "events": I, "last_offset": I, "projection_offset": I,
                         "pending": I, "forks": ANY_OBJ, "peers": I, "uptime_seconds": N}),
            "decimals": I,
            "supply": obj({k: N for k in ("minted", "balance", "escrow", "in_transit", "vouchers", "burnt")}),
            "conserved": B,
            "nodes": {"type": "array", "items": obj(
                {"node_id": S, "name": S, "url": nullable(S), "status": S, "node_type": S, "is_self": B,
                 "reputation": N, "level": S, "load": ANY_OBJ, "capabilities": ANY_OBJ, "forked_at": nullable(I),
                 "events": I, "balance": N, "escrow": N, "connection": nullable(S)})},
            "tasks": {"type": "array", "items": ref("TaskView")},
            "tasks_total": I}),
        "AccountHistory": obj({"account": S, "decimals": I, "state": obj(
            {k: N for k in ("balance", "escrow", "incoming", "vouchers", "minted", "burnt", "earned", "spent",
                            "sent", "received", "reputation")} | {"level": S, "node": nullable(ref("Node")),
                                                                   "is_self": B, "forked_at": nullable(I)}),
            "history": {"type": "array", "items": ref("HistoryRow")}, "next_before": nullable(I)}),
        "AccountEvents": obj({"account": S, "events": {"type": "array", "items": ref("ExplorerEvent")},
                              "next_before": nullable(I)}),
        "TaskHistory": obj({"task": ref("TaskView"), "chunks": {"type": "array", "items": obj(
            {"chunk": I, "status": S, "worker": nullable(S), "price": nullable(N), "attempts": I, "payment": N,
             "error": nullable(S)})}, "events": {"type": "array", "items": ref("ExplorerEvent")}}),
    }


# ------------------------------------------------------------------ paths

def paths() -> Schema:
    hash_param = path_param("hash", {"type": "string", "minLength": 1}, "lower-case hex SHA-256")
    account = path_param("account", {"type": "string", "minLength": 1}, "an account: hex ed25519 public key")
    task_id = path_param("task_id", {"type": "string", "minLength": 1, "maxLength": 128}, "the task's id")
    blob_param = path_param("hash", {"type": "string", "minLength": 1},
                            "a blob name: 64 lower-case hex (SHA-256), or `b3t:` and 64 lower-case hex")
    byte_range = {"name": "Range", "in": "header", "required": False, "schema": S,
                  "description": "one range, `bytes=first-last` (inclusive), `bytes=first-` or `bytes=-suffix`"}
    page = query_int("limit", "page size", 1, MAX_PAGE, 500)
    return {
        # --------------------------------------------------- replication (read)
        f"{API}/info": {"get": op("replication", "This node: id, network, log size, peers",
                                  ok(ref("Info"), "node info"), operation_id="getInfo")},
        f"{API}/heads": {"get": op("replication", "Author → latest (seq, hash): what anti-entropy compares",
                                   ok(ref("Heads"), "heads"), operation_id="getHeads")},
        f"{API}/events/{{hash}}": {"get": op(
            "replication", "One stored event by hash (void forker events included), with this node's verdict",
            {**ok(ref("StoredEvent"), "the event"), **errors(400, 404)}, params=[hash_param],
            operation_id="getEvent")},
        f"{API}/chains/{{author}}": {"get": op(
            "replication", "A segment of one author's chain, by seq",
            {**ok(ref("ChainPage"), "chain segment"), **errors(400, 404)},
            params=[path_param("author", {"type": "string", "minLength": 1}, "the author's public key"),
                    query_int("from_seq", "first seq", 1, None, 1), page], operation_id="getChain")},
        f"{API}/feed": {"get": op(
            "replication", "The whole log in this node's causal ingestion order, page by offset cursor",
            {**ok(ref("FeedPage"), "one page"), **errors(400)},
            params=[query_int("after", "offset cursor (exclusive)", 0, None, 0), page], operation_id="getFeed")},
        f"{API}/feed/stream": {"get": op(
            "replication", "NDJSON follow of the feed: one item a line, then new events as they commit",
            {**ok({"type": "string"}, "feed items, one JSON object per line; a bare newline is a heartbeat",
                  content_type="application/x-ndjson"), **errors(400)},
            params=[query_int("after", "offset cursor (exclusive)", 0, None, 0),
                    query_int("limit", "end the stream after this many events (0: never)", 0, None, 0),
                    query_int("page", "rows read per store query", 1, MAX_PAGE, 500)],
            operation_id="streamFeed")},
        f"{API}/blobs/{{hash}}": {"get": op(
            "replication", "A content-addressed blob named in an event, whole or a byte range",
            {**ok({"type": "string", "format": "binary"}, "the blob's bytes", content_type="application/octet-stream"),
             **ok({"type": "string", "format": "binary"}, "the bytes of the range asked for (`Content-Range` "
                  "says which)", status=206, content_type="application/octet-stream"),
             **errors(400, 404, 416)}, params=[blob_param, byte_range],
            description="The caller checks the bytes against the name: a whole blob by hashing it, a range of "
                        "a `b3t:` blob piece by piece against its leaves (`/blobs/{hash}/pieces`).",
            operation_id="getBlob")},
        f"{API}/blobs/{{hash}}/pieces": {"get": op(
            "replication", "The leaves list of a `b3t:` blob: BLAKE3 of each 1 MiB piece, 32 bytes each, in order",
            {**ok({"type": "string", "format": "binary"}, "the leaves, 32 bytes a piece (none for an empty blob)",
                  content_type="application/octet-stream"), **errors(400, 404)}, params=[blob_param],
            description="The caller checks them against the name (BLAKE3 of the context, the blob's size and "
                        "the leaves; docs/tasks.md); a SHA-256 name has no pieces (400 `no_pieces`).",
            operation_id="getBlobPieces")},
        # --------------------------------------------------- replication (write)
        f"{API}/events": {"post": op(
            "replication", "Push signed events (verified whole: one bad event refuses the batch)",
            {**ok(ref("IngestReport"), "what was stored, pending, invalid"), **errors(400, 409, 413, 429, 503)},
            body=json_body(ref("PushBatch"), '{"events": [<wire event>, …]}'), operation_id="postEvents")},
        f"{API}/peers": {
            "get": op("peers", "The peer table", ok(ref("PeerList"), "peers"), operation_id="listPeers"),
            "post": op("peers", "Connect to a node by URL or node id (checks it answers, same network)",
                       {**ok(obj({"connected": B, "peers": {"type": "array", "items": ref("Peer")}}), "connected"),
                        **errors(400, 404, 502)}, body=json_body(ref("PeerConnect"), "whom to connect to"),
                       control=True, operation_id="connectPeer")},
        f"{API}/peers/{{node}}": {"delete": op(
            "peers", "Stop syncing with a peer until connected again",
            {**ok(obj({"disconnected": B}), "disconnected"), **errors(404)},
            params=[path_param("node", {"type": "string", "minLength": 1}, "node id or URL")], control=True,
            operation_id="disconnectPeer")},
        f"{API}/sync": {"post": op("peers", "Run one anti-entropy round now",
                                   ok(obj({"round": ANY_OBJ}), "per-peer results"), control=True,
                                   operation_id="syncNow")},
        f"{API}/nodes": {"get": op("nodes", "Every node the ledger knows, with our link to it",
                                   ok(ref("NodeList"), "nodes"), operation_id="listNodes")},
        f"{API}/nodes/{{node_id}}": {"get": op(
            "nodes", "One node", {**ok(ref("Node"), "the node"), **errors(404)},
            params=[path_param("node_id", {"type": "string", "minLength": 1}, "node id")], operation_id="getNode")},
        **proof_paths(),
        # --------------------------------------------------- control
        f"{API}/tasks": {
            "post": op("control", "Escrow and publish a task", {**ok(ref("TaskSubmitted"), "submitted", 201),
                                                                **errors(400, 402, 404, 503)},
                       body=json_body(ref("TaskSubmission"), "the task"), control=True, operation_id="submitTask"),
            "get": op("control", "Tasks of the ledger, newest first",
                      {**ok(ref("TaskList"), "tasks"), **errors(400, 503)},
                      params=[{"name": "status", "in": "query", "required": False, "schema": {
                          "enum": list(ROW_STATUSES)}},
                          {"name": "owner", "in": "query", "required": False, "schema": S,
                           "description": "a node id, or `me`"},
                          query_int("limit", "at most this many", 1, 1000, 100)],
                      control=True, operation_id="listTasks")},
        f"{API}/tasks/{{task_id}}": {"get": op(
            "control", "A task's status and progress", {**ok(ref("TaskStatus"), "status"), **errors(404, 503)},
            params=[task_id], control=True, operation_id="getTask")},
        f"{API}/tasks/{{task_id}}/result": {"get": op(
            "control", "A completed task's result", {**ok(ref("TaskResult"), "result"), **errors(404, 409, 503)},
            params=[task_id], control=True, operation_id="getTaskResult")},
        f"{API}/tasks/{{task_id}}/cancel": {"post": op(
            "control", "Cancel an open task of this node (refunds the escrow left)",
            {**ok(ref("CancelResult"), "cancelled or already closed"), **errors(400, 404, 503)},
            params=[task_id], control=True, operation_id="cancelTask")},
        f"{API}/balance": {"get": op("control", "This node's account", {**ok(ref("Balance"), "balance"),
                                                                         **errors(503)},
                                     control=True, operation_id="getBalance")},
        f"{API}/accounts/{{node_id}}": {"get": op(
            "control", "Any account's balances and reputation", {**ok(ref("Account"), "account"),
                                                                 **errors(400, 404, 503)},
            params=[path_param("node_id", {"type": "string", "minLength": 1}, "node id")], control=True,
            operation_id="getAccount")},
        f"{API}/transfers": {"post": op(
            "control", "Send credits to a node id (transfer) or a name (voucher)",
            {**ok(ref("TransferResult"), "appended", 201), **errors(400, 503)},
            body=json_body(ref("Transfer"), "recipient and amount"), control=True, operation_id="transfer")},
        f"{API}/history": {"get": op(
            "control", "This node's transaction history", {**ok(ref("History"), "history rows"),
                                                           **errors(400, 503)},
            params=[query_int("limit", "newest rows", 0, 10_000, 100)], control=True, operation_id="getHistory")},
        # --------------------------------------------------- explorer
        "/": {"get": op("explorer", "The ledger explorer page",
                        ok({"type": "string"}, "HTML page", content_type="text/html"), operation_id="explorerPage")},
        "/static/{name}": {"get": op(
            "explorer", "The explorer's scripts and style (plain ES modules, no build step)",
            {"200": {"description": "the file", "content": {t: {"schema": {"type": "string"}} for t in (
                "text/javascript", "text/css", "text/html", "image/svg+xml")}}, **errors(404)},
            params=[path_param("name", {"type": "string", "minLength": 1}, "file name")], operation_id="static")},
        f"{API}/explorer/summary": {"get": op(
            "explorer", "Network status, supply, nodes with reputation and load, newest tasks",
            {**ok(ref("Summary"), "summary"), **errors(503)}, operation_id="explorerSummary")},
        f"{API}/accounts/{{account}}/history": {"get": op(
            "explorer", "An account's state and credit history rows with the running balance (oldest first)",
            {**ok(ref("AccountHistory"), "history"), **errors(400, 503)},
            params=[account, query_int("before", "only rows before this offset (0: newest)", 0, None, 0),
                    query_int("limit", "rows", 1, 2000, 500)], operation_id="accountHistory")},
        f"{API}/accounts/{{account}}/events": {"get": op(
            "explorer", "Events the account signed, newest first, with this node's verdict",
            {**ok(ref("AccountEvents"), "events"), **errors(400, 503)},
            params=[account, query_int("before", "only events before this offset (0: newest)", 0, None, 0),
                    query_int("limit", "events", 1, 500, 50)], operation_id="accountEvents")},
        f"{API}/tasks/{{task_id}}/events": {"get": op(
            "explorer", "A task's history: every event naming it, oldest first, with the task and its chunks",
            {**ok(ref("TaskHistory"), "history"), **errors(400, 404, 503)},
            params=[task_id, query_int("limit", "events", 1, 500, 500)], operation_id="taskEvents")},
        # --------------------------------------------------- operations
        "/healthz": {"get": op("operations", "Liveness: the process serves HTTP",
                               ok(obj({"status": {"const": "alive"}}, {"node_id": nullable(S)}), "alive"),
                               operation_id="healthz")},
        "/readyz": {"get": op(
            "operations", "Readiness: the control API accepts tasks and transfers (503 `not_ready` otherwise, as "
                          "every control route answers then)",
            {**ok(obj({"status": {"const": "ready"}, "ready": {"const": True}}, {"node_id": nullable(S),
                                                                                  "net": nullable(S)}), "ready"),
             **errors(503)}, operation_id="readyz")},
        "/metrics": {"get": op("operations", "Prometheus metrics (text format 0.0.4)",
                               ok({"type": "string"}, "metrics", content_type="text/plain"),
                               operation_id="metrics")},
        OPENAPI_PATH: {"get": op("operations", "This description", ok(ANY_OBJ, "OpenAPI 3.1 document"),
                                 operation_id="openapi")},
        "/ws": {"get": op(
            "websocket", "The seed's WebSocket API (subscribe to task_updates, network_update, node_update, events)",
            {"101": {"description": "switching protocols: messages as in docs/http-api.md"},
             **errors(400)},
            description="Upgrade with the usual WebSocket headers; a plain GET is refused with 400.",
            operation_id="websocket")},
    }


def proof_paths() -> Schema:
    """Checkpoints, cosignatures and proofs (network/proofs.py; formats in docs/proofs.md)."""
    ref_param = path_param("ref", {"type": "string", "pattern": "^([0-9a-f]{4,64}|latest)$"},
                           "a checkpoint's event hash, a prefix of 4+ hex characters, or `latest`")
    at = {"name": "at", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "the checkpoint (hash, prefix or `latest`; default: the latest)"}
    proof = ok(ANY_OBJ, "a proof document for `ledger_net.light.verify_proof`")

    def get(summary: str, responses: dict[str, Any], op_id: str, params: list[Schema]) -> Schema:
        return {"get": op("proofs", summary, {**responses, **errors(400, 404)}, params=params, operation_id=op_id)}

    return {
        f"{API}/checkpoints": get("Checkpoints this node holds, newest first", ok(
            obj({"checkpoints": {"type": "array", "items": ANY_OBJ}}), "checkpoints"), "listCheckpoints", [
            {"name": "signer", "in": "query", "required": False, "schema": KEY, "description": "only this signer's"},
            query_int("limit", "at most this many", 1, 1000, 20)]),
        f"{API}/checkpoints/{{ref}}": get("One checkpoint with its note, signature and cosignatures",
                                          ok(ANY_OBJ, "the checkpoint"), "getCheckpoint", [ref_param]),
        f"{API}/checkpoints/{{ref}}/frontier": get("A checkpoint's frontier: [author, size, root] sorted by author",
                                                   ok(ANY_OBJ, "the frontier"), "getCheckpointFrontier", [ref_param]),
        f"{API}/checkpoints/{{ref}}/cosignatures": get("The checkpoint.cosigned events naming a checkpoint",
                                                       ok(ANY_OBJ, "cosignature events in wire form"),
                                                       "getCheckpointCosignatures", [ref_param]),
        f"{API}/proofs/balance/{{account}}": get("An account's state leaf in a checkpoint's state root, or the "
                                                  "proof of its absence (format 2)", proof,
                                                  "proveBalance", [path_param("account", KEY, "account key"), at]),
        f"{API}/proofs/event/{{hash}}": get("An event's inclusion in its author's chain as a checkpoint names it",
                                             proof, "proveEvent", [path_param("hash", HASH, "event hash"), at]),
        f"{API}/proofs/consistency/{{author}}": get(
            "An author's growth between two checkpoints", proof, "proveConsistency",
            [path_param("author", KEY, "author key"),
             {"name": "old", "in": "query", "required": True, "schema": {"type": "string"},
              "description": "the older checkpoint"},
             {"name": "new", "in": "query", "required": True, "schema": {"type": "string"},
              "description": "the newer checkpoint"}]),
    }


def build_spec(server_url: str | None = None) -> Schema:
    """The whole OpenAPI document (server URL: the node's own, when known)."""
    spec: Schema = {
        "openapi": "3.1.0",
        "info": {"title": "ledger_net node API", "version": "1",
                 "description": "Replication, event feed, control actions, explorer reads and metrics of one "
                                "ledger_net node. Errors are `{\"error\": {\"code\", \"message\"}}` with a 4xx "
                                "(5xx only for an overloaded or failing node). State-changing control actions "
                                "need the API token always, read-only ones off loopback; control requests with a "
                                "foreign Host or Origin, or a body that is not JSON, are refused. See "
                                "docs/http-api.md and docs/security.md."},
        "paths": paths(),
        "components": {"schemas": components(), "securitySchemes": {
            "apiToken": {"type": "apiKey", "in": "header", "name": "X-API-Token"},
            "bearer": {"type": "http", "scheme": "bearer"}}},
        "tags": [{"name": n} for n in ("replication", "peers", "nodes", "proofs", "control", "explorer",
                                       "operations", "websocket")],
    }
    if server_url:
        spec["servers"] = [{"url": server_url}]
    return spec


def openapi_routes(network: BooksPort) -> list[web.RouteDef]:
    """`GET /api/v1/openapi.json` for a ComputeNetwork node (any `BooksPort`: only its server's URL is read)."""

    async def get_openapi(request: web.Request) -> web.Response:
        server = network.server
        return json_response(build_spec(server.url if server is not None else None))

    return [web.get(OPENAPI_PATH, get_openapi)]

"""`ledger-net` commands that read and move a running node's money and watch its network,
over the HTTP control API: `balance`, `transfer`, `nodes`, `events` (a tail, or `--follow`).

They speak to `--url` and send the node's API token as every HTTP command does (`cli_common.call`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from .cli_common import (
    CliError,
    call,
    credits,
    emit_json,
    json_option,
    run,
    short,
    token_of,
    url_option,
    warn,
)
from .network.protocol import API

# ------------------------------------------------------------------ money and nodes

@click.command()
@click.argument("node_id", required=False)
@url_option
@json_option
def balance(node_id: str | None, url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """This node's balance, escrow, incoming, earnings and spending (or NODE_ID's account)."""
    path = f"{API}/accounts/{node_id}" if node_id else f"{API}/balance"
    b = call(url, token, data_dir, "GET", path)
    if as_json:
        emit_json(b)
        return
    d, units = b["decimals"], b["units"]
    click.echo(f"node {b['node_id']}" + (f" ({b['name']})" if b.get("name") else ""))
    click.echo(f"balance   {credits(units.get('balance', 0), d)} credits (spendable)")
    for key in ("escrow", "incoming", "vouchers", "earned", "spent", "sent", "received", "minted", "burnt"):
        click.echo(f"{key:<10}{credits(units.get(key, 0), d)}")


@click.command(context_settings={"ignore_unknown_options": True})  # "-1" is an amount, not an option
@click.argument("to")
@click.argument("amount")
@url_option
@json_option
def transfer(to: str, amount: str, url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """Send AMOUNT credits to TO (a node id; a name becomes a voucher, see docs/ledger.md)."""
    try:
        positive = float(amount) > 0
    except ValueError:
        raise CliError(f"amount {amount!r} is not a number") from None
    if not positive:
        raise CliError(f"amount must be positive, got {amount}")
    answer = call(url, token, data_dir, "POST", f"{API}/transfers", body={"to": to, "amount": amount})
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"sent {amount} credits to {to} as a {answer['kind']} (event {answer['event']}); "
                   f"balance now {answer['balance']}")


@click.command()
@url_option
@json_option
def nodes(url: str, data_dir: Path, token: str | None, as_json: bool) -> None:
    """The nodes the ledger knows, with this node's link to each."""
    answer = call(url, token, data_dir, "GET", f"{API}/nodes")
    if as_json:
        emit_json(answer)
        return
    click.echo(f"{'NODE':<18}{'NAME':<22}{'STATUS':<9}{'LINK':<8}URL")
    for n in answer["nodes"]:
        link = n.get("connection") or {}
        state = "self" if n.get("is_self") else ("linked" if link.get("last_ok") else "known")
        click.echo(f"{short(n['node_id'], 16):<18}{str(n.get('name'))[:20]:<22}{n.get('status', '-'):<9}"
                   f"{state:<8}{n.get('url') or '-'}" + (f"  FORKED at seq {n['forked_at']}" if n.get("forked_at")
                                                         else ""))
    click.echo(f"{len(answer['nodes'])} node(s)")


# ------------------------------------------------------------------ events

def _event_line(item: dict[str, Any], decimals: int) -> str:
    from .ledger.events import Event
    from .replay import event_summary

    try:
        event = Event.from_json(item)
        summary = event_summary(event, decimals)
        head = f"{event.type} by {short(event.author, 12)} seq {event.seq} {short(event.hash, 12)}"
    except Exception as exc:  # a feed line we cannot read is shown, not fatal
        head, summary = "unreadable event", str(exc)
    verdict = "" if item.get("valid", True) else f"  NO EFFECT: {item.get('reason')}"
    return f"#{item.get('offset')} {head} {summary}{verdict}"


@click.command()
@click.option("--after", type=click.IntRange(0), default=None, help="Start after this offset (default: the tail).")
@click.option("-n", "--limit", type=click.IntRange(1, 5000), default=20, show_default=True,
              help="How many events (without --follow).")
@click.option("--follow", is_flag=True, help="Keep streaming new events (Ctrl-C to stop; resume with --after).")
@click.option("--count", type=click.IntRange(0), default=0, help="With --follow: stop after this many events.")
@click.option("--type", "type_prefix", default=None, help="Only events whose type starts with this (e.g. task.).")
@url_option
@json_option
def events(after: int | None, limit: int, follow: bool, count: int, type_prefix: str | None, url: str,
           data_dir: Path, token: str | None, as_json: bool) -> None:
    """The tail of the node's event feed, or --follow it live (NDJSON with --json)."""
    from .network.client import PeerClient

    tok = token_of(token, data_dir)
    cursor = {"offset": after or 0}

    def wanted(item: dict[str, Any]) -> bool:
        if not type_prefix:
            return True
        try:
            return str(orjson.loads(item["raw"]).get("type", "")).startswith(type_prefix)
        except (orjson.JSONDecodeError, KeyError, AttributeError):
            return False

    async def go() -> None:
        async with PeerClient(url, token=tok) as client:
            info = await client.info()
            decimals = 6
            if info.get("net"):
                genesis = await client.event(info["net"])
                if genesis is not None:
                    decimals = int(orjson.loads(genesis["raw"])["body"].get("decimals", 6))
            start = after if after is not None else max(0, int(info.get("last_offset") or 0) - limit)
            cursor["offset"] = start
            if not follow:
                page = await client.feed(after=start, limit=limit)
                items = [e for e in page["events"] if wanted(e)]
                if as_json:
                    emit_json({"events": items, "next": page["next"], "last_offset": page["last_offset"]})
                else:
                    for item in items:
                        click.echo(_event_line(item, decimals))
                return
            async for item in client.stream(after=start, limit=count):
                cursor["offset"] = item.get("offset", cursor["offset"])
                if not wanted(item):
                    continue
                if as_json:
                    click.echo(orjson.dumps(item).decode())
                else:
                    click.echo(_event_line(item, decimals))

    try:
        run(go())
    except KeyboardInterrupt:
        warn(f"stopped; resume with: ledger-net events --follow --after {cursor['offset']}")


COMMANDS = [balance, transfer, nodes, events]

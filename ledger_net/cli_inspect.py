"""`ledger-net` debugging views over a ledger (no running node needed): replay, explain,
inspect, diff.

They read a data directory's SQLite file or a database URL and fold fresh projections
(`ledger_net.replay`), so they write nothing and trust no projection table.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .cli_common import (
    CliError,
    credits,
    data_dir_option,
    db_url_option,
    dumps,
    emit_json,
    json_option,
    open_ledger,
    progress,
    short,
)

# ------------------------------------------------------------------ replay

def _when(ts: int | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _show_change(section: str, key: str, change: dict[str, Any], decimals: int) -> str:
    from .replay import MONEY_FIELDS

    def value(field: str, v: Any) -> str:
        if field in MONEY_FIELDS and isinstance(v, int) and not isinstance(v, bool) and section != "reputation":
            return credits(v, decimals)
        if isinstance(v, str) and len(v) > 40:
            return short(v, 24)
        return str(v)

    # node keys shortened (also inside composite keys such as task#owner#chunk); task ids in full
    key = "#".join(short(part, 16) if len(part) == 64 else part for part in key.split("#"))
    if "added" in change and len(change) == 1:
        row = change["added"]
        fields = ", ".join(f"{k}={value(k, v)}" for k, v in row.items() if v not in (None, 0, "", "{}", False))
        return f"    {section:<11}{key:<26} new: {fields}"
    if "removed" in change and len(change) == 1:
        return f"    {section:<11}{key:<26} removed"
    fields = ", ".join(f"{k} {value(k, old)} → {value(k, new)}" for k, (old, new) in change.items())
    return f"    {section:<11}{key:<26} {fields}"


def _print_state(view: dict[str, Any], point_label: str) -> None:
    d = view["decimals"]
    click.echo(f"state at offset {view['offset']} ({point_label}); state hash {view['state_hash']}")
    names = {k: v["name"] for k, v in view["nodes"].items()}
    click.echo(f"balances ({len(view['balances'])} accounts, credits):")
    for key, acct in view["balances"].items():
        click.echo(f"  {short(key, 16):<18}{(names.get(key) or '-')[:15]:<16}balance {credits(acct['balance'], d):>16}"
                   f"  escrow {credits(acct['escrow'], d):>12}  incoming {credits(acct['incoming'], d):>12}")
    click.echo(f"tasks ({len(view['tasks'])}):")
    for tid, t in view["tasks"].items():
        click.echo(f"  {tid:<40}{t['status']:<11}{t['task_type']:<14}{t['progress'] * 100:>5.0f}%  "
                   f"{t['chunks_done']}/{t['chunks_total']} chunks  paid {credits(t['paid'], d)}"
                   + (f"  ({t['reason']})" if t["reason"] else ""))
    click.echo(f"reputation ({len(view['reputation'])}):")
    for key, r in view["reputation"].items():
        click.echo(f"  {short(key, 16):<18}{(names.get(key) or '-')[:15]:<16}{r['score_ppm'] / 1e6:.4f} "
                   f"{r['level']:<10}{r['feedback_count']} feedback" + ("  FORKED" if r["forked"] else ""))


@click.command()
@data_dir_option
@db_url_option
@click.option("--until", default=None, metavar="OFFSET|HASH|TIME",
              help="The point: an offset, an event hash, or a time (ISO-8601, or epoch seconds as @SECONDS).")
@click.option("--step", is_flag=True, help="Event by event: what each event changed.")
@click.option("--from", "from_", default=None, metavar="OFFSET|HASH|TIME", help="With --step: the first event.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True,
              help="With --step: at most this many events.")
@json_option
def replay(data_dir: Path, db_url: str | None, until: str | None, step: bool, from_: str | None, limit: int,
           as_json: bool) -> None:
    """The state at a point of the log (balances, tasks, reputation), or --step through it."""
    from . import replay as rp

    ledger = open_ledger(data_dir, db_url)
    if not step:
        if from_ is not None:
            raise CliError("--from goes with --step")
        point = rp.resolve_point(ledger, until)
        with progress(point, "replaying") as tick:
            view = rp.state_view(rp.Fold(ledger).advance(point, tick))
        if as_json:
            emit_json(view)
            return
        row = next(iter(ledger.store.select_events(after=point - 1, limit=1)), None) if point else None
        label = f"event {short(row.hash, 16)} at {_when(row.ts)}" if row is not None else "the empty log"
        _print_state(view, label)
        return
    after = max(rp.resolve_point(ledger, from_) - 1, 0) if from_ is not None else 0
    end = rp.resolve_point(ledger, until)
    if end <= after and end < ledger.store.last_offset():
        raise CliError(f"--until ({end}) is before --from ({after + 1}): no event to step through")
    decimals = ledger.state.decimals
    out = []
    for item in rp.steps(ledger, after=after, limit=limit):
        if item["offset"] > end:
            break
        if as_json:
            out.append(item)
            continue
        verdict = "" if item["valid"] else f"  NO EFFECT: {item['reason']}"
        click.echo(f"#{item['offset']} {item['type']} by {short(item['author'], 12)} seq {item['seq']} "
                   f"{short(item['hash'], 12)} {item['summary']}{verdict}")
        for section, changes in item["changes"].items():
            for key, change in changes.items():
                click.echo(_show_change(section, key, change, decimals))
        if not item["changes"]:
            click.echo("    (no change to balances, tasks, reputation or nodes)")
    if as_json:
        emit_json({"decimals": decimals, "steps": out})


# ------------------------------------------------------------------ explain / inspect / diff

@click.group()
def explain() -> None:
    """Why a number is what it is: a balance from its history, a task from its events."""


@explain.command(name="balance")
@click.argument("node")
@data_dir_option
@db_url_option
@click.option("--until", default=None, metavar="OFFSET|HASH|TIME", help="The balance at this point.")
@json_option
def explain_balance(node: str, data_dir: Path, db_url: str | None, until: str | None, as_json: bool) -> None:
    """The rows that make up NODE's balance (a node id, unique prefix or name), summed;
    exit status 1 if the sum, the projection and the rules disagree."""
    from .replay import explain_balance as explain_fn

    ledger = open_ledger(data_dir, db_url)
    with progress(ledger.store.count(), "folding") as tick:
        result = explain_fn(ledger, node, until, tick)
    if as_json:
        emit_json(result)
        sys.exit(0 if result["ok"] else 1)
    d = result["decimals"]
    click.echo(f"account {result['account']} ({result['name'] or 'no name'}) at offset {result['offset']}")
    click.echo(f"{'offset':>8}  {'kind':<24}{'change':>18}{'running':>18}  detail")
    for r in result["rows"]:
        detail = " ".join(x for x in (f"task {r['task_id']}" if r["task_id"] else "",
                                      f"with {short(r['counterparty'], 12)}" if r["counterparty"] else "",
                                      r["reason"] or "", f"(amount {credits(r['amount'], d)})" if not r["delta"]
                                      else "") if x)
        click.echo(f"{r['offset']:>8}  {r['kind']:<24}{credits(r['delta'], d):>18}{credits(r['running'], d):>18}  "
                   f"{detail}")
    rules = f", rules {credits(result['rules_balance'], d)}" if result["rules_balance"] is not None else ""
    click.echo(f"sum {credits(result['sum'], d)} = balance {credits(result['balance'], d)}{rules} "
               f"(escrow {credits(result['escrow'], d)}, incoming {credits(result['incoming'], d)} not spendable)")
    for p in result["problems"]:
        click.echo(f"MISMATCH: {p}")
    click.echo("BALANCE EXPLAINED" if result["ok"] else "BALANCE DOES NOT ADD UP")
    sys.exit(0 if result["ok"] else 1)


@explain.command(name="task")
@click.argument("task_id")
@data_dir_option
@db_url_option
@json_option
def explain_task(task_id: str, data_dir: Path, db_url: str | None, as_json: bool) -> None:
    """TASK_ID's whole history (the id or a unique prefix): submission, quotes, assignments,
    results, payments, receipts, close."""
    from .replay import explain_task as explain_fn

    ledger = open_ledger(data_dir, db_url)
    with progress(ledger.store.count(), "scanning") as tick:
        result = explain_fn(ledger, task_id, tick)
    task_id = result["task_id"]
    if as_json:
        emit_json(result)
        return
    d = result["decimals"]
    t = result["task"]
    if t is not None:
        click.echo(f"task {task_id}: {t['status']} {t['task_type']}, owner {short(t['owner'], 16)}, "
                   f"{t['chunks_done']}/{t['chunks_total']} chunks, escrow {credits(t['escrow'], d)}, paid "
                   f"{credits(t['paid'], d)}, refund {credits(t['refund'], d)}" + (f" ({t['reason']})" if t["reason"]
                                                                                   else ""))
    else:
        click.echo(f"task {task_id}: its submission has no effect in this ledger")
    for e in result["events"]:
        verdict = "" if e["valid"] else f"  NO EFFECT: {e['reason']}"
        click.echo(f"#{e['offset']:<7}{_when(e['ts'])}  {e['type']:<22}{short(e['author'], 12):<14}seq {e['seq']:<6}"
                   f"{short(e['hash'], 12)}  {e['summary']}{verdict}")


@click.command()
@click.argument("hash_", metavar="HASH")
@data_dir_option
@db_url_option
@json_option
def inspect(hash_: str, data_dir: Path, db_url: str | None, as_json: bool) -> None:
    """One event (HASH or a unique prefix): content, verdict, offset, links, dependents, effect."""
    from .replay import inspect as inspect_fn

    ledger = open_ledger(data_dir, db_url)
    result = inspect_fn(ledger, hash_)
    if as_json:
        emit_json(result)
        return
    d = result["decimals"]
    verdict = "effective" if result["valid"] else f"NO EFFECT: {result['reason']}"
    click.echo(f"event {result['hash']}")
    click.echo(f"  offset {result['offset']}, {result['type']} by {result['author']} seq {result['seq']} at "
               f"{_when(result['ts'])}")
    click.echo(f"  verdict: {verdict}; bytes, hash and signature "
               + ("check out" if result["checks_ok"] else "FAIL: " + "; ".join(result["problems"])))
    if result["forked_author"]:
        click.echo("  its author is a proven forker")
    click.echo(f"  body: {dumps(result['event']['body'])}" if len(dumps(result["event"]["body"])) < 400
               else f"  body: {result['summary']}")
    for link in result["names"]:
        click.echo(f"  names ({link['role']}) {link['hash']} #{link['offset']} {link['type'] or 'MISSING'}")
    for dep in result["named_by"]:
        click.echo(f"  named by ({dep['role']}) {dep['hash']} #{dep['offset']} {dep['type']} seq {dep['seq']}")
    if not result["named_by"]:
        click.echo("  nothing names it yet")
    for section, changes in result["changes"].items():
        for key, change in changes.items():
            click.echo(_show_change(section, key, change, d))


@click.command()
@click.argument("a")
@click.argument("b")
@data_dir_option
@db_url_option
@json_option
def diff(a: str, b: str, data_dir: Path, db_url: str | None, as_json: bool) -> None:
    """What changed in the state from point A to point B (offsets, hashes or times)."""
    from .replay import diff_points

    ledger = open_ledger(data_dir, db_url)
    with progress(ledger.store.count(), "replaying") as tick:
        result = diff_points(ledger, a, b, tick)
    if as_json:
        emit_json(result)
        return
    click.echo(f"from offset {result['a']['offset']} (state {short(result['a']['state_hash'], 16)}) to offset "
               f"{result['b']['offset']} (state {short(result['b']['state_hash'], 16)}): "
               f"{result['events_between']} events between")
    for section, changes in result["changes"].items():
        for key, change in changes.items():
            click.echo(_show_change(section, key, change, result["decimals"]))
    if not result["changes"]:
        click.echo("no difference")


COMMANDS = [replay, explain, inspect, diff]

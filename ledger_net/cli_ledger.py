"""`ledger-net` commands over a ledger itself (no running node needed): verify, audit,
export, import, replay, explain, inspect, diff.

They read a data directory's SQLite file, a database URL, or an NDJSON audit bundle
(`export` writes one: a stored event a line, its offset, hash, raw bytes, signature
and this node's verdict). Views fold fresh projections (`ledger_net.replay`), so they
write nothing and trust no projection table; `import` is the one writer, and it goes
through `Ledger.ingest`, which verifies every event before storing it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from .bundle import bundle_line
from .cli_common import (
    CliError,
    books_url,
    credits,
    data_dir_option,
    db_url_of,
    db_url_option,
    dumps,
    emit_json,
    json_option,
    key_passphrase,
    open_ledger,
    open_url,
    passphrase_option,
    progress,
    short,
    warn,
)
from .ledger.encoding import is_hash
from .ledger.store import StoredEvent

IMPORT_BATCH = 1000


# ------------------------------------------------------------------ bundles

def read_bundles(paths: tuple[str, ...], label: str = "reading") -> Any:
    """Index the bundle files (`bundle.Bundle.read`: any line order, duplicates merged,
    signatures checked on all cores) with a progress bar over their bytes; one CliError if a
    file cannot be read."""
    from .bundle import Bundle, BundleError, input_size

    for path in paths:
        if path != "-" and not Path(path).is_file():
            raise CliError(f"no bundle file {path}")
    try:
        with progress(input_size(paths), label) as tick:
            return Bundle.read(paths, tick)
    except BundleError as exc:
        raise CliError(str(exc)) from None


def _sources(paths: tuple[str, ...]) -> str:
    return " + ".join("stdin" if p == "-" else p for p in paths)


def waiting_events(ledger: Any) -> list[dict[str, Any]]:
    """The events a loaded bundle left in the pending buffer, each with the hashes it lacks."""
    out = []
    for event in sorted(ledger.pending.events(), key=lambda e: (e.author, e.seq)):
        needs = ((event.prev,) if event.prev else ()) + tuple(event.deps)
        out.append({"hash": event.hash, "author": event.author, "seq": event.seq, "type": event.type,
                    "missing": sorted(h for h in needs if h not in ledger.known)})
    return out


def load_bundle(bundle: Any, ledger: Any) -> dict[str, Any]:
    """Ingest an indexed bundle in causal order: a bad line refuses it with nothing stored."""
    from .bundle import BundleError

    try:
        with progress(len(bundle), "loading") as tick:
            return dict(bundle.load(ledger, tick, IMPORT_BATCH))
    except BundleError as exc:
        raise CliError(str(exc)) from None


_BUNDLES = click.argument("bundles", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
_BUNDLE_OPTION = click.option(
    "--bundle", "bundle_options", multiple=True, metavar="FILE.ndjson",
    help="An exported NDJSON bundle ('-' for stdin); repeat it, or name the files as arguments, to "
         "merge several (any line order, duplicates allowed).")


# ------------------------------------------------------------------ verify

@click.command()
@_BUNDLES
@data_dir_option
@db_url_option
@_BUNDLE_OPTION
@json_option
def verify(bundles: tuple[str, ...], data_dir: Path, db_url: str | None, bundle_options: tuple[str, ...],
           as_json: bool) -> None:
    """Check every event from scratch: bytes, hash, signature, schema, chain link, causal rule.

    BUNDLES... (or --bundle FILE, repeatable; '-' is stdin) are NDJSON bundles, verified as
    one: their union, duplicates merged, put in a causal order before anything is judged, so
    the lines may come in any order. Without them, the data directory's or --db-url's books.
    Names each bad event by author, seq and hash; exit status 1 on any. A database's
    stored projections must also load as a restarting node loads them. Bundles must
    hold the whole ledger from its genesis: an event whose causal past they lack is named."""
    from .audit import Problem, verify_events

    paths = tuple(bundle_options) + tuple(bundles)
    line_problems: list[Problem] = []
    projection_problems: list[Problem] = []
    if paths:
        source = _sources(paths)
        merged = read_bundles(paths)
        forks = merged.forks
        with progress(len(merged), "verifying") as tick:
            report = merged.verify(tick)
        # Bundle.verify puts the bad lines first; those it cannot name by author are printed as lines
        line_problems = [p for p in report.problems[:len(merged.problems)] if p.author == "?"]
        if len(merged) == 0 and merged.problems:  # not one readable line: not a bundle at all
            raise CliError(f"{source}: not an NDJSON audit bundle ({merged.problems[0].problem})")
    else:
        ledger = open_ledger(data_dir, db_url)
        store = ledger.store
        forks = {p.author: p.seq for p in store.fork_proofs()}
        source = db_url or str(data_dir)
        with progress(store.count(), "verifying") as tick:
            def counted() -> Iterator[StoredEvent]:
                for row in store.select_events():
                    tick(1)
                    yield row

            report = verify_events(counted(), forks)
        # The stored projections as a restarting node loads them: rows, checkpoint, then the tail.
        from .projections.consistency import load_stored
        from .projections.runner import default_projections
        from .replay import context_of

        for name, why in sorted(load_stored(ledger, default_projections(), context_of(ledger)).problems.items()):
            projection_problems.append(Problem("-", 0, f"projection {name}", f"stored projection {name} does not "
                                               f"fit the log: {why} (a node rebuilds it from the log on start)"))
        report.problems += projection_problems
    if report.events == 0:
        raise CliError(f"{source}: no events to verify")
    result = report.as_dict()
    result["source"] = source
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{source}: {report.events} events, {report.effective} effective, {report.invalid} without "
                   f"effect (kept with their reason), {len(forks)} fork proof(s)")
        for p in report.problems:
            click.echo(f"BAD {p.problem}" if p in line_problems or p in projection_problems
                       else f"BAD author {p.author} seq {p.seq} hash {p.hash}: {p.problem}")
        supply = report.state.supply()
        click.echo(f"supply conserved: {'yes' if report.state.conserved() else 'NO'} "
                   f"(minted {credits(supply['minted'], report.state.decimals)})")
        click.echo("VERIFY OK" if report.ok else f"VERIFY FAILED: {len(report.problems)} problem(s)")
    sys.exit(0 if report.ok else 1)


# ------------------------------------------------------------------ audit

def _audit_report(ledger: Any, source: str, bundle: bool, run_audit: Any) -> dict[str, Any]:
    if ledger.store.count() == 0 and not len(ledger.pending):
        raise CliError(f"{source}: no events to audit")
    with progress(ledger.store.count(), "auditing") as tick:
        # A bundle's pending buffer is real (its events whose causal past it lacks); a
        # database opened offline has none by construction (see audit.PENDING_OFFLINE).
        report: dict[str, Any] = run_audit(ledger, live=bundle, tick=tick)
    report["source"] = source
    if bundle:
        report["pending"] = "the bundle's events that wait for events it does not hold"
        report["waiting"] = waiting_events(ledger)
        if report["waiting"]:
            report["violations"].append({"problem": f"{len(report['waiting'])} event(s) of the bundle wait for "
                                                    "events it does not hold, so they were not audited"})
            report["ok"] = False
    return report


@click.command()
@_BUNDLES
@data_dir_option
@db_url_option
@_BUNDLE_OPTION
@json_option
def audit(bundles: tuple[str, ...], data_dir: Path, db_url: str | None, bundle_options: tuple[str, ...],
          as_json: bool) -> None:
    """The accountant's report: supply, conservation, balances, escrow, forks, invalid and
    pending events, each node's earnings and spending; exit status 1 on any violation.

    BUNDLES... (or --bundle FILE, repeatable; '-' is stdin) are audited as one: merged, put in
    a causal order and loaded into a temporary database, which is removed afterwards."""
    import tempfile

    from .audit import audit as run_audit
    from .ledger.chain import Ledger

    paths = tuple(bundle_options) + tuple(bundles)
    with tempfile.TemporaryDirectory(prefix="ledger-net-audit-") as scratch:
        if paths:
            source = _sources(paths)
            merged = read_bundles(paths)
            ledger = Ledger.open(f"sqlite:///{Path(scratch) / 'bundle.db'}")
        else:
            source = db_url or str(data_dir)
            ledger = open_ledger(data_dir, db_url)
        try:
            if paths:
                load_bundle(merged, ledger)
            report = _audit_report(ledger, source, bool(paths), run_audit)
        finally:
            ledger.close()
    if as_json:
        emit_json(report)
        sys.exit(0 if report["ok"] else 1)
    d = report["decimals"]
    s = report["supply"]
    click.echo(f"network {short(report['net'], 16)}: {report['events']} events ({report['effective']} effective, "
               f"{report['invalid_events']} without effect), {len(report['forks'])} fork(s), "
               f"{report['void_events']} void event(s) kept aside")
    if report["pending_events"] is None:
        click.echo(f"pending: {report['pending']}")
    else:
        click.echo(f"pending: {report['pending_events']} event(s) of the bundle wait for events it does not hold")
        for w in report.get("waiting", [])[:20]:
            click.echo(f"  waiting: {w['type']} by {short(w['author'], 16)} seq {w['seq']} {w['hash']} needs "
                       + ", ".join(short(h, 16) for h in w["missing"]))
    click.echo(f"minted {credits(s['minted'], d)} = balances {credits(s['balances'], d)} + escrow "
               f"{credits(s['escrow'], d)} + in transit {credits(s['in_transit'], d)} + vouchers "
               f"{credits(s['vouchers'], d)} + burnt {credits(s['burnt'], d)}: "
               f"{'conserved' if report['conserved'] else 'NOT CONSERVED'}")
    if report["accounts"]:
        click.echo(f"{'account':<18}{'name':<16}{'balance':>16}{'escrow':>14}{'incoming':>14}{'earned':>14}"
                   f"{'spent':>14}{'sent':>14}{'received':>14}")
        for a in report["accounts"]:
            click.echo(f"{short(a['account'], 16):<18}{(a['name'] or '-')[:15]:<16}{credits(a['balance'], d):>16}"
                       f"{credits(a['escrow'], d):>14}{credits(a['incoming'], d):>14}{credits(a['earned'], d):>14}"
                       f"{credits(a['spent'], d):>14}{credits(a['sent'], d):>14}{credits(a['received'], d):>14}")
    for f in report["forks"]:
        click.echo(f"fork: author {f['author']} seq {f['seq']}: {f['hashes'][0]} vs {f['hashes'][1]}")
    for r in report["invalid"]:
        click.echo(f"no effect: #{r['offset']} {r['type']} by {short(r['author'], 16)} seq {r['seq']} "
                   f"{r['hash']}: {r['reason']}")
    for v in report["violations"]:
        if "author" in v:
            click.echo(f"violation: author {v['author']} seq {v['seq']} hash {v['hash']}: {v['problem']}")
        else:
            accounts = ", ".join(v.get("accounts", []))
            click.echo(f"violation: {v['problem']}" + (f": {accounts}" if accounts else ""))
            for row in v.get("rows", []):  # a stored projection row that a fresh fold does not give
                columns = "; ".join(f"{c} stored {x['stored']!r}, fold {x['fold']!r}"
                                    for c, x in row.get("columns", {}).items())
                click.echo(f"  {v['table']} row {row['key']}: "
                           + (columns or f"stored {row['stored'] or 'missing'}, fold {row['fold'] or 'missing'}"))
    click.echo(f"state hash {report['state_hash']}")
    click.echo("AUDIT OK" if report["ok"] else "AUDIT FAILED")
    sys.exit(0 if report["ok"] else 1)


# ------------------------------------------------------------------ export / import

@click.command()
@data_dir_option
@db_url_option
@click.option("--after", default=None, metavar="OFFSET|HASH|TIME", help="Only events after this point.")
@click.option("--until", default=None, metavar="OFFSET|HASH|TIME", help="Only events up to this point.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-", show_default=True,
              help="Where to write the NDJSON.")
def export(data_dir: Path, db_url: str | None, after: str | None, until: str | None, output: str) -> None:
    """Write the ledger (or a range) as NDJSON, one stored event a line: the audit bundle."""
    from .replay import resolve_point

    ledger = open_ledger(data_dir, db_url)
    start = resolve_point(ledger, after) if after is not None else 0
    end = resolve_point(ledger, until)
    if end < start:
        raise CliError(f"--until ({end}) is before --after ({start})")
    rows = ledger.store.select_events(after=start, until=end)
    count = 0
    out = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115 -- stdout is not ours to close
    try:
        with progress(end - start if output != "-" else 0, "exporting") as tick:
            for row in rows:
                out.write(bundle_line(row))
                count += 1
                tick(1)
        out.flush()
    finally:
        if output != "-":
            out.close()
    if output != "-":
        warn(f"exported {count} events (offsets {start + 1}..{end}) to {output}")


@click.command(name="import")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@data_dir_option
@db_url_option
@passphrase_option
@json_option
def import_(bundles: tuple[str, ...], data_dir: Path, db_url: str | None, passphrase_file: Path | None,
            as_json: bool) -> None:
    """Load NDJSON bundles into a data directory or database, verifying every event.

    BUNDLES... ('-' is stdin) are merged: any line order, duplicates allowed. Every line is
    checked (bytes, hash, signature) before anything is stored, then the events go, in a
    causal order, through `Ledger.ingest` like events from a peer; the projections follow.
    The node's key signs only a fork proof the bundle reveals: a sealed key is used if its
    passphrase is given (--passphrase-file or the environment), else none is published."""
    from .ledger.identity import KEY_FILE, Identity, is_sealed
    from .projections.runner import ProjectionRunner

    merged = read_bundles(bundles, "checking")  # before anything is created or stored
    problem = merged.first_problem()
    if problem is not None:
        raise CliError(str(problem))
    if not len(merged):
        raise CliError(f"{_sources(bundles)}: no events to import")
    db_url = books_url(data_dir, db_url)
    if db_url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        from .ledger.datadir import DataDir

        url = DataDir(data_dir).database_url()
    else:
        url = db_url
    identity = None
    if (data_dir / KEY_FILE).exists():
        passphrase = key_passphrase(data_dir, passphrase_file, prompt=False, required=False)
        if passphrase is not None or not is_sealed(data_dir):
            identity = Identity.load(data_dir, passphrase)
        del passphrase
    ledger = open_url(url, identity)
    try:
        runner = ProjectionRunner(ledger)
        result = load_bundle(merged, ledger)
        runner.flush()
        result.update(events=ledger.store.count(), net=ledger.net, state_hash=runner.state_hash(),
                      target=db_url or str(data_dir))
    finally:
        ledger.close()
    if as_json:
        emit_json(result)
    else:
        click.echo(f"imported {result['stored']} new events ({result['duplicates']} already present) into "
                   f"{result['target']}; it now holds {result['events']} events, state hash {result['state_hash']}")
    for hash_, reason in list(result["refused"].items())[:10]:
        warn(f"refused {hash_}: {reason}")
    if result["pending"]:
        warn(f"error: {result['pending']} events wait for events the bundle does not hold (not stored)")
    if result["pending"] or result["refused"]:
        sys.exit(1)


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


# ------------------------------------------------------------------ checkpoints and proofs

def _open_checkpoints(data_dir: Path, db_url: str | None, identity: Any = None) -> Any:
    """(ledger, CheckpointService) over a data directory, projections loaded."""
    from .core.checkpoints import CheckpointService
    from .projections.runner import ProjectionRunner

    ledger = open_url(db_url_of(data_dir, db_url), identity) if identity is not None else open_ledger(data_dir, db_url)
    if ledger.net is None:
        ledger.close()
        raise CliError(f"{db_url or data_dir} holds no ledger")
    return ledger, CheckpointService(ledger, ProjectionRunner(ledger), witness=False)


@click.command()
@data_dir_option
@db_url_option
@passphrase_option
@click.option("--make", is_flag=True, help="Sign a new checkpoint of this node's books (needs its key).")
@json_option
def checkpoint(data_dir: Path, db_url: str | None, passphrase_file: Path | None, make: bool, as_json: bool) -> None:
    """Show the latest checkpoint (this node's, else anyone's), or --make one: a signed note of
    the frontier this node holds and the state root of its balances and reputation there."""
    from .errors import NodeError
    from .ledger.identity import KEY_FILE, Identity

    identity = None
    if make:
        if not (data_dir / KEY_FILE).exists():
            raise CliError(f"--make signs with the node's key, and {data_dir / KEY_FILE} does not exist")
        identity = Identity.load(data_dir, key_passphrase(data_dir, passphrase_file))
    ledger, service = _open_checkpoints(data_dir, db_url, identity)
    try:
        try:
            event = service.make() if make else service.resolve(None)
        except NodeError as exc:
            raise CliError(str(exc)) from None
        service.runner.flush()
        view = {**service.describe(event), "net": ledger.net}
    finally:
        ledger.close()
    if as_json:
        emit_json(view)
        return
    click.echo(f"checkpoint {view['hash']} ({'made now' if make else 'latest'})")
    for key in ("net", "signer", "seq", "id", "events", "authors", "frontier_root", "state_size", "state_root"):
        click.echo(f"  {key:<14}{view[key]}")
    click.echo(f"  {'cosigners':<14}{', '.join(view['cosigners']) or 'none yet'}")


@click.group()
def prove() -> None:
    """Proofs a light client checks with the genesis and witness keys alone (see verify-proof)."""


def _write_proof(proof: Any, output: str) -> None:
    from .ledger.proof_codec import compact

    text = orjson.dumps(compact(proof), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    if output == "-":
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


def _prove(data_dir: Path, db_url: str | None, make: Any) -> Any:
    from .errors import NodeError

    ledger, service = _open_checkpoints(data_dir, db_url)
    try:
        return make(service)
    except NodeError as exc:
        raise CliError(str(exc)) from None
    finally:
        ledger.close()


_OUTPUT = click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
                       show_default=True, help="Write the proof here.")
_AT = click.option("--at", default=None, metavar="CHECKPOINT",
                   help="A checkpoint hash or prefix (default: the latest).")


@prove.command(name="balance")
@click.argument("account")
@data_dir_option
@db_url_option
@_AT
@_OUTPUT
def prove_balance(account: str, data_dir: Path, db_url: str | None, at: str | None, output: str) -> None:
    """ACCOUNT's balance, escrow, incoming and vouchers in a checkpoint's state root (or, for an
    account without an entry there, the proof that it has none: it held nothing)."""
    if not is_hash(account):
        raise CliError("ACCOUNT is a node id: 64 lower-case hex characters")
    _write_proof(_prove(data_dir, db_url, lambda s: s.balance_proof(account, at)), output)


@prove.command(name="event")
@click.argument("hash_", metavar="HASH")
@data_dir_option
@db_url_option
@_AT
@_OUTPUT
def prove_event(hash_: str, data_dir: Path, db_url: str | None, at: str | None, output: str) -> None:
    """The event HASH in its author's chain, as a checkpoint names that chain."""
    if not is_hash(hash_):
        raise CliError("HASH is an event hash: 64 lower-case hex characters")
    _write_proof(_prove(data_dir, db_url, lambda s: s.event_proof(hash_, at)), output)


@click.command(name="verify-proof")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--genesis", required=True, metavar="HASH", help="The network id: the genesis event's hash.")
@click.option("--witness", "witnesses", multiple=True, required=True, metavar="KEY",
              help="A witness key you trust (repeat the option for each).")
@click.option("--threshold", type=int, required=True, metavar="K",
              help="How many of those keys must have signed the checkpoint.")
def verify_proof(file: str, genesis: str, witnesses: tuple[str, ...], threshold: int) -> None:
    """Check a proof from `prove` (or the HTTP API) with no database: prints OK, or exits 1
    with one line naming what failed."""
    from . import light
    from .ledger.proof_codec import expand

    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        proof = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        click.echo(f"FAILED: the proof is not JSON ({exc})")
        sys.exit(1)
    verdict = light.verify_proof(proof, net=genesis, witnesses=list(witnesses), threshold=threshold)
    if not verdict.ok:
        click.echo(f"FAILED: {verdict}")
        sys.exit(1)
    proof = expand(proof)  # it verified, so it decodes
    note = (proof.get("checkpoint") or proof.get("new") or {}).get("note", {})
    what = (f"account {proof['account'][:16]}… has no entry (balance 0)" if proof.get("type") == "absence"
            else f"the {proof.get('type')} proof holds")
    click.echo(f"OK: {what} (checkpoint of {str(note.get('signer'))[:16]}…, "
               f"signed by {threshold} or more of the {len(set(witnesses))} trusted key(s))")

COMMANDS = [verify, audit, export, import_, replay, explain, inspect, diff, checkpoint, prove, verify_proof]

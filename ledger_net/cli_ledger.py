"""`ledger-net` commands over a ledger itself (no running node needed): verify, audit,
export, import. The debugging views (replay, explain, inspect, diff) are in `cli_inspect`,
checkpoints and proofs in `cli_proofs`.

They read a data directory's SQLite file, a database URL, or an NDJSON audit bundle
(`export` writes one: a stored event a line, its offset, hash, raw bytes, signature
and this node's verdict). `import` is the one writer, and it goes through
`Ledger.ingest`, which verifies every event before storing it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .bundle import bundle_line
from .cli_common import (
    CliError,
    books_url,
    credits,
    data_dir_option,
    db_url_option,
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
    stored projections must also load as a restarting node loads them (with none stored,
    the log alone is judged: projections_not_stored in --json). Bundles must
    hold the whole ledger from its genesis: an event whose causal past they lack is named."""
    from .audit import Problem, verify_events

    paths = tuple(bundle_options) + tuple(bundles)
    line_problems: list[Problem] = []
    projection_problems: list[Problem] = []
    unstored: list[str] = []  # projections with nothing stored, so not checked (a database only)
    checked: list[str] = []
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

        # Only what is stored is folded: with no projection stored, verify judges the log alone.
        loaded = load_stored(ledger, default_projections(), context_of(ledger), stored_only=True)
        unstored = sorted(loaded.unstored)
        checked = [name for name in loaded.checkpoints if name not in loaded.unstored]
        for name, why in sorted(loaded.problems.items()):
            projection_problems.append(Problem("-", 0, f"projection {name}", f"stored projection {name} does not "
                                               f"fit the log: {why} (a node rebuilds it from the log on start)"))
        report.problems += projection_problems
    if report.events == 0:
        raise CliError(f"{source}: no events to verify")
    result = report.as_dict()
    result["source"] = source
    if not paths:  # which stored projections were checked against the log
        result["projections_not_stored"] = unstored
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{source}: {report.events} events, {report.effective} effective, {report.invalid} without "
                   f"effect (kept with their reason), {len(forks)} fork proof(s)")
        if unstored:
            click.echo("no projection stored: the log alone was judged" if not checked else
                       f"projection(s) not stored, nothing to check: {', '.join(unstored)}")
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


COMMANDS = [verify, audit, export, import_]

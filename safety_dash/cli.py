"""The one command line: ``python -m safety_dash <command>``.

Each command unpacks its arguments, calls one function of the package, prints the result and returns an exit
code; the work itself lives in the package. Settings come from the environment (safety_dash.config).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from safety_dash.config import load_settings
from safety_dash.db.engine import upgrade_database

DEMO_RULES_FILE = Path(__file__).parent / "alerts" / "demo_rules.yaml"


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest one extract folder as a new data cut."""
    import time

    from safety_dash.ingest.pipeline import ingest_extract
    from safety_dash.ingest.summary import format_run_summary

    settings = load_settings()
    if args.cutoff and args.cutoff > dt.date.today():
        print(
            f"warning: --cutoff {args.cutoff.isoformat()} is in the future; nothing after today exists yet",
            file=sys.stderr,
        )
    upgrade_database(settings.database_url)
    started = time.perf_counter()  # a million records take a minute: say what is going on, then how long it took
    print(f"ingesting {args.path} ...", file=sys.stderr, flush=True)
    result = ingest_extract(
        settings.database_url, Path(args.path), args.study, args.cutoff, accept_large_change=args.accept_large_change
    )
    from safety_dash.jobs import follow_up_pending_cuts

    alerts_messages = follow_up_pending_cuts(settings, result.study_id)
    phases = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in (result.seconds or {}).items())
    print(f"ingested {args.path} in {time.perf_counter() - started:.1f} s" + (f" ({phases})" if phases else ""),
          file=sys.stderr, flush=True)  # fmt: skip
    print(json.dumps(result.to_json()) if args.json else format_run_summary(result))
    if alerts_messages and not args.json:
        print("\nAlerts: " + "\n        ".join(alerts_messages))
    return result.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    """Write the synthetic QL1706-shaped demo study (three data cuts) to OUTDIR."""
    import time

    from safety_dash.ingest.demo import write_demo_study

    started = time.perf_counter()
    print(f"writing the demo study ({args.subjects} subjects, three cuts) to {args.outdir} ...", file=sys.stderr,
          flush=True)  # fmt: skip

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    summary = write_demo_study(Path(args.outdir), n_subjects=args.subjects, seed=args.seed, progress=progress)
    print(f"wrote the demo study in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    rules = Path(args.outdir) / "rules" / f"{summary['studyid']}.yaml"
    rules.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_RULES_FILE, rules)
    summary["rules"] = str(rules)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the dashboard (development server; see the README for gunicorn in production)."""
    import os

    from safety_dash.config import follow_served_address
    from safety_dash.web.app import create_app

    settings = follow_served_address(load_settings(), args.host, args.port)
    upgrade_database(settings.database_url)
    # Links written by this process (and what it starts) point at the dashboard served here, unless set.
    os.environ.setdefault("SAFETY_DASH_BASE_URL", settings.base_url)
    app = create_app(settings, warm_up=True)  # the newest cuts are read before the first visitor asks
    print(f"safety-dash on http://{args.host}:{args.port} (Ctrl+C stops it); email links: {settings.base_url}",
          file=sys.stderr, flush=True)  # fmt: skip
    app.run(host=args.host, port=args.port, debug=False)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run every scheduled job in this process until stopped."""
    from safety_dash.scheduler import run_scheduler

    settings = load_settings()
    upgrade_database(settings.database_url)
    if not settings.base_url_configured:
        print(f"warning: SAFETY_DASH_BASE_URL is not set; alert emails link to {settings.base_url}. Set it to the "
              "address readers open the dashboard at", file=sys.stderr, flush=True)  # fmt: skip
    run_scheduler(settings)
    return 0


def cmd_rates(args: argparse.Namespace) -> int:
    """Incidence and exposure-adjusted rates of a data cut, one row per group and term."""
    from safety_dash.analysis import compute_cut_rates, load_baskets, resolve_cut
    from safety_dash.db.engine import get_engine

    settings = load_settings()
    engine = get_engine(settings.database_url)
    cut = resolve_cut(engine, args.study, args.cut)
    baskets = load_baskets(settings.baskets_file) if args.by == "basket" else None
    table = compute_cut_rates(engine, cut, args.by, args.group, baskets, args.min_grade, args.serious, args.related)
    _print_table(table, args.format)
    return 0


def cmd_signals(args: argparse.Namespace) -> int:
    """Signals of a data cut: terms rising since the previous cut or out of line in a group (DOMAIN.md §7)."""
    import numpy as np

    from safety_dash.analysis import load_baskets, resolve_cut
    from safety_dash.db.engine import get_engine
    from safety_dash.signal_store import compute_cut_signals

    settings = load_settings()
    engine = get_engine(settings.database_url)
    cut = resolve_cut(engine, args.study, args.cut)
    baskets = load_baskets(settings.baskets_file) if args.by == "basket" else None
    table = compute_cut_signals(engine, cut, args.by, args.group, baskets, args.min_grade, args.serious, args.related)
    # Undefined values (an infinite ratio or bound when x0 = 0) are empty cells; flagged is 0 / 1.
    table = table.replace([np.inf, -np.inf], np.nan).astype({"flagged": int})
    _print_table(table, args.format)
    return 0


def cmd_labs(args: argparse.Namespace) -> int:
    """Worst on-treatment CTCAE grades of the lab tests of a data cut, per group (DOMAIN.md §8)."""
    from safety_dash.analysis import resolve_cut
    from safety_dash.db.engine import get_engine
    from safety_dash.lab_values import compute_cut_lab_table

    engine = get_engine(load_settings().database_url)
    cut = resolve_cut(engine, args.study, args.cut)
    _print_table(compute_cut_lab_table(engine, cut, args.group, args.min_grade), args.format)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The safety review committee's pack of a data cut (PDF or HTML), with the dashboard's numbers."""
    from safety_dash.analysis import load_baskets
    from safety_dash.db.engine import get_engine
    from safety_dash.report.build import make_committee_pack

    settings = load_settings()
    engine = get_engine(settings.database_url)
    path = make_committee_pack(
        engine, args.study, args.cut, args.since, args.out, args.format, baskets=load_baskets(settings.baskets_file)
    )
    print(f"committee pack written to {path}")
    return 0


def cmd_readmodel_build(args: argparse.Namespace) -> int:
    """Write the read model of data cuts that have none (cuts loaded before it existed, a failed write)."""
    from safety_dash.readmodel import run_build_command

    return run_build_command(load_settings().database_url, args.study, args.cut, args.force)


def _print_table(table, output_format: str) -> None:
    """``table`` on standard output as CSV (empty cells for missing values) or one JSON array (null for them)."""
    from safety_dash.exports import to_safe_csv

    if output_format == "json":
        records = table.astype(object).where(table.notna(), None).to_dict("records")
        print(json.dumps(records))
    else:  # text cells a spreadsheet would run as a formula get a leading ' (safety_dash.exports)
        sys.stdout.write(to_safe_csv(table, index=False, lineterminator="\n"))


def cmd_study_set(args: argparse.Namespace) -> int:
    """Create a study or change its derivation settings."""
    from safety_dash.db.studies import configure_study

    settings = load_settings()
    upgrade_database(settings.database_url)
    study = configure_study(
        settings.database_url,
        args.study_id,
        window_days=args.window_days,
        cohort_column=args.cohort_column,
        ae_key_columns=args.ae_key,
        related_values=args.related,
        ctcae_version=args.ctcae_version,
        episode_key=args.episode_key,
        max_removed_pct=args.max_removed_pct,
        max_quarantined_pct=args.max_quarantined_pct,
        dlt_column=args.dlt_column,
        dlt_days=args.dlt_days,
        lb_key_columns=args.lb_key,
    )
    print(json.dumps(study, indent=2))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the audit trail's hash chain; exit 1 naming the first broken row."""
    from safety_dash.audit import verify_chain
    from safety_dash.db.engine import get_engine

    with get_engine(load_settings().database_url).connect() as connection:
        checked, broken = verify_chain(connection)
    if broken is not None:
        print(f"audit trail broken at row {broken.row_id}: {broken.reason} ({checked} rows before it verified)")
        return 1
    print(f"audit trail verified: {checked} rows, each chained to the one before it")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    """The audit trail (from --since, UTC) as CSV or JSON, oldest first; the export itself goes to the trail."""
    from safety_dash.audit import export_events, record_event
    from safety_dash.db.engine import get_engine

    with get_engine(load_settings().database_url).begin() as connection:
        events = export_events(connection, args.since)
        _print_table(events, args.format)
        record_event(connection, "cli", "audit_exported", "audit_trail", "audit export", after={
            "rows": len(events), "since": args.since, "format": args.format})  # fmt: skip
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create or migrate the database to the newest schema."""
    settings = load_settings()
    upgrade_database(settings.database_url)
    print(f"database is at the newest schema: {settings.database_url.split('@')[-1]}")
    return 0


def cmd_alerts_check(args: argparse.Namespace) -> int:
    """Evaluate the alert rules on the newest cut of each study (or --study, --run) and queue new alerts' emails."""
    from safety_dash.alerts.evaluate import find_latest_cuts
    from safety_dash.db.engine import get_engine
    from safety_dash.db.queries import run_query
    from safety_dash.jobs import evaluate_alerts

    settings = load_settings()
    upgrade_database(settings.database_url)
    if args.run is not None:
        run_ids = [args.run]
    else:
        with get_engine(settings.database_url).connect() as connection:
            pending = run_query(connection, "cuts_not_evaluated", study_id=args.study)["run_id"].astype(int).tolist()
            run_ids = sorted(set(pending) | set(find_latest_cuts(connection, args.study)))
        if not run_ids:
            raise ValueError(f"no data cut of {args.study or 'any study'} yet; ingest an extract first")
    results = [evaluate_alerts(settings, run_id) for run_id in run_ids]
    for result in results:
        print(json.dumps(result.to_json()) if args.json else result.message)
    return 0


def cmd_alerts_send(args: argparse.Namespace) -> int:
    """Deliver the alert emails the outbox holds now (exit code 0: nothing failed or waits; 1: a delivery failed
    for good in this call; 3: deliveries wait for a retry)."""
    from safety_dash.jobs import send_outbox

    settings = load_settings()
    upgrade_database(settings.database_url)
    report = send_outbox(settings)
    print(json.dumps(report.to_json()) if args.json else report.message)
    for where, error in report.errors.items():
        print(f"outbox message {where}: {error}", file=sys.stderr)
    return report.exit_code


def cmd_users_add(args: argparse.Namespace) -> int:
    """Create a user who may sign in (password from standard input when it is not a terminal, else asked twice)."""
    from safety_dash.db.engine import get_engine
    from safety_dash.web.auth import create_user

    settings = load_settings()
    upgrade_database(settings.database_url)
    password = _read_password(args.name, "no user was created")
    user_id = create_user(get_engine(settings.database_url), args.name, password, args.role, replace=args.replace)
    print(f"user {args.name} ({args.role}) {'saved' if args.replace else 'created'}, id {user_id}")
    return 0


def _read_password(name: str, otherwise: str) -> str:
    """A password from standard input when it is not a terminal, else asked twice without echo."""
    import getpass

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if password != getpass.getpass("the same password again: "):
            raise ValueError(f"the two passwords differ; {otherwise}")
        return password
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users_disable(args: argparse.Namespace) -> int:
    """Disable a user: they cannot sign in, and their open sessions end at once (in the audit trail)."""
    from safety_dash.db.engine import get_engine
    from safety_dash.web.auth import disable_user

    settings = load_settings()
    disable_user(get_engine(settings.database_url), args.name, actor="cli")
    print(f"user {args.name} disabled; their sessions have ended")
    return 0


def cmd_users_set_role(args: argparse.Namespace) -> int:
    """Give a user another role; their open sessions end at once (in the audit trail)."""
    from safety_dash.db.engine import get_engine
    from safety_dash.web.auth import set_user_role

    settings = load_settings()
    set_user_role(get_engine(settings.database_url), args.name, args.role, actor="cli")
    print(f"user {args.name} is now {args.role}; their sessions have ended")
    return 0


def cmd_users_reset_password(args: argparse.Namespace) -> int:
    """Set a new password for a user (from standard input, or asked twice); their open sessions end at once."""
    from safety_dash.db.engine import get_engine
    from safety_dash.web.auth import reset_user_password

    settings = load_settings()
    password = _read_password(args.name, "the password was not changed")
    reset_user_password(get_engine(settings.database_url), args.name, password, actor="cli")
    print(f"new password set for {args.name}; their sessions have ended")
    return 0


def add_cut_arguments(parser: argparse.ArgumentParser) -> None:
    """``--study`` and ``--cut``: which data cut a command reads (default: the latest succeeded one)."""
    parser.add_argument("--study", help="study id (default: the study of the latest cut)")
    parser.add_argument("--cut", type=int, metavar="RUN_ID", help="data cut (default: the latest succeeded)")


def add_group_argument(parser: argparse.ArgumentParser) -> None:
    """``--group``: the DM column a table is grouped by."""
    parser.add_argument("--group", help="DM column to group by (default: the study's cohort column, else ACTARM)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="python -m safety_dash", description="Safety signal monitoring for clinical trials."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=handler.__doc__, description=handler.__doc__)
        sub.set_defaults(handler=handler)
        return sub

    def group(name: str, doc: str):
        """A command with commands of its own (``study set``, ``alerts check``); each sets its own handler."""
        parent = commands.add_parser(name, help=doc, description=doc)
        return parent.add_subparsers(dest=f"{name}_command", required=True)

    ingest = add("ingest", cmd_ingest)
    ingest.add_argument("path", help="folder holding dm, ex and ae (.xpt, .sas7bdat or .csv), or adsl and adae")
    ingest.add_argument("--study", help="study id (default: the STUDYID in DM)")
    ingest.add_argument("--cutoff", type=_date, help="data cutoff YYYY-MM-DD (default: cutoff.txt in PATH, else today)")
    ingest.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    ingest.add_argument(
        "--accept-large-change",
        action="store_true",
        help="load even when the run removes or quarantines more of a domain than the study's limits allow",
    )

    demo = add("demo", cmd_demo)
    demo.add_argument("outdir")
    demo.add_argument("--subjects", type=int, default=500)
    demo.add_argument("--seed", type=int, default=1706)

    serve = add("serve", cmd_serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8050)

    add("scheduler", cmd_scheduler)

    rates = add("rates", cmd_rates)
    rates.add_argument("--by", choices=("soc", "pt", "basket"), required=True)
    add_group_argument(rates)
    rates.add_argument("--min-grade", type=int, choices=range(1, 6), metavar="N", help="count events of grade >= N")
    rates.add_argument("--serious", action="store_true", help="count serious events only")
    rates.add_argument("--related", action="store_true", help="count related events only")
    add_cut_arguments(rates)
    rates.add_argument("--format", choices=("csv", "json"), default="csv")

    signals = add("signals", cmd_signals)
    signals.add_argument("--by", choices=("pt", "soc", "basket"), default="pt", help="term level (default pt)")
    add_group_argument(signals)
    signals.add_argument("--min-grade", type=int, choices=range(1, 6), metavar="N", help="count events of grade >= N")
    signals.add_argument("--serious", action="store_true", help="count serious events only")
    signals.add_argument("--related", action="store_true", help="count related events only")
    add_cut_arguments(signals)
    signals.add_argument("--format", choices=("csv", "json"), default="csv")

    report = add("report", cmd_report)
    add_cut_arguments(report)
    report.add_argument("--since", type=int, metavar="RUN_ID", help="list records new or changed since this cut "
                        "(default: the previous cut)")  # fmt: skip
    report.add_argument("--out", metavar="PATH", help="file to write (default: committee-pack_<study>_cut<run>_...)")
    report.add_argument("--format", choices=("pdf", "html"), default="pdf")

    labs = add("labs", cmd_labs)
    labs.add_argument("--by", choices=("test",), default="test", help="one row per group and lab test (direction)")
    add_group_argument(labs)
    labs.add_argument("--min-grade", type=int, choices=range(1, 5), metavar="N",
                      help="only tests where some subject's worst grade is >= N")  # fmt: skip
    add_cut_arguments(labs)
    labs.add_argument("--format", choices=("csv", "json"), default="csv")

    study_commands = group("study", "Study settings: risk window, cohort column, AE key.")
    study_set = study_commands.add_parser("set", help=cmd_study_set.__doc__)
    study_set.set_defaults(handler=cmd_study_set)
    study_set.add_argument("study_id")
    study_set.add_argument("--window-days", type=int, help="risk window W after the last dose (default 90)")
    study_set.add_argument(
        "--cohort-column", help="DM column that groups subjects (default COHORT if present, else ACTARM)"
    )
    study_set.add_argument("--ae-key", help="AE record key columns, e.g. USUBJID,AESPID,AETERM,AESTDTC")
    study_set.add_argument("--lb-key", help="LB record key columns (default USUBJID,LBSEQ), before the first LB load")
    study_set.add_argument("--related", help="AEREL values counted as related, comma-separated")
    study_set.add_argument("--ctcae-version", choices=("5.0", "6.0"))
    study_set.add_argument(
        "--episode-key", help="AE column (e.g. AEGRPID) whose equal values per subject and PT make one event; '' unsets"
    )
    study_set.add_argument(
        "--max-removed-pct", type=float, metavar="PCT", help="refuse a run removing more of a domain's records (10)"
    )
    study_set.add_argument(
        "--max-quarantined-pct", type=float, metavar="PCT", help="refuse a run quarantining more of a domain (10)"
    )

    study_set.add_argument("--dlt-column", help="AE column (or SUPPAE qualifier) flagging a DLT with Y (AEDLT)")
    study_set.add_argument("--dlt-days", type=int, metavar="N", help="DLT period in days from the first dose (21)")

    alerts_commands = group("alerts", "Threshold alerts: evaluate the rules, send the emails.")
    alerts_check = alerts_commands.add_parser("check", help=cmd_alerts_check.__doc__)
    alerts_check.set_defaults(handler=cmd_alerts_check)
    alerts_check.add_argument("--study", help="only this study (default: every study)")
    alerts_check.add_argument("--run", type=int, help="evaluate this data cut (run id) instead of the newest")
    alerts_check.add_argument("--json", action="store_true", help="print one JSON object per cut")
    alerts_send = alerts_commands.add_parser("send", help=cmd_alerts_send.__doc__)
    alerts_send.set_defaults(handler=cmd_alerts_send)
    alerts_send.add_argument("--json", action="store_true",
                             help='print {"sent": n, "waiting": n, "failed": n}: deliveries per recipient')  # fmt: skip

    users_commands = group("users", "Users who may sign in to the dashboard.")
    users_add = users_commands.add_parser("add", help=cmd_users_add.__doc__, description=cmd_users_add.__doc__)
    users_add.set_defaults(handler=cmd_users_add)
    users_add.add_argument("name", help="user name (letters, digits, '.', '_', '@', '-')")
    users_add.add_argument("--role", required=True, choices=("monitor", "committee", "admin"))
    users_add.add_argument("--replace", action="store_true", help="if the user exists, set a new password and role")
    users_disable = users_commands.add_parser("disable", help=cmd_users_disable.__doc__)
    users_disable.set_defaults(handler=cmd_users_disable)
    users_disable.add_argument("name")
    users_role = users_commands.add_parser("set-role", help=cmd_users_set_role.__doc__)
    users_role.set_defaults(handler=cmd_users_set_role)
    users_role.add_argument("name")
    users_role.add_argument("--role", required=True, choices=("monitor", "committee", "admin"))
    users_password = users_commands.add_parser("reset-password", help=cmd_users_reset_password.__doc__)
    users_password.set_defaults(handler=cmd_users_reset_password)
    users_password.add_argument("name")

    readmodel_commands = group("readmodel", "The per-cut files the web workers read (SAFETY_DASH_DATA_DIR/readmodel).")
    readmodel_build = readmodel_commands.add_parser("build", help=cmd_readmodel_build.__doc__)
    readmodel_build.set_defaults(handler=cmd_readmodel_build)
    readmodel_build.add_argument("--study", help="only this study's cuts (default: every study)")
    readmodel_build.add_argument("--cut", type=int, help="only this data cut (run id)")
    readmodel_build.add_argument("--force", action="store_true", help="write the files again where they are present")

    audit_commands = group("audit", "The append-only audit trail: verify its hash chain, export it.")
    audit_commands.add_parser("verify", help=cmd_audit_verify.__doc__).set_defaults(handler=cmd_audit_verify)
    audit_export = audit_commands.add_parser("export", help=cmd_audit_export.__doc__)
    audit_export.set_defaults(handler=cmd_audit_export)
    audit_export.add_argument("--since", type=_date, metavar="DATE", help="only events on or after DATE (UTC)")
    audit_export.add_argument("--format", choices=("csv", "json"), default="csv")

    db_commands = group("db", "Database schema: create or migrate.")
    db_commands.add_parser("upgrade", help=cmd_db_upgrade.__doc__).set_defaults(handler=cmd_db_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return its exit code."""
    from safety_dash.db.errors import DATABASE_ERRORS, describe_database_error

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader (`head`, say) stopped reading: not an error of ours
        sys.stderr.close()
        return 0
    except DATABASE_ERRORS as error:  # database down, URL unusable: one line (password masked), exit 1
        print(f"error: {describe_database_error(error, load_settings().database_url)}", file=sys.stderr)
        return 1
    except ValueError as error:  # argument and configuration problems carry a sentence for the user
        print(f"error: {error}", file=sys.stderr)
        return 2

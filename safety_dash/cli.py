"""The one command line: ``python -m safety_dash <command>``.

Each command unpacks its arguments, calls one function of the package, prints the result and returns an exit
code; the work itself lives in the package. Settings come from the environment (safety_dash.config).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

from safety_dash.config import load_settings
from safety_dash.db.engine import upgrade_database


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest one extract folder as a new data cut."""
    from safety_dash.ingest.pipeline import ingest_extract
    from safety_dash.ingest.summary import format_run_summary

    settings = load_settings()
    upgrade_database(settings.database_url)
    result = ingest_extract(settings.database_url, Path(args.path), args.study, args.cutoff)
    print(json.dumps(result.to_json()) if args.json else format_run_summary(result))
    return result.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    """Write the synthetic QL1706-shaped demo study (three data cuts) to OUTDIR."""
    from safety_dash.ingest.demo import write_demo_study

    summary = write_demo_study(Path(args.outdir), n_subjects=args.subjects, seed=args.seed)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the dashboard (development server; see the README for gunicorn in production)."""
    from safety_dash.web.app import create_app

    settings = load_settings()
    upgrade_database(settings.database_url)
    app = create_app(settings)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run every scheduled job in this process until stopped."""
    from safety_dash.scheduler import run_scheduler

    settings = load_settings()
    upgrade_database(settings.database_url)
    run_scheduler(settings)
    return 0


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
    )
    print(json.dumps(study, indent=2))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Create or migrate the database to the newest schema."""
    settings = load_settings()
    upgrade_database(settings.database_url)
    print(f"database is at the newest schema: {settings.database_url.split('@')[-1]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="python -m safety_dash", description="Safety signal monitoring for clinical trials.")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[[argparse.Namespace], int], doc: str | None = None) -> argparse.ArgumentParser:
        doc = doc or handler.__doc__
        sub = commands.add_parser(name, help=doc, description=doc)
        sub.set_defaults(handler=handler)
        return sub

    ingest = add("ingest", cmd_ingest)
    ingest.add_argument("path", help="folder holding dm, ex and ae (.xpt, .sas7bdat or .csv), or adsl and adae")
    ingest.add_argument("--study", help="study id (default: the STUDYID in DM)")
    ingest.add_argument("--cutoff", type=_date, help="data cutoff YYYY-MM-DD (default: cutoff.txt in PATH, else today)")
    ingest.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")

    demo = add("demo", cmd_demo)
    demo.add_argument("outdir")
    demo.add_argument("--subjects", type=int, default=500)
    demo.add_argument("--seed", type=int, default=1706)

    serve = add("serve", cmd_serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8050)

    add("scheduler", cmd_scheduler)

    study = add("study", lambda a: a.study_handler(a), "Study settings: risk window, cohort column, AE key.")
    study_commands = study.add_subparsers(dest="study_command", required=True)
    study_set = study_commands.add_parser("set", help=cmd_study_set.__doc__)
    study_set.set_defaults(study_handler=cmd_study_set)
    study_set.add_argument("study_id")
    study_set.add_argument("--window-days", type=int, help="risk window W after the last dose (default 90)")
    study_set.add_argument("--cohort-column", help="DM column that groups subjects (default COHORT if present, else ACTARM)")
    study_set.add_argument("--ae-key", help="AE record key columns, e.g. USUBJID,AESPID,AETERM,AESTDTC")
    study_set.add_argument("--related", help="AEREL values counted as related, comma-separated")
    study_set.add_argument("--ctcae-version", choices=("5.0", "6.0"))

    db = add("db", lambda a: a.db_handler(a), "Database schema: create or migrate.")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help=cmd_db_upgrade.__doc__).set_defaults(db_handler=cmd_db_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except ValueError as error:  # argument and configuration problems carry a sentence for the user
        print(f"error: {error}", file=sys.stderr)
        return 2

"""Every schedule of safety-dash in one place. Started only by ``python -m safety_dash scheduler``.

The job store lives in the database (table ``apscheduler_jobs``), missed runs are coalesced into one, and a
job never overlaps itself. Two scheduler processes may run (say, on two hosts); each extract is still
ingested once, because ``ingest_inbox`` claims it by an atomic rename. SIGTERM (``systemctl stop``) lets a running
job finish before the process ends.
"""

from __future__ import annotations

import logging
import signal

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler

from safety_dash.config import Settings
from safety_dash.db.engine import get_engine

log = logging.getLogger(__name__)


def build_scheduler(settings: Settings) -> BlockingScheduler:
    """A scheduler holding every job of safety-dash, not yet started."""
    scheduler = BlockingScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=get_engine(settings.database_url))},
        executors={"default": ThreadPoolExecutor(2)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        timezone="UTC",
    )
    scheduler.add_job(
        "safety_dash.scheduler:run_ingest_inbox",
        "interval",
        minutes=settings.ingest_interval_minutes,
        id="ingest_inbox",
        replace_existing=True,
        next_run_time=_now(),
    )
    scheduler.add_job(
        "safety_dash.scheduler:run_send_outbox",
        "interval",
        minutes=1,
        id="send_outbox",
        replace_existing=True,
        next_run_time=_now(),
    )
    return scheduler


def run_ingest_inbox() -> None:
    """Job entry point: ingest the inbox with the settings in force (read afresh on every run)."""
    from safety_dash.config import load_settings
    from safety_dash.jobs import ingest_inbox

    ingest_inbox(load_settings())


def run_send_outbox() -> None:
    """Job entry point: deliver the alert emails that are due, every minute."""
    from safety_dash.config import load_settings
    from safety_dash.jobs import send_outbox

    send_outbox(load_settings())


def run_scheduler(settings: Settings) -> None:
    """Run the scheduler in the foreground until interrupted (Ctrl+C) or told to stop (SIGTERM: systemd, a
    container's stop); a job that is running then finishes first."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scheduler = build_scheduler(settings)
    signal.signal(signal.SIGTERM, _stop)
    log.info("scheduler started: inbox %s every %s minutes", settings.inbox, settings.ingest_interval_minutes)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("stopping: waiting for the running jobs to finish")
        if scheduler.running:
            scheduler.shutdown(wait=True)
    log.info("scheduler stopped")


def _stop(_signal_number, _frame) -> None:
    raise SystemExit(0)


def _now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)

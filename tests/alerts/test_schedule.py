"""The scheduler runs the alert sender every minute (it is started only by `python -m safety_dash scheduler`)."""

from __future__ import annotations

import dataclasses

from safety_dash.config import load_settings
from safety_dash.scheduler import build_scheduler


def test_build_scheduler_sends_the_outbox_every_minute(tmp_path):
    settings = dataclasses.replace(load_settings(), database_url=f"sqlite:///{tmp_path / 'jobs.db'}")
    jobs = {job.id: job for job in build_scheduler(settings).get_jobs()}
    job = jobs["send_outbox"]
    assert job.func_ref == "safety_dash.scheduler:run_send_outbox"
    assert job.trigger.interval.total_seconds() == 60

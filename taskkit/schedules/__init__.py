"""Recurring schedules: jobs.yaml's ``schedules:`` kept in Redis, each tick fired once.

- :mod:`~taskkit.schedules.store`: where schedules live in Redis, and reading them back;
- :mod:`~taskkit.schedules.sync`: making Redis match the file;
- :mod:`~taskkit.schedules.firing`: firing each tick once;
- :mod:`~taskkit.schedules.starting`: what a tick (or a run by hand) starts: a job or a run;
- :mod:`~taskkit.schedules.by_hand`: running a schedule now;
- :mod:`~taskkit.schedules.views`: what ``schedules list`` and ``status`` show;
- :mod:`~taskkit.schedules.process`: the scheduler process, through Redis outages;
- :mod:`~taskkit.schedules.foreign`: rq-scheduler's processes and entries beside taskkit's;
- :mod:`~taskkit.schedules.imports`: rq-scheduler's entries as jobs.yaml text.
"""

from taskkit.schedules.by_hand import run_now as run_now
from taskkit.schedules.firing import Due as Due
from taskkit.schedules.firing import Scheduler as Scheduler
from taskkit.schedules.firing import Tick as Tick
from taskkit.schedules.store import BY_HAND as BY_HAND
from taskkit.schedules.store import DEFAULT_GRACE as DEFAULT_GRACE
from taskkit.schedules.store import ID_PREFIX as ID_PREFIX
from taskkit.schedules.store import META_SCHEDULE as META_SCHEDULE
from taskkit.schedules.store import META_TICK as META_TICK
from taskkit.schedules.store import RQ_SCHEDULER_JOBS_KEY as RQ_SCHEDULER_JOBS_KEY
from taskkit.schedules.store import SCHEDULED_JOBS_KEY as SCHEDULED_JOBS_KEY
from taskkit.schedules.store import SCHEDULER_KEY_PREFIX as SCHEDULER_KEY_PREFIX
from taskkit.schedules.store import STATE_KEY as STATE_KEY
from taskkit.schedules.store import SYNCED_KEY as SYNCED_KEY
from taskkit.schedules.store import catalog_digest as catalog_digest
from taskkit.schedules.store import fingerprint as fingerprint
from taskkit.schedules.store import schedule_id as schedule_id
from taskkit.schedules.sync import Change as Change
from taskkit.schedules.sync import plan as plan
from taskkit.schedules.sync import sync as sync
from taskkit.schedules.views import ScheduleView as ScheduleView
from taskkit.schedules.views import describe as describe

__all__ = [
    "BY_HAND",
    "DEFAULT_GRACE",
    "ID_PREFIX",
    "META_SCHEDULE",
    "META_TICK",
    "RQ_SCHEDULER_JOBS_KEY",
    "SCHEDULED_JOBS_KEY",
    "SCHEDULER_KEY_PREFIX",
    "STATE_KEY",
    "SYNCED_KEY",
    "Change",
    "Due",
    "ScheduleView",
    "Scheduler",
    "Tick",
    "catalog_digest",
    "describe",
    "fingerprint",
    "plan",
    "run_now",
    "schedule_id",
    "sync",
]

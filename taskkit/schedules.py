"""Recurring schedules: sync jobs.yaml into rq-scheduler's store, and fire each tick once.

Storage is rq-scheduler's own: a template job hash per schedule and its next run time as
the score in the ``rq:scheduler:scheduled_jobs`` sorted set, so rq-scheduler's tools and
rq-dashboard see normal entries. The *timing* is taskkit's (``timing.py``): rq-scheduler
only knows cron in UTC or local time, reschedules intervals from "now" (drift), and holds
one lock that expires (duplicate fires). Here every tick is claimed with an optimistic
transaction on the sorted set: a scheduler fires a tick only if the entry's score is still
that tick's nominal time, and the claim, the enqueue and the move to the next tick are
one MULTI/EXEC. Any number of schedulers may run; a stalled one loses the race instead of
firing twice, and one that dies mid-tick leaves the tick for another. A scheduler whose
jobs.yaml differs from the one last synced (an old process during a deploy) leaves the
ticks to the others rather than fire with its own arguments or timing.

An entry that comes due late (no scheduler ran) is fired once, not once per missed tick:
``misfire: once`` runs its oldest missed tick; ``misfire: skip`` runs the first missed
tick that is still within ``grace``, if any. Either way the next tick is the first one
after now.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

import redis
from rq.job import Job, JobStatus
from rq_scheduler import Scheduler as _RqScheduler

from taskkit import connection
from taskkit.config import ScheduleConfig
from taskkit.errors import ScheduleError
from taskkit.registry import META_KEY, Registry
from taskkit.timing import at_time, next_fire_times

log = logging.getLogger("taskkit.scheduler")

SCHEDULED_JOBS_KEY: str = _RqScheduler.scheduled_jobs_key
"""rq-scheduler's sorted set: schedule entry id -> next run (Unix time)."""
ID_PREFIX = "taskkit-schedule-"
"""Entries whose id starts with this are taskkit's; every other entry is left alone."""
STATE_KEY = "taskkit:schedules:state"
"""Hash: schedule name -> JSON of its last tick (job id, nominal time, outcome)."""
SCHEDULER_KEY_PREFIX = "taskkit:scheduler:"
"""One key per running scheduler process, expiring unless refreshed (for ``status``)."""
DEFAULT_GRACE = 60
"""Seconds a tick may be late and still count as on time (misfire: skip)."""
META_SCHEDULE = "taskkit_schedule"
META_FINGERPRINT = "taskkit_fingerprint"
META_TIMING = "taskkit_timing"
META_TICK = "taskkit_tick"
BY_HAND = "run by hand"
"""The outcome recorded for a run started with ``taskkit schedules run``."""
_ACTIVE = {
    str(s.value)
    for s in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def schedule_id(name: str) -> str:
    """The deterministic rq-scheduler entry id of schedule ``name``."""
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{ID_PREFIX}{_UNSAFE.sub('_', name)}-{digest}"


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _timing_of(schedule: ScheduleConfig) -> str:
    return _digest([schedule.cron, schedule.every, schedule.at, schedule.timezone])


# -- sync -----------------------------------------------------------------------------------

Action = Literal["create", "update", "remove", "unchanged"]


@dataclass(frozen=True)
class Change:
    """One step of a sync plan."""

    action: Action
    name: str
    entry_id: str
    next_run: datetime | None = None

    def __str__(self) -> str:
        when = f" next {self.next_run.isoformat()}" if self.next_run else ""
        return f"{self.action:<9} {self.name}{when}"


@dataclass(frozen=True)
class _Entry:
    entry_id: str
    name: str | None
    fingerprint: str | None
    timing: str | None


def plan(registry: Registry, now: datetime | None = None) -> list[Change]:
    """What :func:`sync` would change, without changing anything."""
    return _plan(registry, _existing(registry), _now(now))


def sync(registry: Registry, now: datetime | None = None, *, dry_run: bool = False) -> list[Change]:
    """Make rq-scheduler's store match jobs.yaml; return the plan it carried out.

    Creates missing entries, updates changed ones in place (keeping their next run when
    only arguments or job settings changed), removes taskkit entries no longer in the
    file (or disabled), and leaves every entry taskkit did not create alone. Running it
    twice changes nothing the second time.
    """
    moment = _now(now)

    def run() -> list[Change]:
        changes = _plan(registry, _existing(registry), moment)
        if not dry_run:
            _apply(registry, changes)
            _forget_removed(registry)
        return changes

    return connection.call(registry.redis_url, "sync schedules", run)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    # Naive means UTC, as in timing.py and enqueue_at; astimezone() would read it as local.
    return (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC)


def _existing(registry: Registry) -> dict[str, _Entry]:
    conn = registry.connection
    ids = [_text(i) for i in conn.zrange(SCHEDULED_JOBS_KEY, 0, -1)]
    ours = [i for i in ids if i.startswith(ID_PREFIX)]
    with conn.pipeline(transaction=False) as pipe:
        for entry_id in ours:
            pipe.hget(Job.key_for(entry_id), "meta")
        metas = pipe.execute()
    entries = {}
    for entry_id, raw in zip(ours, metas, strict=True):
        meta = _job_meta(registry, raw)
        entries[entry_id] = _Entry(
            entry_id,
            meta.get(META_SCHEDULE),
            meta.get(META_FINGERPRINT),
            meta.get(META_TIMING),
        )
    return entries


def _active(pipe: redis.client.Pipeline, job_id: str) -> bool:
    status = pipe.hget(Job.key_for(job_id), "status")
    return status is not None and _text(status) in _ACTIVE


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job_meta(registry: Registry, raw: Any) -> dict[str, Any]:
    """A template's meta, which RQ stores with the job's serializer (JSON or pickle)."""
    if not raw:
        return {}
    try:
        meta = registry.serializer.loads(raw)
    except Exception:  # a foreign or damaged entry: treat as not ours to describe
        return {}
    return meta if isinstance(meta, dict) else {}


def _json_meta(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _plan(registry: Registry, existing: dict[str, _Entry], now: datetime) -> list[Change]:
    changes: list[Change] = []
    wanted: set[str] = set()
    finished = _finished_one_offs(registry)
    for name, schedule in registry.config.schedules.items():
        entry_id = schedule_id(name)
        if not schedule.enabled or name in finished:
            continue
        wanted.add(entry_id)
        entry = existing.get(entry_id)
        if entry is None:
            changes.append(Change("create", name, entry_id, _first_run(schedule, now)))
        elif entry.fingerprint != fingerprint(registry, name):
            keeps_time = entry.timing == _timing_of(schedule)
            first = None if keeps_time else _first_run(schedule, now)
            changes.append(Change("update", name, entry_id, first))
        else:
            changes.append(Change("unchanged", name, entry_id))
    for entry_id, entry in existing.items():
        if entry_id not in wanted:
            changes.append(Change("remove", entry.name or entry_id, entry_id))
    return changes


def _finished_one_offs(registry: Registry) -> set[str]:
    """``at`` schedules whose one tick has already been handled."""
    names = [n for n, s in registry.config.schedules.items() if s.at is not None]
    if not names:
        return set()
    states = registry.connection.hmget(STATE_KEY, names)
    return {
        name
        for name, raw in zip(names, states, strict=True)
        if _fired_once(registry.config.schedules[name], _json_meta(raw))
    }


def _fired_once(schedule: ScheduleConfig, last: dict[str, Any]) -> bool:
    """Whether ``schedule`` is an ``at`` whose one tick was handled (run or skipped)."""
    return schedule.at is not None and last.get("nominal") == at_time(schedule).timestamp()


def _first_run(schedule: ScheduleConfig, now: datetime) -> datetime | None:
    if schedule.at is not None:
        return at_time(schedule)  # even if past: the misfire policy decides at fire time
    upcoming = next_fire_times(schedule, now, 1)
    return upcoming[0] if upcoming else None


def fingerprint(registry: Registry, name: str) -> str:
    """A digest of everything that makes up schedule ``name``'s runs."""
    schedule = registry.config.schedules[name]
    job = registry.jobs[schedule.job].settings
    return _digest([schedule.model_dump(mode="json"), job.model_dump(mode="json")])


def _apply(registry: Registry, changes: list[Change]) -> None:
    with registry.connection.pipeline() as pipe:
        for change in changes:
            if change.action in ("create", "update"):
                _write_template(registry, change, pipe)
            elif change.action == "remove":
                pipe.zrem(SCHEDULED_JOBS_KEY, change.entry_id)
                pipe.delete(Job.key_for(change.entry_id))
        pipe.execute()


def _forget_removed(registry: Registry) -> None:
    """Drop the last-run records of schedules no longer in the file.

    Disabled schedules keep theirs, and so does every ``at`` one-off that fired, in the
    file or not: its record is what stops it from firing again if it comes back.
    """
    declared = set(registry.config.schedules)
    records = registry.connection.hgetall(STATE_KEY)
    gone = [
        name
        for name, raw in ((_text(k), v) for k, v in records.items())
        if name not in declared and not _json_meta(raw).get("one_off")
    ]
    if gone:
        registry.connection.hdel(STATE_KEY, *gone)


def _write_template(registry: Registry, change: Change, pipe: redis.client.Pipeline) -> None:
    schedule = registry.config.schedules[change.name]
    declared = registry.jobs[schedule.job]
    meta: dict[str, Any] = {
        META_KEY: declared.name,
        META_SCHEDULE: change.name,
        META_FINGERPRINT: fingerprint(registry, change.name),
        META_TIMING: _timing_of(schedule),
        "timezone": schedule.timezone,
    }
    # The fields rq-scheduler itself writes, so its tools describe the entry correctly.
    if schedule.cron is not None:
        meta.update(cron_string=schedule.cron, use_local_timezone=False)
    elif schedule.every is not None:
        meta["interval"] = schedule.every
    settings = declared.settings
    template = Job.create(
        settings.rq_func_name,
        args=schedule.args,
        kwargs=schedule.kwargs,
        connection=registry.connection,
        id=change.entry_id,
        serializer=registry.serializer,
        status=JobStatus.SCHEDULED,
        timeout=settings.timeout,
        result_ttl=settings.result_ttl,
        failure_ttl=settings.failure_ttl,
        description=schedule.description or f"schedule {change.name}: {settings.name}",
        meta=meta,
    )
    template.origin = settings.queue
    if change.action == "update":
        pipe.delete(template.key)  # RQ's save is an HSET: fields it no longer writes would stay
    template.save(pipeline=pipe)
    if change.next_run is not None:
        # nx for creates: a concurrent sync that got there first keeps its (equal) time.
        pipe.zadd(
            SCHEDULED_JOBS_KEY,
            {change.entry_id: change.next_run.timestamp()},
            nx=change.action == "create",
        )


# -- firing ---------------------------------------------------------------------------------

Outcome = Literal["enqueued", "skipped-overlap", "skipped-misfire", "lost-race", "stale-config"]
"""``stale-config``: the entry in Redis was synced from another jobs.yaml than this
scheduler's; the tick is left to a scheduler that has the synced file."""


@dataclass(frozen=True)
class Tick:
    """What one scheduler did with one due tick."""

    schedule: str
    nominal: datetime
    outcome: Outcome
    job_id: str | None = None


class Due(NamedTuple):
    """A schedule entry whose stored next run has come, as a pass read it."""

    name: str
    entry_id: str
    score: float


def _on_time_tick(schedule: ScheduleConfig, nominal: datetime, now: datetime) -> datetime | None:
    """The tick a due entry runs as, or None when ``misfire: skip`` drops it.

    ``once`` runs the entry's own tick however late it is. ``skip`` drops ticks later
    than ``grace``; after an outage the entry's tick is long past, but a later missed tick
    may still be within grace, and then the first such tick runs.
    """
    if schedule.misfire == "once":
        return nominal
    grace = schedule.grace if schedule.grace is not None else DEFAULT_GRACE
    earliest = now - timedelta(seconds=grace)
    if nominal >= earliest:
        return nominal
    later = next_fire_times(schedule, earliest - timedelta(microseconds=1), 1)
    return later[0] if later and later[0] <= now else None


class Scheduler:
    """Fires due ticks of the schedules in one jobs.yaml.

    ``tick(now)`` does one pass and takes the time as an argument, so tests inject time
    instead of sleeping; ``run()`` calls it every ``interval`` seconds.
    """

    def __init__(self, registry: Registry, *, interval: float = 1.0) -> None:
        self.registry = registry
        self.interval = interval
        self.by_id = {schedule_id(name): name for name in registry.config.schedules}
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = False
        self._fingerprints = {
            name: fingerprint(registry, name) for name in registry.config.schedules
        }
        self._warned: set[str] = set()

    @property
    def conn(self) -> redis.Redis:
        """The registry's Redis connection."""
        return self.registry.connection

    def tick(self, now: datetime | None = None) -> list[Tick]:
        """Fire every tick due at ``now`` that no other scheduler fired first."""
        moment = _now(now)
        return [self.fire(entry, moment) for entry in self.due(moment)]

    def due(self, now: datetime | None = None) -> list[Due]:
        """This file's entries whose stored next run is at or before ``now``."""
        found: list[tuple[bytes, float]] = self.conn.zrangebyscore(  # type: ignore[assignment]
            SCHEDULED_JOBS_KEY, "-inf", _now(now).timestamp(), withscores=True
        )
        entries = []
        for raw_id, score in found:
            entry_id = _text(raw_id)
            name = self.by_id.get(entry_id)
            if name is not None:
                entries.append(Due(name, entry_id, score))
        return entries

    def fire(self, entry: Due, now: datetime | None = None) -> Tick:
        """Claim ``entry``'s tick and enqueue it, unless another scheduler claimed it first.

        Safe however long ago ``entry`` was read: the claim only succeeds while the stored
        next run is still ``entry.score``, so a stalled scheduler gets ``lost-race``.
        """
        moment = _now(now)
        with self.conn.pipeline() as pipe:
            while True:
                try:
                    return self._claim(pipe, entry, moment)
                except redis.WatchError:
                    continue  # the set changed (another tick, a sync): look again

    def _claim(self, pipe: redis.client.Pipeline, entry: Due, now: datetime) -> Tick:
        name, entry_id, score = entry
        schedule = self.registry.config.schedules[name]
        nominal = datetime.fromtimestamp(score, UTC)
        pipe.watch(SCHEDULED_JOBS_KEY)  # type: ignore[no-untyped-call]
        if pipe.zscore(SCHEDULED_JOBS_KEY, entry_id) != score:
            pipe.unwatch()
            return Tick(name, nominal, "lost-race")
        # A scheduler still running an older (or newer) jobs.yaml must not fire with its
        # own arguments, nor move the entry along its own timing.
        synced = _job_meta(self.registry, pipe.hget(Job.key_for(entry_id), "meta"))
        if synced.get(META_FINGERPRINT) != self._fingerprints[name]:
            pipe.unwatch()
            self._warn_stale(name)
            return Tick(name, nominal, "stale-config")
        # Read before MULTI: in redis-py a watched pipeline runs commands at once.
        previous = _json_meta(pipe.hget(STATE_KEY, name)).get("job_id")
        outcome, fired = self._decide(pipe, schedule, nominal, now, previous)
        following = self._following(schedule, fired, now)
        pipe.multi()
        job_id = self._enqueue(pipe, name, schedule, fired) if outcome == "enqueued" else None
        if following is None:
            pipe.zrem(SCHEDULED_JOBS_KEY, entry_id)
            pipe.delete(Job.key_for(entry_id))  # a finished one-off keeps no template
        else:
            pipe.zadd(SCHEDULED_JOBS_KEY, {entry_id: following.timestamp()})
        state = {
            "nominal": score if fired == nominal else fired.timestamp(),
            "outcome": outcome,
            "at": now.timestamp(),
            # Keeps pointing at the last real run, so overlap checks still see it after a skip.
            "job_id": job_id or previous,
            # A one-off's record is what keeps it from firing again: sync never drops it.
            "one_off": schedule.at is not None,
        }
        pipe.hset(STATE_KEY, name, json.dumps(state))
        pipe.execute()
        log.info(
            "%s: tick %s %s%s",
            name,
            fired.isoformat(),
            outcome,
            f" job={job_id}" if job_id else "",
            extra={
                "schedule": name,
                "tick": fired.isoformat(),
                "outcome": outcome,
                "job_id": job_id,
            },
        )
        return Tick(name, fired, outcome, job_id)

    def _warn_stale(self, name: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning(
                "%s: Redis holds this schedule as synced from another version of %s; "
                "leaving its ticks to a scheduler with that version (run `taskkit schedules "
                "sync` with the file you mean, and restart the schedulers that run an old one)",
                name,
                self.registry.path,
            )

    def _decide(
        self,
        pipe: redis.client.Pipeline,
        schedule: ScheduleConfig,
        nominal: datetime,
        now: datetime,
        previous: str | None,
    ) -> tuple[Outcome, datetime]:
        """What to do with a due entry, and the tick it counts as."""
        fired = _on_time_tick(schedule, nominal, now)
        if fired is None:
            return "skipped-misfire", nominal
        if schedule.overlap == "skip" and previous and _active(pipe, previous):
            return "skipped-overlap", fired
        return "enqueued", fired

    @staticmethod
    def _following(schedule: ScheduleConfig, nominal: datetime, now: datetime) -> datetime | None:
        """The next tick: the first nominal time after both this tick and now.

        On time, that is this tick plus the period (the grid is fixed, so nothing drifts).
        Behind by more than a period (an outage), the ticks in between are not replayed
        one by one: this tick stood for all of them (misfire: once) or was dropped (skip).
        """
        if schedule.at is not None:
            return None
        upcoming = next_fire_times(schedule, max(nominal, now), 1)
        return upcoming[0] if upcoming else None

    def _enqueue(
        self, pipe: redis.client.Pipeline, name: str, schedule: ScheduleConfig, nominal: datetime
    ) -> str:
        declared = self.registry.jobs[schedule.job]
        job = self.registry._create(declared, tuple(schedule.args), dict(schedule.kwargs))
        job.meta.update({META_SCHEDULE: name, META_TICK: nominal.isoformat()})
        self.registry.queue(declared.settings.queue).enqueue_job(job, pipeline=pipe)
        return str(job.id)

    # -- the loop ----------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Announce this scheduler for ``taskkit status``; expires if it stops."""
        ttl = max(int(self.interval * 5), 10)
        self.conn.set(f"{SCHEDULER_KEY_PREFIX}{self.name}", datetime.now(UTC).isoformat(), ex=ttl)

    def stop(self, *_: Any) -> None:
        """Ask :meth:`run` to return after the current pass."""
        self._stop = True

    def run(self, *, burst: bool = False, sleep: Callable[[float], None] = time.sleep) -> None:
        """Fire due ticks every ``interval`` seconds until :meth:`stop` (or once, with burst).

        Passes are aligned just after whole multiples of the interval, where ticks fall,
        so a tick is fired milliseconds after its time rather than up to an interval late.
        """
        while True:
            self.heartbeat()
            self.tick()
            if burst or self._stop:
                break
            wait = self.interval - (time.time() % self.interval) + 0.002
            sleep(wait)
            if self._stop:
                break
        self.conn.delete(f"{SCHEDULER_KEY_PREFIX}{self.name}")


# -- preview --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as ``taskkit schedules list`` shows it."""

    name: str
    schedule: ScheduleConfig
    stored_next: datetime | None
    upcoming: list[datetime]
    last: dict[str, Any]
    state: str

    @property
    def last_run(self) -> datetime | None:
        """When the latest run was due (a tick), or enqueued (a run by hand)."""
        key = "at" if self.last.get("outcome") == BY_HAND else "nominal"
        moment = self.last.get(key)
        return None if moment is None else datetime.fromtimestamp(moment, UTC)


def describe(registry: Registry, now: datetime | None = None, count: int = 3) -> list[ScheduleView]:
    """Each schedule with its stored next run, the next ``count`` times, its last tick."""
    moment = _now(now)
    names = list(registry.config.schedules)

    def read() -> tuple[list[Any], list[Any], dict[str, _Entry]]:
        with registry.connection.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zscore(SCHEDULED_JOBS_KEY, schedule_id(name))
            scores = pipe.execute()
        states = registry.connection.hmget(STATE_KEY, names) if names else []
        return scores, states, _existing(registry)

    scores, states, existing = connection.call(registry.redis_url, "read schedules", read)
    views = []
    for name, score, raw in zip(names, scores, states, strict=True):
        schedule = registry.config.schedules[name]
        stored = datetime.fromtimestamp(score, UTC) if score is not None else None
        entry = existing.get(schedule_id(name))
        last = _json_meta(raw)
        views.append(
            ScheduleView(
                name,
                schedule,
                stored,
                next_fire_times(schedule, moment, count) if schedule.enabled else [],
                last,
                _state(registry, name, entry, stored, last),
            )
        )
    return views


def run_now(
    registry: Registry, name: str, *, force: bool = False, now: datetime | None = None
) -> str:
    """Enqueue schedule ``name``'s job now, with its arguments; the job's id.

    A run by hand counts as the schedule's latest run, so ``overlap: skip`` keeps the
    next tick from starting beside it; it does not move the schedule's next tick. While
    the previous run is queued or running, a schedule with ``overlap: skip`` refuses
    unless ``force``.
    """
    schedule = registry.config.schedules.get(name)
    if schedule is None:
        known = ", ".join(registry.config.schedules) or "none"
        raise ScheduleError(f"no schedule {name!r} in {registry.path} (schedules: {known})")
    moment = _now(now)

    def run() -> str:
        with registry.connection.pipeline() as pipe:
            while True:
                try:
                    return _enqueue_by_hand(registry, pipe, name, force=force, now=moment)
                except redis.WatchError:
                    continue  # a tick or another run-by-hand changed the record: look again

    return connection.call(registry.redis_url, f"run schedule {name}", run)


def _enqueue_by_hand(
    registry: Registry, pipe: redis.client.Pipeline, name: str, *, force: bool, now: datetime
) -> str:
    schedule = registry.config.schedules[name]
    declared = registry.jobs[schedule.job]
    pipe.watch(STATE_KEY)  # type: ignore[no-untyped-call]
    last = _json_meta(pipe.hget(STATE_KEY, name))
    previous = last.get("job_id")
    if schedule.overlap == "skip" and not force and previous and _active(pipe, previous):
        pipe.unwatch()
        raise ScheduleError(
            f"schedule {name!r}: its last run (job {previous}) is still queued or running "
            "and the schedule has overlap: skip; wait for it, or pass --force"
        )
    job = registry._create(declared, tuple(schedule.args), dict(schedule.kwargs))
    job.meta.update({META_SCHEDULE: name, META_TICK: BY_HAND})
    pipe.multi()
    registry.queue(declared.settings.queue).enqueue_job(job, pipeline=pipe)
    # The tick record ("nominal") stays: it is what keeps a done one-off from firing again.
    state = {**last, "outcome": BY_HAND, "at": now.timestamp(), "job_id": job.id}
    pipe.hset(STATE_KEY, name, json.dumps(state))
    pipe.execute()
    log.info("%s: run by hand, job=%s", name, job.id, extra={"schedule": name, "job_id": job.id})
    return str(job.id)


def _state(
    registry: Registry,
    name: str,
    entry: _Entry | None,
    stored: datetime | None,
    last: dict[str, Any],
) -> str:
    schedule = registry.config.schedules[name]
    if not schedule.enabled:
        return "disabled"
    if entry is None or stored is None:
        return "done" if _fired_once(schedule, last) else "not synced"
    if entry.fingerprint != fingerprint(registry, name):
        return "changed (run sync)"
    return "active"


__all__ = [
    "DEFAULT_GRACE",
    "ID_PREFIX",
    "SCHEDULED_JOBS_KEY",
    "STATE_KEY",
    "Change",
    "Due",
    "ScheduleView",
    "Scheduler",
    "Tick",
    "describe",
    "fingerprint",
    "plan",
    "run_now",
    "schedule_id",
    "sync",
]


# -- processes --------------------------------------------------------------------------------


def run_scheduler(registry: Registry, *, interval: float = 1.0, burst: bool = False) -> None:
    """Sync, then fire ticks until SIGTERM/SIGINT (``taskkit run-scheduler``)."""
    import signal

    for change in sync(registry):
        if change.action != "unchanged":
            log.info("sync: %s", change)
    scheduler = Scheduler(registry, interval=interval)
    signal.signal(signal.SIGTERM, scheduler.stop)
    signal.signal(signal.SIGINT, scheduler.stop)
    connection.call(registry.redis_url, "run the scheduler", lambda: scheduler.run(burst=burst))


def start_in_background(registry: Registry, *, interval: float = 1.0) -> Any:
    """Run the scheduler in a child process of a worker (``run-worker --with-scheduler``).

    A process, not a thread: the worker forks a work horse per job, and forking while a
    scheduler thread holds a lock (logging, a connection pool) could deadlock the horse.
    The child exits when its parent does.
    """
    import multiprocessing

    parent = os.getpid()
    process = multiprocessing.get_context("fork").Process(
        target=_background_main,
        args=(registry, interval, parent),
        daemon=True,
        name="taskkit-scheduler",
    )
    process.start()
    return process


def _background_main(registry: Registry, interval: float, parent: int) -> None:
    import signal

    registry.connection = connection.connect(registry.redis_url)  # not the parent's
    scheduler = Scheduler(registry, interval=interval)
    signal.signal(signal.SIGTERM, scheduler.stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when to stop

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        if os.getppid() != parent:  # the worker died without stopping us
            scheduler.stop()

    try:
        scheduler.run(sleep=sleep)
    except redis.ConnectionError as error:
        log.error("scheduler stopped: Redis unreachable (%s)", type(error).__name__)

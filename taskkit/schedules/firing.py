"""Firing each tick once, however many schedulers run.

The *timing* is taskkit's (``taskkit.timing``): rq-scheduler only knows cron in UTC or
local time, reschedules intervals from "now" (drift), and holds one lock that expires
(duplicate fires). Here every tick is claimed with an optimistic transaction on the
sorted set: a scheduler fires a tick only if the entry's score is still that tick's
nominal time, and the claim, the enqueue and the move to the next tick are one
MULTI/EXEC. Any number of schedulers may run; a stalled one loses the race instead of
firing twice, and one that dies mid-tick leaves the tick for another. A scheduler whose
jobs.yaml differs from the one last synced (an old process during a deploy) leaves the
ticks to the others rather than fire with its own arguments or timing.

An entry that comes due late (no scheduler ran) is fired once, not once per missed tick:
``misfire: once`` runs its oldest missed tick; ``misfire: skip`` runs the first missed
tick that is still within ``grace``, if any. Either way the next tick is the first one
after now.

A running scheduler follows the store: each pass also reads the digest of the schedules
last synced. When it differs from its own file's, the scheduler reads its jobs.yaml
again and adopts it if that is what was synced (schedules added, changed or removed
while it runs); when the digest is gone, Redis lost the store (restarted without
persistence) and the scheduler syncs it again from its file, so that the ticks missed
meanwhile come due late and the misfire policy decides them, as after any outage.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple

import redis
from rq.job import Job

from taskkit.config import ScheduleConfig
from taskkit.registry import Registry, load
from taskkit.schedules.starting import start_run, started_field
from taskkit.schedules.store import (
    DEFAULT_GRACE,
    META_FINGERPRINT,
    SCHEDULED_JOBS_KEY,
    SCHEDULER_KEY_PREFIX,
    STATE_KEY,
    SYNCED_KEY,
    _job_meta,
    _json_meta,
    _now,
    _text,
    catalog_digest,
    fingerprint,
    last_started,
    schedule_id,
    still_running,
)
from taskkit.schedules.sync import Change, _sync
from taskkit.timing import next_fire_times

log = logging.getLogger("taskkit.scheduler")

Outcome = Literal["enqueued", "skipped-overlap", "skipped-misfire", "lost-race", "stale-config"]
"""``stale-config``: the entry in Redis was synced from another jobs.yaml than this
scheduler's; the tick is left to a scheduler that has the synced file."""


@dataclass(frozen=True)
class Tick:
    """What one scheduler did with one due tick (``job_id``: the job it enqueued, or the
    workflow run it started)."""

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
    instead of sleeping; :mod:`taskkit.schedules.process` calls it every ``interval``
    seconds. Each pass also follows the store: it adopts the schedules a sync published
    from its own jobs.yaml, and syncs them again if Redis lost them (see the module).
    """

    def __init__(self, registry: Registry, *, interval: float = 1.0) -> None:
        self.interval = interval
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._warned: set[str] = set()
        self.handled_until: datetime | None = None
        """The time of the last pass that fired everything due: each tick up to it was
        handled (by this scheduler or another). What a sync after a loss of the store
        starts from."""
        self._adopt(registry)

    def _adopt(self, registry: Registry) -> None:
        self.registry = registry
        self.by_id = {schedule_id(name): name for name in registry.config.schedules}
        self._fingerprints = {
            name: fingerprint(registry, name) for name in registry.config.schedules
        }
        self.digest = catalog_digest(registry)
        self._file_version = _file_version(registry.path)
        self._warned.clear()

    @property
    def conn(self) -> redis.Redis:
        """The registry's Redis connection."""
        return self.registry.connection

    def tick(self, now: datetime | None = None) -> list[Tick]:
        """Fire every tick due at ``now`` that no other scheduler fired first."""
        moment = _now(now)
        entries, synced = self._read(moment)
        if synced != self.digest and self._follow_store(synced, moment):
            entries, _ = self._read(moment)
        ticks = [self.fire(entry, moment) for entry in entries]
        self.handled_until = moment
        return ticks

    def due(self, now: datetime | None = None) -> list[Due]:
        """This file's entries whose stored next run is at or before ``now``."""
        return self._read(_now(now))[0]

    def _read(self, now: datetime) -> tuple[list[Due], str | None]:
        """The due entries and the digest of the last sync, in one round trip."""
        with self.conn.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(SCHEDULED_JOBS_KEY, "-inf", now.timestamp(), withscores=True)
            pipe.get(SYNCED_KEY)
            found, synced = pipe.execute()
        entries = []
        for raw_id, score in found:
            entry_id = _text(raw_id)
            name = self.by_id.get(entry_id)
            if name is not None:
                entries.append(Due(name, entry_id, score))
        return entries, None if synced is None else _text(synced)

    # -- following the store -----------------------------------------------------------

    def _follow_store(self, synced: str | None, now: datetime) -> bool:
        """Catch up with a store that no longer matches this scheduler's schedules;
        whether anything changed."""
        if synced is None:
            self._restore(now)
            return True
        return self._reload(synced)

    def sync(self, now: datetime | None = None) -> list[Change]:
        """:func:`sync` this scheduler's file, starting from the ticks it knows were
        handled; redis-py's errors are left as they are, for the caller's retries."""
        return _sync(self.registry, _now(now), handled_until=self.handled_until)

    def _restore(self, now: datetime) -> None:
        """Sync again: Redis lost the store (or no sync ever ran on this database)."""
        if self.handled_until is not None:
            log.warning(
                "the schedules are gone from Redis (restarted without persistence?): "
                "syncing them again from %s; ticks missed since %s follow their misfire policy",
                self.registry.path,
                self.handled_until.isoformat(),
            )
        for change in self.sync(now):
            if change.action != "unchanged":
                log.info("sync: %s", change)

    def _reload(self, synced: str) -> bool:
        """Adopt this scheduler's jobs.yaml again if it changed and is what was synced.

        A file that was not synced (yet), or fails to load, changes nothing: this
        scheduler goes on with the schedules it has, and leaves changed ones to others.
        """
        version = _file_version(self.registry.path)
        if version == self._file_version:
            return False
        self._file_version = version
        try:
            registry = load(self.registry.path, cached=False)
        except Exception as error:  # a file half-written, a job module that fails to import
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.warning(
                "cannot read %s again (%s); going on with the schedules it had",
                self.registry.path,
                first,
            )
            return False
        if catalog_digest(registry) != synced:
            return False
        registry.connection = self.conn
        before = self._fingerprints
        self._adopt(registry)
        after = self._fingerprints
        log.info(
            "picked up the schedules synced from %s: %d added, %d changed, %d removed",
            self.registry.path,
            len(after.keys() - before.keys()),
            sum(1 for name in after.keys() & before.keys() if after[name] != before[name]),
            len(before.keys() - after.keys()),
        )
        return True

    # -- firing ------------------------------------------------------------------------

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
        previous = last_started(schedule, _json_meta(pipe.hget(STATE_KEY, name)))
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
            started_field(schedule): job_id or previous,
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
            f" {started_field(schedule)[:-3]}={job_id}" if job_id else "",
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
        if (
            schedule.overlap == "skip"
            and previous
            and still_running(self.registry, pipe, schedule, previous)
        ):
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
        return start_run(self.registry, pipe, name, schedule, nominal.isoformat())

    # -- presence --------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Announce this scheduler for ``taskkit status``; expires if it stops."""
        ttl = max(int(self.interval * 5), 10)
        self.conn.set(f"{SCHEDULER_KEY_PREFIX}{self.name}", datetime.now(UTC).isoformat(), ex=ttl)

    def goodbye(self) -> None:
        """Take this scheduler off ``taskkit status`` (it stops)."""
        self.conn.delete(f"{SCHEDULER_KEY_PREFIX}{self.name}")


def _file_version(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed jobs.yaml apart without reading it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

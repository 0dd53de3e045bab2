"""rq-scheduler's entries as jobs.yaml text: ``taskkit schedules import [--remove]``.

Reads every entry in rq-scheduler's sorted set (cron strings, intervals, one-off times,
repeat counts, functions, arguments, queues, timeouts) and writes the ``jobs:`` and
``schedules:`` that would replace them, with a comment on whatever jobs.yaml cannot
say. Nothing from an entry is imported or called: the job data is read as JSON or with
a restricted unpickler (:mod:`taskkit.safepickle`), and functions are only named.

An entry counts as *imported* once the jobs.yaml given holds a schedule of the same
function, timing and arguments, synced to Redis (whatever its name): only those are
removed by :func:`remove`, so that no schedule stops running between the two steps.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from rq.job import Job

from taskkit.errors import ScheduleError
from taskkit.registry import Registry
from taskkit.safepickle import job_field
from taskkit.schedules.store import ID_PREFIX, RQ_SCHEDULER_JOBS_KEY, _text
from taskkit.schedules.views import describe
from taskkit.timing import at_time

# Meta keys rq-scheduler itself writes; any other key is the team's own.
_SCHEDULER_META = {"cron_string", "use_local_timezone", "interval", "repeat"}
# rq-scheduler's ids are RQ's: uuid4 strings, unless the caller gave one.
_GENERATED_ID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_NO_CALLBACKS = "taskkit never calls callbacks named in Redis"
_DROPPED_FIELDS = {
    "ttl": "a job ttl (taskkit has none; the job's queue settings apply)",
    "depends_on": "a dependency (use a workflow for chains)",
    "success_callback_name": f"an on_success callback ({_NO_CALLBACKS})",
    "failure_callback_name": f"an on_failure callback ({_NO_CALLBACKS})",
    "stopped_callback_name": f"an on_stopped callback ({_NO_CALLBACKS})",
}


@dataclass
class Imported:
    """One rq-scheduler entry and what jobs.yaml would say instead."""

    entry_id: str
    func_name: str | None = None
    schedule_name: str | None = None
    schedule: dict[str, Any] = field(default_factory=dict)
    job: dict[str, Any] | None = None
    """A new ``jobs:`` entry (None: a job the file declares already is reused)."""
    notes: list[str] = field(default_factory=list)
    """What jobs.yaml cannot say; the entry is imported without it."""
    skipped: str | None = None
    """Why the entry cannot be imported at all."""
    timeout: int | None = None
    in_file: str | None = None
    """The name of the file's schedule that already stands for this entry."""


@dataclass(frozen=True)
class ImportPlan:
    """Every rq-scheduler entry on the database, as jobs.yaml text."""

    entries: list[Imported]
    queues: list[str]

    def yaml(self) -> str:
        """The ``queues:``, ``jobs:`` and ``schedules:`` to paste, with comments."""
        return _render(self)


def read(registry: Registry) -> ImportPlan:
    """Read rq-scheduler's entries on ``registry``'s database (never taskkit's own)."""
    conn = registry.connection
    # Any: redis-py's annotation of zrange varies between versions.
    found: Any = conn.zrange(RQ_SCHEDULER_JOBS_KEY, 0, -1, withscores=True)
    entries = sorted((_text(i), s) for i, s in found if not _text(i).startswith(ID_PREFIX))
    with conn.pipeline(transaction=False) as pipe:
        for entry_id, _ in entries:
            pipe.hgetall(Job.key_for(entry_id))
        hashes = pipe.execute()
    names = _Names(registry)
    queues: list[str] = []
    imported = []
    for (entry_id, score), fields in zip(entries, hashes, strict=True):
        entry = _read_entry(entry_id, score, {_text(k): v for k, v in fields.items()})
        if entry.skipped is None:
            _assign(registry, entry, names, queues, _text(fields.get(b"origin", b"default")))
        imported.append(entry)
    return ImportPlan(imported, queues)


def removable(registry: Registry, plan: ImportPlan) -> list[Imported]:
    """The entries of ``plan`` that ``registry``'s file holds and Redis has synced."""
    active = {view.name for view in describe(registry, count=1) if view.state == "active"}
    return [entry for entry in plan.entries if entry.in_file in active]


def remove(registry: Registry, entries: list[Imported]) -> int:
    """Delete ``entries`` from rq-scheduler's store; how many were still there."""
    if not entries:
        raise ScheduleError(
            f"no rq-scheduler entry is in {registry.path} and synced yet: add the imported "
            f"schedules to it and run `taskkit schedules sync -c {registry.path}` first"
        )
    with registry.connection.pipeline() as pipe:
        for entry in entries:
            pipe.zrem(RQ_SCHEDULER_JOBS_KEY, entry.entry_id)
            pipe.delete(Job.key_for(entry.entry_id))
        results = pipe.execute()
    return sum(int(bool(done)) for done in results[::2])


# -- reading one entry ---------------------------------------------------------------------


def _read_entry(entry_id: str, score: float, fields: dict[str, Any]) -> Imported:
    entry = Imported(entry_id)
    if not fields:
        entry.skipped = "its job hash is gone (rq-scheduler drops such entries itself)"
        return entry
    try:
        data, _ = job_field(fields.get("data"), compressed=True)
        func_name, instance, args, kwargs = list(data)
    except (ValueError, TypeError) as error:
        entry.skipped = f"its job data cannot be read safely: {error}"
        return entry
    if instance is not None or not isinstance(func_name, str) or "." not in func_name:
        entry.skipped = f"it calls {func_name!r}, not a module-level function"
        return entry
    entry.func_name = func_name
    entry.timeout = _timeout(fields.get("timeout"))
    meta = _meta(entry, fields.get("meta"))
    entry.schedule = _timing(entry, meta, score)
    if not _json_ready(args) or not _json_ready(kwargs):
        entry.skipped = (
            "its arguments hold values JSON cannot (datetimes, Decimals, objects); "
            "write the schedule by hand with plain values"
        )
        return entry
    entry.schedule.update(_arguments(list(args), dict(kwargs)))
    _note_dropped(entry, fields, meta)
    return entry


def _timeout(raw: Any) -> int | None:
    try:
        return int(_text(raw)) if raw else None
    except ValueError:
        return None


def _meta(entry: Imported, raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        meta, _ = job_field(raw)
    except ValueError as error:
        entry.notes.append(f"its meta cannot be read safely ({error}); ignored")
        return {}
    return meta if isinstance(meta, dict) else {}


def _timing(entry: Imported, meta: dict[str, Any], score: float) -> dict[str, Any]:
    repeat = meta.get("repeat")
    if meta.get("cron_string"):
        timing: dict[str, Any] = {"cron": str(meta["cron_string"]), "timezone": "UTC"}
        if meta.get("use_local_timezone"):
            entry.notes.append(
                "rq-scheduler computed this cron in the local time of the host running "
                "rqscheduler: set `timezone` to that zone's IANA name"
            )
    elif meta.get("interval"):
        timing = {"every": int(meta["interval"])}
    else:
        moment = datetime.fromtimestamp(score, UTC).replace(tzinfo=None)
        timing = {"at": moment.isoformat(timespec="seconds"), "timezone": "UTC"}
        entry.notes.append("a one-off (enqueue_at/enqueue_in); `at:` runs it once")
    if repeat is not None and ("cron" in timing or "every" in timing):
        entry.notes.append(
            f"repeat: {repeat} runs left; taskkit schedules have no repeat count, so this "
            "one runs until you remove it from jobs.yaml"
        )
    return timing


def _arguments(args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if args:
        found["args"] = args
    if kwargs:
        found["kwargs"] = kwargs
    return found


def _json_ready(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _note_dropped(entry: Imported, fields: dict[str, Any], meta: dict[str, Any]) -> None:
    for name, what in _DROPPED_FIELDS.items():
        if fields.get(name):
            entry.notes.append(f"it has {what}; dropped")
    extra = sorted(set(meta) - _SCHEDULER_META)
    if extra:
        entry.notes.append(f"its meta keys {', '.join(extra)} have no jobs.yaml form; dropped")


# -- jobs, names and the file --------------------------------------------------------------


class _Names:
    """Names handed out so far: the file's own, and the ones this import chose."""

    def __init__(self, registry: Registry) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.taken_jobs = set(registry.jobs)
        self.taken_schedules = set(registry.config.schedules)

    def job(self, wanted: dict[str, Any], base: str) -> str:
        for name, job in self.jobs.items():
            if job == wanted:
                return name
        name = _unique(_UNSAFE.sub("_", base), self.taken_jobs)
        self.jobs[name] = wanted
        return name

    def schedule(self, base: str) -> str:
        return _unique(_UNSAFE.sub("_", base), self.taken_schedules)


def _unique(base: str, taken: set[str]) -> str:
    name, number = base, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    taken.add(name)
    return name


def _assign(
    registry: Registry, entry: Imported, names: _Names, queues: list[str], origin: str
) -> None:
    """Give ``entry`` a job (declared, or new) and a schedule name, unless the file has it."""
    assert entry.func_name is not None
    module, _, attr = entry.func_name.rpartition(".")
    entry.in_file = _in_file(registry, entry)
    declared = [j for j in registry.jobs_calling(entry.func_name) if j.settings.queue == origin]
    if declared:
        job_name = declared[0].name
        if entry.timeout is not None and entry.timeout != declared[0].settings.timeout:
            entry.notes.append(
                f"its timeout {entry.timeout}s differs from job {job_name}'s; the job's applies"
            )
    else:
        wanted: dict[str, Any] = {"func": f"{module}:{attr}", "queue": origin}
        if entry.timeout is not None:
            wanted["timeout"] = entry.timeout
        job_name = names.job(wanted, attr)
        entry.job = names.jobs[job_name]
        if origin not in registry.queue_names and origin not in queues:
            queues.append(origin)
    entry.schedule = {"job": job_name, **entry.schedule}
    if entry.in_file is None:
        base = job_name if _GENERATED_ID.match(entry.entry_id) else entry.entry_id
        entry.schedule_name = names.schedule(base)


def _in_file(registry: Registry, entry: Imported) -> str | None:
    """The file's schedule that runs the same function at the same times with the same
    arguments, whatever its name."""
    for name, schedule in registry.config.schedules.items():
        job = registry.jobs.get(schedule.job) if schedule.job is not None else None
        if job is None or job.settings.rq_func_name != entry.func_name:
            continue
        if schedule.args != entry.schedule.get("args", []):
            continue
        if schedule.kwargs != entry.schedule.get("kwargs", {}):
            continue
        if _same_timing(schedule, entry.schedule):
            return name
    return None


def _same_timing(schedule: Any, timing: dict[str, Any]) -> bool:
    if "cron" in timing:
        return schedule.cron is not None and schedule.cron.split() == timing["cron"].split()
    if "every" in timing:
        return bool(schedule.every == timing["every"])
    if schedule.at is None:
        return False
    wanted = datetime.fromisoformat(timing["at"]).replace(tzinfo=UTC)
    return at_time(schedule) == wanted


# -- the text ------------------------------------------------------------------------------


def _render(plan: ImportPlan) -> str:
    new = [e for e in plan.entries if e.skipped is None and e.in_file is None]
    lines = ["# From rq-scheduler's entries by `taskkit schedules import`."]
    if plan.queues:
        lines += ["queues:", *(f"  {q}: {{}}" for q in plan.queues)]
    jobs = {e.schedule["job"]: e.job for e in new if e.job is not None}
    if jobs:
        lines += ["jobs:", *_indented(yaml.safe_dump(jobs, sort_keys=False))]
    if new:
        lines += ["schedules:", *(line for entry in new for line in _schedule_lines(entry))]
    lines += [_left_line(entry) for entry in plan.entries if entry not in new]
    if not plan.entries:
        lines.append("# (rq-scheduler's set holds no entries on this database)")
    return "\n".join(lines) + "\n"


def _schedule_lines(entry: Imported) -> list[str]:
    lines = [f"  # rq-scheduler entry {entry.entry_id}"]
    lines += [f"  # NOTE: {note}" for note in entry.notes]
    text = yaml.safe_dump({entry.schedule_name: entry.schedule}, sort_keys=False)
    return lines + _indented(text)


def _left_line(entry: Imported) -> str:
    if entry.in_file is not None:
        return f"# entry {entry.entry_id}: in jobs.yaml already, as {entry.in_file}"
    return f"# NOT IMPORTED: entry {entry.entry_id}: {entry.skipped}"


def _indented(text: str) -> list[str]:
    return [f"  {line}" for line in text.splitlines()]


__all__ = ["ImportPlan", "Imported", "read", "removable", "remove"]

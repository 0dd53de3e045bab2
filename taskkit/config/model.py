"""The whole jobs.yaml: redis, app, defaults, queues, jobs, schedules, workflows, worker. No IO.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
)

from taskkit.config.jobs import (
    Defaults,
    EffectiveJob,
    JobConfig,
    QueueConfig,
    RetryConfig,
    Settings,
)
from taskkit.config.schedules import ScheduleConfig
from taskkit.config.values import _FUNC, _NAME, Duration, RedisUrl, Serializer, _Model
from taskkit.config.workflows import WorkflowConfig


class RedisConfig(_Model):
    """Where the queues live."""

    url: RedisUrl = Field(default="redis://localhost:6379/0", validate_default=True)


class AppConfig(_Model):
    """The Flask app the worker builds once per process."""

    factory: Annotated[str, Field(pattern=_FUNC)]
    kwargs: dict[str, Any] = Field(default_factory=dict)
    server_name: str | None = None


class WorkerConfig(_Model):
    """How workers find the jobs of workers that died, and how long they wait for Redis.

    A busy worker renews its job's heartbeat every ``heartbeat_interval``; a job whose
    heartbeat is ``heartbeat_grace`` overdue is abandoned, and the next maintenance pass
    of any running worker (every ``maintenance_interval``) retries or fails it.
    """

    heartbeat_interval: Duration = 10
    heartbeat_grace: Duration = 20
    maintenance_interval: Duration = 30
    redis_timeout: Duration = 300


class TaskkitConfig(_Model):
    """The whole of a jobs.yaml, version 1."""

    version: Literal[1]
    redis: RedisConfig = Field(default_factory=RedisConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    app: AppConfig | None = None
    pythonpath: list[str] = Field(default_factory=list)
    serializer: Serializer = "json"
    defaults: Defaults = Field(default_factory=Defaults)
    queues: dict[Annotated[str, Field(pattern=_NAME)], QueueConfig] = Field(default_factory=dict)
    jobs: dict[Annotated[str, Field(pattern=_NAME)], JobConfig] = Field(default_factory=dict)
    schedules: dict[Annotated[str, Field(pattern=_NAME)], ScheduleConfig] = Field(
        default_factory=dict
    )
    workflows: dict[Annotated[str, Field(pattern=_NAME)], WorkflowConfig] = Field(
        default_factory=dict
    )

    @property
    def queue_names(self) -> list[str]:
        """Queues in priority order: declared ones first, then any only jobs name."""
        names = list(self.queues)
        for job in self.effective_jobs().values():
            if job.queue not in names:
                names.append(job.queue)
        return names

    def effective_jobs(self) -> dict[str, EffectiveJob]:
        """Every job with its settings resolved: defaults, then queue, then job."""
        return {name: self._effective(name, job) for name, job in self.jobs.items()}

    def _effective(self, name: str, job: JobConfig) -> EffectiveJob:
        queue_name = job.queue or self.defaults.queue
        layers: list[Settings] = [self.defaults]
        if queue_name in self.queues:
            layers.append(self.queues[queue_name])
        layers.append(job)

        def pick(field: str, fallback: Any) -> Any:
            value = fallback
            for layer in layers:
                if getattr(layer, field) is not None:
                    value = getattr(layer, field)
            return value

        default_context = "app" if self.app is not None else "none"
        return EffectiveJob(
            name=name,
            func=job.func,
            queue=queue_name,
            context=pick("context", default_context),
            timeout=pick("timeout", 180),
            result_ttl=pick("result_ttl", 86400),
            failure_ttl=pick("failure_ttl", 7 * 86400),
            retry=pick("retry", RetryConfig()),
            description=job.description,
            discard_on=pick("discard_on", []),
            enqueue=pick("enqueue", "immediate"),
            unique=job.unique,
            concurrency=job.concurrency,
            rate_limit=job.rate_limit,
        )

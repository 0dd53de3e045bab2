"""The jobs.yaml format as frozen pydantic models.

No IO here: nothing reads files, talks to Redis or imports user code, so every rule
can be tested on plain dictionaries. The loader (``taskkit.loader``) turns YAML into the
dictionaries these models validate, and maps their errors to file:line:col.

- :mod:`~taskkit.config.values`: durations, secret Redis URLs, names, the model base;
- :mod:`~taskkit.config.jobs`: a job's settings at each level, and its effective ones;
- :mod:`~taskkit.config.schedules`, :mod:`~taskkit.config.workflows`: those sections;
- :mod:`~taskkit.config.model`: the whole file; :mod:`~taskkit.config.references`: the
  checks across sections.
"""

from taskkit.config.jobs import BackoffConfig as BackoffConfig
from taskkit.config.jobs import ConcurrencyConfig as ConcurrencyConfig
from taskkit.config.jobs import Defaults as Defaults
from taskkit.config.jobs import EffectiveJob as EffectiveJob
from taskkit.config.jobs import JobConfig as JobConfig
from taskkit.config.jobs import QueueConfig as QueueConfig
from taskkit.config.jobs import RateLimitConfig as RateLimitConfig
from taskkit.config.jobs import RetryConfig as RetryConfig
from taskkit.config.jobs import Settings as Settings
from taskkit.config.jobs import UniqueConfig as UniqueConfig
from taskkit.config.model import AppConfig as AppConfig
from taskkit.config.model import RedisConfig as RedisConfig
from taskkit.config.model import TaskkitConfig as TaskkitConfig
from taskkit.config.model import WorkerConfig as WorkerConfig
from taskkit.config.references import check_references as check_references
from taskkit.config.schedules import ScheduleConfig as ScheduleConfig
from taskkit.config.values import Context as Context
from taskkit.config.values import Duration as Duration
from taskkit.config.values import Enqueue as Enqueue
from taskkit.config.values import ExceptionName as ExceptionName
from taskkit.config.values import Identifier as Identifier
from taskkit.config.values import RedisUrl as RedisUrl
from taskkit.config.values import SecretUrl as SecretUrl
from taskkit.config.values import Serializer as Serializer
from taskkit.config.values import Ttl as Ttl
from taskkit.config.values import did_you_mean as did_you_mean
from taskkit.config.values import format_duration as format_duration
from taskkit.config.values import parse_duration as parse_duration
from taskkit.config.workflows import StepConfig as StepConfig
from taskkit.config.workflows import WorkflowConfig as WorkflowConfig
from taskkit.urls import redact_url as redact_url

__all__ = [
    "AppConfig",
    "BackoffConfig",
    "ConcurrencyConfig",
    "Context",
    "Defaults",
    "Duration",
    "EffectiveJob",
    "Enqueue",
    "ExceptionName",
    "Identifier",
    "JobConfig",
    "QueueConfig",
    "RateLimitConfig",
    "RedisConfig",
    "RedisUrl",
    "RetryConfig",
    "ScheduleConfig",
    "SecretUrl",
    "Serializer",
    "Settings",
    "StepConfig",
    "TaskkitConfig",
    "Ttl",
    "UniqueConfig",
    "WorkerConfig",
    "WorkflowConfig",
    "check_references",
    "did_you_mean",
    "format_duration",
    "parse_duration",
    "redact_url",
]

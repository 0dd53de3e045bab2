"""taskkit: a declarative task runner for Flask applications on RQ."""

from taskkit.errors import ConfigError as ConfigError
from taskkit.errors import JobArgumentsError as JobArgumentsError
from taskkit.errors import RedisUnavailableError as RedisUnavailableError
from taskkit.errors import TaskkitError as TaskkitError
from taskkit.errors import UndeclaredJobError as UndeclaredJobError
from taskkit.errors import UnknownJobError as UnknownJobError
from taskkit.progress import Progress as Progress
from taskkit.progress import progress as progress
from taskkit.progress import progress_of as progress_of
from taskkit.registry import Registry as Registry
from taskkit.registry import load as load

__version__ = "0.2.0"
"""The release, read by the packaging too (one source for the version)."""

__all__ = [
    "ConfigError",
    "JobArgumentsError",
    "Progress",
    "RedisUnavailableError",
    "Registry",
    "TaskkitError",
    "UndeclaredJobError",
    "UnknownJobError",
    "__version__",
    "load",
    "progress",
    "progress_of",
]

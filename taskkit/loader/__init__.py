"""Reading jobs.yaml: safe YAML with positions, interpolation, file:line:col problems,
import resolution, and the per-process cache of what was loaded.

- :mod:`~taskkit.loader.files`: where the file is, and reading it within bounds
- :mod:`~taskkit.loader.nodes`: YAML to plain data, every value's position kept
- :mod:`~taskkit.loader.interpolation`: ``${VAR}`` from the environment
- :mod:`~taskkit.loader.messages`: pydantic's errors as problems with a fix
- :mod:`~taskkit.loader.document`: the config, with every problem found at once
- :mod:`~taskkit.loader.resolution`: importing every ``func``, binding schedule arguments
- :mod:`~taskkit.loader.cache`: each file loaded once per process; no load waits on itself
"""

from taskkit.loader.document import LoadedConfig as LoadedConfig
from taskkit.loader.document import load_config as load_config
from taskkit.loader.document import parse_config as parse_config
from taskkit.loader.document import read_config as read_config
from taskkit.loader.files import MAX_FILE_BYTES as MAX_FILE_BYTES
from taskkit.loader.files import default_config_path as default_config_path
from taskkit.loader.nodes import MAX_ALIASES as MAX_ALIASES
from taskkit.loader.nodes import MAX_DEPTH as MAX_DEPTH
from taskkit.loader.nodes import MAX_NODES as MAX_NODES
from taskkit.loader.positions import Positions as Positions

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "LoadedConfig",
    "Positions",
    "default_config_path",
    "load_config",
    "parse_config",
    "read_config",
]

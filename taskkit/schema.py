"""The JSON Schema of jobs.yaml, for editors (yaml-language-server) and CI checks."""

from __future__ import annotations

from typing import Any

from taskkit.config import TaskkitConfig

SCHEMA_ID = "https://taskkit.dev/schema/jobs-v1.json"


def json_schema() -> dict[str, Any]:
    """The schema of a version 1 jobs.yaml, generated from the pydantic models."""
    schema = TaskkitConfig.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "taskkit jobs.yaml",  # after the models' own title ("TaskkitConfig")
    }


__all__ = ["json_schema"]

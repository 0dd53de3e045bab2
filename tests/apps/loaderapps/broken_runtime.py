"""A module that exists but raises while it is imported."""

raise RuntimeError("boom while importing broken_runtime")

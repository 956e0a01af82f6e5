#!/usr/bin/env bash
# Install the project with its test extras, lint, then run the test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet -e ".[test]"
python3 -m ruff check planner tests
python3 -m ruff format --check planner tests
python3 -m pytest -q -m "not slow"

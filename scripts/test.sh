#!/usr/bin/env bash
# Install the project with its test extras, lint, then run the test suite (the README's test command).
# The browser test of the HTML reports needs Debian's chromium: installed here when missing (quietly; as
# root, through apt). Where it cannot be installed, that test skips and says why.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet -e ".[test]"
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
      || echo "scripts/test.sh: could not install chromium; the browser test will skip" >&2
  else
    echo "scripts/test.sh: no chromium and no root apt-get to install it; the browser test will skip" >&2
  fi
fi
python3 -m ruff check planner tests
python3 -m ruff format --check planner tests
python3 -m pytest -q -m "not slow"

#!/usr/bin/env bash
# What the test suite needs beyond the host packages: the Python kubernetes client for
# the client-compatibility test.
set -euo pipefail
"$(dirname "$0")/install-deps.sh"
if ! python3 -c 'import kubernetes' >/dev/null 2>&1; then
  echo "installing the Python kubernetes client"
  python3 -m pip install --quiet --disable-pip-version-check 'kubernetes>=31'
fi

#!/usr/bin/env bash
# Creates, once, the virtual environment holding Label Studio for the integration test (a real client).
# It lives apart from the project's .venv because label-studio pins numpy/opencv/django versions of its own.
# Usage: tests/integrations/ls_env.sh [VENV_DIR]   (default <repo>/.cache/ls-venv; git-ignored)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${1:-$REPO/.cache/ls-venv}"
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
MARKER="$VENV/.label-studio-$VERSION"
PYTHON="${LS_PYTHON:-$(command -v python3.11 || command -v python3)}"

mkdir -p "$(dirname "$VENV")"
# Two test runs at once must not install into the same directory together.
exec 9>"$VENV.lock"
flock 9
if [ -f "$MARKER" ] && [ -x "$VENV/bin/label-studio" ]; then
  exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "label-studio==$VERSION"
# An import, not `label-studio --version`: that would create and migrate a default data directory.
"$VENV/bin/python" -c "import label_studio, label_studio_sdk"
touch "$MARKER"

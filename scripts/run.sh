#!/usr/bin/env bash
# Install (into .venv) and run the main job: gateway and studio on embedded defaults with
# the example plugins and policies, in front of the built-in stand-in LLM upstream.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/celgate serve --config examples/celgate.yaml --policies examples/policies "$@"

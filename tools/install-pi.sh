#!/usr/bin/env bash
# Install Vigil on a Raspberry Pi (Raspberry Pi OS Bookworm, 64-bit) as a systemd service.
#
#   sudo bash tools/install-pi.sh [--board pi4|pi5|cm4] [--config FILE] [--no-console] [--no-start]
#
# What it does (idempotent; safe to run again to upgrade):
#   1. apt packages: python3-venv, python3-picamera2 (camera), python3-lgpio (GPIO on Pi 5), alsa-utils (voice)
#   2. copies this checkout to /opt/vigil and builds /opt/vigil/.venv (system site packages, for picamera2)
#   3. the unprivileged `vigil` user (groups gpio, video, dialout, audio, render) and /var/lib/vigil
#   4. /etc/vigil/site.toml (from --config, else the demo config with the board set), checked with `vigil config check`
#   5. vigil.service (Type=notify, watchdog) and, unless --no-console, vigil-console.service on the UART
set -euo pipefail

BOARD=""
CONFIG=""
CONSOLE=1
START=1
PREFIX=/opt/vigil
while [ $# -gt 0 ]; do
  case "$1" in
    --board) BOARD="$2"; shift 2 ;;
    --config) CONFIG="$2"; shift 2 ;;
    --no-console) CONSOLE=0; shift ;;
    --no-start) START=0; shift ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install-pi.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "install-pi.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (sudo bash tools/install-pi.sh)"
SRC="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$SRC/pyproject.toml" ] && [ -d "$SRC/firmware" ] || die "run from a Vigil checkout ($SRC is not one)"

if [ -z "$BOARD" ]; then
  MODEL="$(tr -d '\0' </proc/device-tree/model 2>/dev/null || true)"
  case "$MODEL" in
    *"Raspberry Pi 5"*) BOARD=pi5 ;;
    *"Compute Module 4"*) BOARD=cm4 ;;
    *"Raspberry Pi 4"*) BOARD=pi4 ;;
    *) die "cannot tell the board from '${MODEL:-no /proc/device-tree/model}'; pass --board pi4|pi5|cm4" ;;
  esac
fi
[ -f "$SRC/hw/boards/$BOARD.toml" ] || die "unknown board '$BOARD' (known: $(ls "$SRC/hw/boards" | sed 's/\.toml$//' | tr '\n' ' '))"
if [ -n "$CONFIG" ] && [ ! -f "$CONFIG" ]; then die "config file $CONFIG not found"; fi
echo "==> board: $BOARD"

echo "==> system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3-venv python3-pip alsa-utils >/dev/null
apt-get install -y -qq python3-picamera2 python3-lgpio >/dev/null 2>&1 \
  || echo "    (python3-picamera2/python3-lgpio not available: not Raspberry Pi OS? the camera source will be missing)"

echo "==> service user and directories"
install -D -m 0644 "$SRC/systemd/vigil.sysusers" /usr/lib/sysusers.d/vigil.conf
install -D -m 0644 "$SRC/systemd/vigil.tmpfiles" /usr/lib/tmpfiles.d/vigil.conf
systemd-sysusers vigil.conf
systemd-tmpfiles --create vigil.conf

echo "==> files to $PREFIX"
mkdir -p "$PREFIX"
# keep the venv across upgrades; everything else mirrors the checkout
tar -C "$SRC" --exclude=.git --exclude=.venv --exclude='__pycache__' -cf - . | tar -C "$PREFIX" -xf -
chown -R root:root "$PREFIX"
if [ ! -x "$PREFIX/.venv/bin/python" ]; then
  python3 -m venv --system-site-packages "$PREFIX/.venv"
fi
"$PREFIX/.venv/bin/python" -m pip install -q --upgrade pip
"$PREFIX/.venv/bin/python" -m pip install -q -e "$PREFIX"

echo "==> site config /etc/vigil/site.toml"
install -d -m 0750 -o root -g vigil /etc/vigil
if [ -n "$CONFIG" ]; then
  install -m 0640 -o root -g vigil "$CONFIG" /etc/vigil/site.toml
elif [ ! -f /etc/vigil/site.toml ]; then
  DEMO="$(ls "$PREFIX"/demo/*.toml 2>/dev/null | head -n1 || true)"
  if [ -n "$DEMO" ]; then
    install -m 0640 -o root -g vigil "$DEMO" /etc/vigil/site.toml
  else
    printf '[site]\nboard = "%s"\n\n[camera]\nsource = "picamera2"\n' "$BOARD" >/etc/vigil/site.toml
    chmod 0640 /etc/vigil/site.toml; chgrp vigil /etc/vigil/site.toml
  fi
fi
if ! grep -qE '^\s*board\s*=' /etc/vigil/site.toml; then
  if grep -q '^\[site\]' /etc/vigil/site.toml; then
    sed -i "/^\[site\]/a board = \"$BOARD\"" /etc/vigil/site.toml
  else
    printf '[site]\nboard = "%s"\n\n%s\n' "$BOARD" "$(cat /etc/vigil/site.toml)" >/etc/vigil/site.toml.new
    mv /etc/vigil/site.toml.new /etc/vigil/site.toml
    chmod 0640 /etc/vigil/site.toml; chgrp vigil /etc/vigil/site.toml
  fi
fi
"$PREFIX/.venv/bin/vigil" config check /etc/vigil/site.toml \
  || die "/etc/vigil/site.toml has problems (listed above); fix it and run again"

if [ ! -f /etc/vigil/console.key ]; then
  echo "==> serial console key /etc/vigil/console.key (acting console commands need it; docs/diagnostics.md)"
  (umask 0137; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >/etc/vigil/console.key; echo >>/etc/vigil/console.key)
  chgrp vigil /etc/vigil/console.key
  echo "    copy it to the field engineers' vigil-diag (--console-key FILE); keep it off the store's network"
fi

echo "==> systemd units"
install -m 0644 "$SRC/systemd/vigil.service" /etc/systemd/system/vigil.service
if [ "$CONSOLE" = 1 ]; then
  install -m 0644 "$SRC/systemd/vigil-console.service" /etc/systemd/system/vigil-console.service
  if command -v raspi-config >/dev/null 2>&1; then
    # serial hardware on, login shell off: the UART belongs to the diagnostics console
    raspi-config nonint do_serial_hw 0 || true
    raspi-config nonint do_serial_cons 1 || true
  fi
fi
sed -i "s#/opt/vigil#$PREFIX#g" /etc/systemd/system/vigil.service
[ "$CONSOLE" = 1 ] && sed -i "s#/opt/vigil#$PREFIX#g" /etc/systemd/system/vigil-console.service
systemctl daemon-reload
systemctl enable vigil.service >/dev/null
[ "$CONSOLE" = 1 ] && systemctl enable vigil-console.service >/dev/null
if [ "$START" = 1 ]; then
  systemctl restart vigil.service
  [ "$CONSOLE" = 1 ] && { systemctl restart vigil-console.service || echo "    console not started (is /dev/serial0 enabled? reboot after raspi-config)"; }
  sleep 3
  systemctl --no-pager --lines=5 status vigil.service || true
fi
echo "done: logs with  journalctl -u vigil -f ; health with  $PREFIX/.venv/bin/vigil-diag --serial /dev/ttyUSB0 selftest (from a laptop)"

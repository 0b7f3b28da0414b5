#!/usr/bin/env bash
# Set up maskwatch on a fresh Debian/Ubuntu machine and run it on one video file or RTSP URL.
#   ./deploy/quickstart.sh SOURCE [maskwatch run options]
# e.g. ./deploy/quickstart.sh rtsp://user:pass@camera/stream1 --fps 5
#      ./deploy/quickstart.sh video.mp4 --events-out events.jsonl
# Installs redis-server if missing (maskwatch run starts a private one), a virtualenv in .venv,
# then runs all three stages; with a file it exits once every frame's event is published.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: $0 SOURCE [maskwatch run options]   (SOURCE: video file or rtsp:// URL)" >&2
  exit 2
fi
source_url=$1
shift
case "$source_url" in
  *://*) ;;
  *) source_url=$(realpath "$source_url") ;;
esac

if ! command -v redis-server >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi
python=$(command -v python3.11 || command -v python3)
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .

exec .venv/bin/maskwatch run --source "$source_url" "$@"

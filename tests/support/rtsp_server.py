#!/usr/bin/env python3
"""A real RTSP server for tests: GStreamer's gst-rtsp-server serving an H.264 MP4 in a loop.

Runs under Debian's system Python (python3-gi, gir1.2-gst-rtsp-server-1.0):
    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --path /cam FILE.mp4
Prints ``READY`` once it listens. Each client gets the file from the start (not shared).
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/cam")
    args = p.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( filesrc location={args.file} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    print("READY", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real RTSP camera for tests: GStreamer's RTSP server serving a live H.264 test pattern.

Run under the *system* Python (``/usr/bin/python3``), which has PyGObject and the GstRtspServer
typelib from Debian packages (``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``,
``gstreamer1.0-plugins-{base,good,ugly}``); the project's virtual environment does not. The test
fixture (``tests/fixtures_rtsp.py``) starts it as a subprocess and waits for the ``READY`` line, so
no test sleeps to guess when the camera is up.

Usage::

    /usr/bin/python3 tests/rtsp_server.py --port 0 --mount /cam --size 320x240 --fps 15 \
        [--username USER --password PASS]

Prints exactly one line ``READY port=<port> encoder=<element>`` on stdout once it listens (port 0
picks a free loopback port and reports it, so restarts can ask for the same one). Exits when stdin
reaches end of file, so a crashed test run never leaves a camera behind, and on SIGTERM/SIGINT.

Exit codes: 0 clean stop, 3 GStreamer bindings missing, 4 cannot listen on the port, 5 no H.264
encoder element (install ``gstreamer1.0-plugins-ugly`` for x264enc).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

EXIT_NO_BINDINGS = 3
EXIT_CANNOT_LISTEN = 4
EXIT_NO_ENCODER = 5

# Low-latency encoder settings: one keyframe per second so a (re)connecting client starts quickly.
_ENCODERS = {
    "x264enc": "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bitrate=800",
    "openh264enc": "openh264enc complexity=low gop-size={fps} bitrate=800000",
}


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--mount", default="/test", help="mount path, e.g. /cam")
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the test pattern")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--username", default=None, help="require RTSP basic auth")
    parser.add_argument("--password", default=None)
    args = parser.parse_args(argv)
    if not args.mount.startswith("/"):
        parser.error("--mount must start with '/'")
    if (args.username is None) != (args.password is None):
        parser.error("--username and --password go together")
    try:
        width, height = (int(part) for part in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must look like 320x240, got {args.size!r}")
    args.width, args.height = width, height
    return args


def _launch_line(encoder: str, width: int, height: int, fps: int) -> str:
    return (
        f"( videotestsrc is-live=true pattern=ball "
        f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! videoconvert ! {_ENCODERS[encoder].format(fps=fps)} "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, Gst, GstRtspServer
    except (ImportError, ValueError) as error:
        print(f"NOGST {error}", flush=True)
        return EXIT_NO_BINDINGS

    Gst.init(None)
    encoder = next((name for name in _ENCODERS if Gst.ElementFactory.find(name)), None)
    if encoder is None:
        print("NOENCODER install gstreamer1.0-plugins-ugly (x264enc)", flush=True)
        return EXIT_NO_ENCODER

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(_launch_line(encoder, args.width, args.height, args.fps))
    # Not shared: every client gets its own pipeline that starts on a keyframe, like a camera would
    # serve a fresh session, so reconnect tests do not wait for the next IDR.
    factory.set_shared(False)

    if args.username is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.username, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)

    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"CANNOTLISTEN port={args.port}", flush=True)
        return EXIT_CANNOT_LISTEN

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)

    def _on_stdin(fd: int, _condition: object) -> bool:
        # End of file on stdin means the test process is gone: leave with it.
        if not os.read(fd, 4096):
            loop.quit()
            return False
        return True

    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, _on_stdin)

    print(f"READY port={server.get_bound_port()} encoder={encoder}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

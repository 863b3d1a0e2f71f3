"""Can an OpenCV window open here? Answered before OpenCV is asked, because asking can kill us.

The ``opencv-python`` wheel shows windows through Qt's xcb plugin. When it cannot reach an X server,
Qt does not raise: it prints "could not connect to display" and aborts the whole process (SIGABRT),
taking the pipeline with it. So we connect to the X server ourselves first, with the same libxcb Qt
would use, and turn a failure into a message the user can act on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import re
import sys

import cv2

logger = logging.getLogger(__name__)


def display_problem() -> str | None:
    """Say why no OpenCV window can be opened in this process, or return None when one can.

    Returns:
        A one-line message that says what to do, or None.
    """
    backend = _opencv_gui_backend()
    if backend in ("", "NONE"):
        return (
            "OpenCV was built without a GUI (opencv-python-headless?): install opencv-python "
            "to show windows, or use a video:/jsonl: sink instead of screen"
        )
    if sys.platform in ("win32", "darwin"):
        return None
    if backend.startswith("QT") and os.environ.get("QT_QPA_PLATFORM", "xcb") not in ("", "xcb"):
        return None  # the user picked another Qt platform (offscreen, vnc...): trust them
    display = os.environ.get("DISPLAY", "")
    if not display:
        return (
            "no display for the screen sink: DISPLAY is not set; run from a desktop session, "
            "forward X (ssh -X), or start Xvfb and export DISPLAY"
        )
    error = _xcb_connect_error(display)
    if error is not None:
        return f"no display for the screen sink: cannot connect to X display {display!r} ({error})"
    return None


@functools.cache
def _opencv_gui_backend() -> str:
    match = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
    return match.group(1).upper() if match else ""


def _xcb_connect_error(display: str) -> str | None:
    """Open and close one X connection the way Qt's xcb plugin would; say what went wrong."""
    library = ctypes.util.find_library("xcb")
    if library is None:
        return "libxcb is not installed; install the libxcb1 package"
    xcb = ctypes.CDLL(library)
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    xcb.xcb_connection_has_error.restype = ctypes.c_int
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.restype = None
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    screen = ctypes.c_int(0)
    # xcb_connect never returns NULL: failures come back as an error connection object.
    connection = xcb.xcb_connect(display.encode(), ctypes.byref(screen))
    try:
        code = xcb.xcb_connection_has_error(connection)
    finally:
        xcb.xcb_disconnect(connection)
    if code == 0:
        return None
    return _XCB_ERRORS.get(code, f"xcb error {code}")


_XCB_ERRORS = {
    1: "connection failed: is the X server running?",
    2: "the server does not support a needed extension",
    3: "out of memory",
    4: "request too long",
    5: "cannot parse the display string",
    6: "no such screen on the display",
    7: "file descriptor passing failed",
}

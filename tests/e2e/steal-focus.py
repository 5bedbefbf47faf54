"""Takes the X input focus from the app under test, as another window brought to the front
does, and gives it back once its stdin closes. Xlib through ctypes: nothing to install."""

import ctypes
import sys

xlib = ctypes.cdll.LoadLibrary("libX11.so.6")
xlib.XOpenDisplay.restype = ctypes.c_void_p
xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
xlib.XDefaultRootWindow.restype = ctypes.c_ulong
xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
xlib.XCreateSimpleWindow.restype = ctypes.c_ulong
xlib.XCreateSimpleWindow.argtypes = [
    ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int,
    ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_ulong,
]
xlib.XMapRaised.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
xlib.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
xlib.XSetInputFocus.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong]
xlib.XGetInputFocus.argtypes = [
    ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_int),
]
xlib.XDestroyWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]

REVERT_TO_PARENT = 2
CURRENT_TIME = 0

display = xlib.XOpenDisplay(None)
if not display:
    sys.exit("no X display")
previous, revert = ctypes.c_ulong(), ctypes.c_int()
xlib.XGetInputFocus(display, ctypes.byref(previous), ctypes.byref(revert))
window = xlib.XCreateSimpleWindow(display, xlib.XDefaultRootWindow(display), 0, 0, 200, 100, 0, 0, 0)
xlib.XMapRaised(display, window)
xlib.XSync(display, 0)
xlib.XSetInputFocus(display, window, REVERT_TO_PARENT, CURRENT_TIME)
xlib.XSync(display, 0)
print("focused", flush=True)
sys.stdin.read()
xlib.XSetInputFocus(display, previous.value, revert.value, CURRENT_TIME)
xlib.XDestroyWindow(display, window)
xlib.XSync(display, 0)
xlib.XCloseDisplay(display)

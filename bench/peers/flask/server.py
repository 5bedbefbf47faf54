"""The seed protocol as the old server ran it: Flask-SocketIO through `socketio.run`, on Werkzeug,
in threading mode (simple-websocket carries the websockets). A welcome on connect, disconnects
logged, every `message` broadcast to all. Prints `listening on http://ADDRESS` like the others."""

import os

from flask import Flask
from flask_socketio import SocketIO, emit

app = Flask(__name__)
socketio = SocketIO(app, async_mode="threading", cors_allowed_origins="*")


@socketio.on("connect")
def connect(auth=None):
    emit("welcome", {"message": "welcome"})


@socketio.on("disconnect")
def disconnect(*_reason):
    app.logger.info("client disconnected")


@socketio.on("message")
def message(text):
    emit("message", text, broadcast=True)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    # Printed before Werkzeug binds: the harness waits until the port accepts connections.
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    socketio.run(app, host="127.0.0.1", port=port, allow_unsafe_werkzeug=True)

"""The chapter's key/value server, rewritten from its description, as the benchmark baseline.

Every key is a file under the data dir; run on Flask's development server, as the book does.
  GET /save/<key>/<value>  -> 200, body = value
  GET /load/<key>          -> 200, body = value, or 200 "_key_not_found_"
  GET /allKeys             -> 200, keys comma-separated
  any route while shutting down -> 503 "_shutting_down_"
"""

import os
import signal
import sys

from flask import Flask

DATA_DIR = os.environ.get("DATA_DIR", "/data")
app = Flask(__name__)
shutting_down = False


@app.route("/save/<key>/<value>")
def save(key, value):
    if shutting_down:
        return "_shutting_down_", 503
    with open(os.path.join(DATA_DIR, key), "w") as f:
        f.write(value)
    return value


@app.route("/load/<key>")
def load(key):
    if shutting_down:
        return "_shutting_down_", 503
    path = os.path.join(DATA_DIR, key)
    if not os.path.exists(path):
        return "_key_not_found_"
    with open(path) as f:
        return f.read()


@app.route("/allKeys")
def all_keys():
    if shutting_down:
        return "_shutting_down_", 503
    return ",".join(os.listdir(DATA_DIR))


def on_sigterm(_signum, _frame):
    global shutting_down
    shutting_down = True
    sys.exit(0)


if __name__ == "__main__":
    os.makedirs(DATA_DIR, exist_ok=True)
    signal.signal(signal.SIGTERM, on_sigterm)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    app.run(host="127.0.0.1", port=port)

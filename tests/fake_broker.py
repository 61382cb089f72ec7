"""A stand-in for `python -m pykbroker` that follows the CLI contract, used to
test tests/brokerproc.py itself. Accepts `--override k=v`; extra knobs:
fake.exit_before_ready=CODE, fake.ignore_sigterm=true, fake.spam_bytes=N
(written to both stdout and stderr right after the ready line; then it
creates the file spam-done in log.dirs)."""

import signal
import socket
import sys
import time

ov = {}
args = sys.argv[1:]
i = 0
while i < len(args):
    if args[i] == "--override":
        k, _, v = args[i + 1].partition("=")
        ov[k] = v
        i += 2
    else:
        i += 1

if "fake.exit_before_ready" in ov:
    print("fake broker: giving up", file=sys.stderr, flush=True)
    sys.exit(int(ov["fake.exit_before_ready"]))

listener = ov.get("listeners", "PLAINTEXT://127.0.0.1:0").split("//", 1)[1]
host, _, port = listener.rpartition(":")
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, int(port)))
srv.listen()
stop = False


def on_term(signum, frame):
    global stop
    stop = True


if ov.get("fake.ignore_sigterm") == "true":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

h, p = srv.getsockname()[:2]
print(f"fake broker ready: listening on {h}:{p} log.dirs={ov.get('log.dirs')}", flush=True)
n = int(ov.get("fake.spam_bytes", "0"))
if n:
    chunk = "x" * 99 + "\n"
    for _ in range(n // 100):
        sys.stdout.write(chunk)
        sys.stderr.write(chunk)
    sys.stdout.flush()
    sys.stderr.flush()
    print("fake broker: spam done", flush=True)
    open(f"{ov['log.dirs']}/spam-done", "w").close()
srv.settimeout(0.05)
deadline = time.monotonic() + 120  # never outlive a test run by much
while not stop and time.monotonic() < deadline:
    try:
        c, _ = srv.accept()
        c.close()
    except TimeoutError:
        pass
print("fake broker: bye", flush=True)

#!/usr/bin/python3
"""A TCP client that holds one connection to the counting service of tests/Migration.Tests.ps1
and sends a numbered request every 10 ms until the stop file exists, reading each answer
("<server count> <request>") on another thread. At the end it prints one JSON line: requests sent,
answers read, whether every answer came once, in order, with the server's count one more than the
last (no request lost or doubled, the server's memory kept), whether the connection was reset, and
the longest wait between two answers (the downtime the client saw), in milliseconds, with the
monotonic clock's microseconds at its start and end (the daemons' trace marks use that clock).

usage: migration-client.py ADDRESS PORT STOPFILE READYFILE
"""
import json, os, socket, sys, threading, time

address, port, stop_file, ready_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sock = socket.create_connection((address, port), timeout=5)
sock.settimeout(None)
sent = 0
state = {"answers": 0, "in_order": True, "reset": None, "first_count": None, "last_count": None, "max_gap_ms": 0.0, "gap_at": None, "gap_from_us": None, "gap_to_us": None,
         "last_at": None, "bad": None}
done = threading.Event()


def reader():
    buf = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                state["reset"] = "closed by the server"
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                now = time.monotonic()
                count, request = (int(x) for x in line.split())
                n = state["answers"] + 1
                if request != n or (state["last_count"] is not None and count != state["last_count"] + 1):
                    state["in_order"] = False
                    state["bad"] = state["bad"] or line.decode()
                if state["first_count"] is None:
                    state["first_count"] = count
                if state["last_at"] is not None and (now - state["last_at"]) * 1000 > state["max_gap_ms"]:
                    state["max_gap_ms"] = (now - state["last_at"]) * 1000
                    state["gap_at"] = n
                    state["gap_from_us"], state["gap_to_us"] = int(state["last_at"] * 1e6), int(now * 1e6)
                state["last_at"] = now
                state["last_count"] = count
                state["answers"] = n
                if done.is_set() and state["answers"] == sent:
                    return
    except OSError as e:
        state["reset"] = f"{type(e).__name__}: {e}"


thread = threading.Thread(target=reader, daemon=True)
thread.start()
try:
    next_at = time.monotonic()
    while not os.path.exists(stop_file):
        sent += 1
        sock.sendall(f"{sent}\n".encode())
        if sent == 20:
            open(ready_file, "w").close()
        next_at += 0.01
        time.sleep(max(0, next_at - time.monotonic()))
except OSError as e:
    state["reset"] = f"{type(e).__name__}: {e}"
done.set()
deadline = time.monotonic() + 30
while state["answers"] < sent and time.monotonic() < deadline and thread.is_alive():
    time.sleep(0.05)
del state["last_at"]
print(json.dumps(dict(state, sent=sent, max_gap_ms=round(state["max_gap_ms"], 1))), flush=True)

#!/usr/bin/env bash
# Refused-connection window of a plain restart when the proxy binds its own listener (no socket
# activation, as before mitmcache.socket): 10 restarts (SIGTERM, wait for the exit, start again, as
# `systemctl restart` of a Type=exec unit does), a client opening a connection every 10 ms meanwhile.
# Usage: packaging/measure-restart.sh PATH-TO-mitmcache FREE-PORT      (needs python3)
# The socket-activated numbers come from tests/MitmCache.FunctionalTests/Node/NodeServiceTests.cs.
set -euo pipefail
bin=$1 port=$2 data=$(mktemp -d) out=$(mktemp)
python3 - "$port" 60 >"$out" <<'PY' &
import socket, sys, time
port = int(sys.argv[1]); end = time.time() + float(sys.argv[2])
ok = refused = other = 0; first_refused = None; windows = []; cur = None
while time.time() < end:
    s = socket.socket(); s.settimeout(5)
    t = time.time()
    try:
        s.connect(("127.0.0.1", port)); s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(64)
        if data.startswith(b"HTTP/1.1 200"): ok += 1
        else: other += 1
        if cur is not None: windows.append(t - cur); cur = None
    except ConnectionRefusedError:
        refused += 1
        if cur is None: cur = t
    except Exception as e:
        other += 1
    finally:
        s.close()
    time.sleep(0.01)
print(f"ok={ok} refused={refused} other={other} windows={len(windows)} longest={max(windows) if windows else 0:.3f}s total={sum(windows):.3f}s")
PY
prober=$!
"$bin" run --listen 127.0.0.1:"$port" --data "$data" >/dev/null 2>&1 & pid=$!
sleep 3
for _ in $(seq 10); do
  kill -TERM $pid; wait $pid || true
  "$bin" run --listen 127.0.0.1:"$port" --data "$data" >/dev/null 2>&1 & pid=$!
  # Serving again before the next restart, as `systemctl restart` waits for a started unit.
  until curl -fs -o /dev/null --noproxy '*' "http://127.0.0.1:$port/healthz"; do sleep 0.05; done
  sleep 1
done
wait $prober
kill -TERM $pid; wait $pid || true
rm -rf "$data"
cat "$out" && rm -f "$out"

"""Measure /api/colorize latency end to end: a real waitress server on 127.0.0.1, N sequential requests.

Usage: .venv/bin/python scripts/api_latency.py [--weights DIR] [--n 50] [--size 512]

Sends the bundled grinning-face example (resized to SIZE×SIZE) with two hint dots as multipart/form-data, the way
the studio page does, and prints p50/p95/mean in milliseconds. Loopback only; bounded in count.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from PIL import Image


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode())
    for name, data in files.items():
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n"
                     "Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="model directory (default: bundled)")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()

    from waitress import create_server

    from linecolor.config import ServerConfig
    from linecolor.server import create_app

    app = create_app(ServerConfig(weights=args.weights))
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}/api/colorize"

    example = Path(__file__).resolve().parents[1] / "src/linecolor/server/static/examples/openmoji-grinning-face.png"
    line = Image.open(example).convert("L").resize((args.size, args.size))
    buf = io.BytesIO()
    line.save(buf, format="PNG")
    s = args.size
    points = json.dumps([[s * 0.3, s * 0.4, "#f5c542", s / 64], [s * 0.5, s * 0.75, "#d83a3a", s / 64]])
    body, content_type = multipart({"points": points, "mode": "deterministic"}, {"line": buf.getvalue()})

    times = []
    try:
        for i in range(args.n + 2):
            request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
            t0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
                assert response.status == 200
            if i >= 2:  # two warm-up requests
                times.append((time.perf_counter() - t0) * 1000)
    finally:
        server.close()
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"/api/colorize {args.size}×{args.size}, {len(times)} requests: p50 {statistics.median(times):.0f} ms, "
          f"p95 {p95:.0f} ms, mean {statistics.fmean(times):.0f} ms")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Measures how fast a running flowhost acknowledges signed Instagram webhooks.

Sends N signed webhook deliveries (each a new customer's message, so every
one is stored and routed) over one keep-alive connection to loopback, and
prints the acknowledgement time percentiles. Bounded in count; loopback only.

    python3 tests/load/webhook_ack.py --port 8080 --secret my-app-secret --count 1000
"""
import argparse
import hashlib
import hmac
import http.client
import json
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--ig-id", default="17841400000000001")
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    if not 0 < args.count <= 100_000:
        raise SystemExit("--count must be between 1 and 100000")

    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
    run = int(time.time() * 1000)
    times = []
    for i in range(args.count):
        body = json.dumps({
            "object": "instagram",
            "entry": [{"id": args.ig_id, "time": run, "messaging": [{
                "sender": {"id": f"LOAD-{run}-{i}"},
                "recipient": {"id": args.ig_id},
                "timestamp": int(time.time() * 1000),
                "message": {"mid": f"mid.load.{run}.{i}", "text": "hello, where is my order?"},
            }]}],
        }).encode()
        signature = "sha256=" + hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
        started = time.perf_counter()
        connection.request("POST", "/webhooks/instagram", body,
                           {"Content-Type": "application/json", "X-Hub-Signature-256": signature})
        response = connection.getresponse()
        response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200:
            raise SystemExit(f"request {i} answered {response.status}")
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000
    print(f"{args.count} webhooks acknowledged: median {pick(0.5):.2f} ms, "
          f"p90 {pick(0.9):.2f} ms, p99 {pick(0.99):.2f} ms, max {times[-1] * 1000:.2f} ms")


if __name__ == "__main__":
    main()

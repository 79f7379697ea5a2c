#!/usr/bin/env python3
"""sip-probe — INVITE -> 200 OK time through a SIP proxy, in microseconds.

SIPp reports response times in whole milliseconds, which cannot tell a 0.3 ms
lookup from a 0.9 ms one. This probe places calls one at a time (alongside SIPp's
load, from the same CPU) and times each INVITE -> 200 with the monotonic clock.
Each call is completed properly: ACK and BYE follow the proxy's Record-Route, so
the proxy's transaction and dialog state is what a real call leaves behind.

Usage: sip-probe.py --target 127.0.0.1:15060 --numbers numbers.csv [--calls 400]
       [--interval-ms 10] [--order random|sequential] [--timeout 2]
Prints one line: PROBE calls=.. ok=.. failed=.. p50_us=.. p90_us=.. p99_us=.. max_us=..
The numbers file is a SIPp injection file (a first line like RANDOM is skipped).
"""

import argparse
import random
import socket
import sys
import time


def parse(data):
    """A SIP message: (first line, {lower-case header name: [values]})."""
    text = data.decode("latin-1")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    compact = {"i": "call-id", "t": "to", "f": "from", "m": "contact", "v": "via"}
    headers = {}
    for line in lines[1:]:
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        name = name.strip().lower()
        name = compact.get(name, name)
        headers.setdefault(name, []).append(value.strip())
    return lines[0], headers


def uri_of(header_value):
    """The URI inside a name-addr (<sip:...>) or a bare addr-spec."""
    if "<" in header_value:
        return header_value.split("<", 1)[1].split(">", 1)[0]
    return header_value.split(";", 1)[0]


class Probe:
    def __init__(self, target, timeout):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.local = self.sock.getsockname()
        self.tag = "probe%d" % random.getrandbits(32)

    def send(self, text):
        self.sock.sendto(text.replace("\n", "\r\n").encode("latin-1"), self.target)

    def wait_final(self, call_id, method, deadline):
        """The final response to `method` in call `call_id`, or None at the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            first, headers = parse(data)
            if not first.startswith("SIP/2.0 "):
                continue
            if headers.get("call-id", [""])[0] != call_id:
                continue
            if not headers.get("cseq", [""])[0].upper().endswith(method):
                continue
            code = int(first.split()[1])
            if code >= 200:
                return code, headers

    def call(self, number, n):
        lhost, lport = self.local
        thost, tport = self.target
        call_id = "%s-%d@%s" % (self.tag, n, lhost)
        via = "SIP/2.0/UDP %s:%d;branch=z9hG4bK%s%d" % (lhost, lport, self.tag, n)
        frm = "<sip:probe@%s:%d>;tag=%s%d" % (lhost, lport, self.tag, n)
        sdp = "v=0\no=probe 1 1 IN IP4 %s\ns=-\nc=IN IP4 %s\nt=0 0\nm=audio 9 RTP/AVP 0\n" % (lhost, lhost)
        sdp = sdp.replace("\n", "\r\n")
        invite = (
            "INVITE sip:%s@%s:%d SIP/2.0\nVia: %s\nFrom: %s\nTo: <sip:%s@%s:%d>\nCall-ID: %s\n"
            "CSeq: 1 INVITE\nContact: <sip:probe@%s:%d>\nMax-Forwards: 70\n"
            "Content-Type: application/sdp\nContent-Length: %d\n\n"
            % (number, thost, tport, via, frm, number, thost, tport, call_id, lhost, lport, len(sdp))
        )
        t0 = time.perf_counter_ns()
        self.send(invite)
        final = self.wait_final(call_id, "INVITE", time.monotonic() + self.timeout)
        elapsed_us = (time.perf_counter_ns() - t0) / 1000.0
        if final is None:
            return None
        code, headers = final
        to = headers.get("to", [""])[0]
        if code >= 300:
            # ACK for a failure response: same branch, hop by hop.
            self.send(
                "ACK sip:%s@%s:%d SIP/2.0\nVia: %s\nFrom: %s\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\n"
                "Max-Forwards: 70\nContent-Length: 0\n\n" % (number, thost, tport, via, frm, to, call_id)
            )
            return None
        # 2xx: ACK and BYE go to the Contact, through the recorded route (reversed at the UAC).
        ruri = uri_of(headers.get("contact", ["<sip:%s@%s:%d>" % (number, thost, tport)])[0])
        rr = []
        for value in headers.get("record-route", []):
            rr.extend(v.strip() for v in value.split(","))
        route = "".join("Route: %s\n" % r for r in reversed(rr))
        for cseq, method in ((1, "ACK"), (2, "BYE")):
            self.send(
                "%s %s SIP/2.0\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s%d%s\n%sFrom: %s\nTo: %s\n"
                "Call-ID: %s\nCSeq: %d %s\nMax-Forwards: 70\nContent-Length: 0\n\n"
                % (method, ruri, lhost, lport, self.tag, n, method, route, frm, to, call_id, cseq, method)
            )
        self.wait_final(call_id, "BYE", time.monotonic() + self.timeout)
        return elapsed_us


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = max(0, min(len(sorted_values) - 1, int(p * len(sorted_values) + 0.999999) - 1))
    return sorted_values[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--numbers", required=True)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--interval-ms", type=float, default=10.0)
    ap.add_argument("--order", choices=["random", "sequential"], default="random")
    ap.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args()

    with open(args.numbers) as f:
        numbers = [line.strip().split(";")[0] for line in f if line.strip().startswith("+")]
    if not numbers:
        sys.exit("sip-probe: no numbers in %s" % args.numbers)
    probe = Probe(args.target, args.timeout)
    times, failed = [], 0
    next_at = time.monotonic()
    for n in range(args.calls):
        number = numbers[n % len(numbers)] if args.order == "sequential" else random.choice(numbers)
        t = probe.call(number, n)
        if t is None:
            failed += 1
        else:
            times.append(t)
        next_at += args.interval_ms / 1000.0
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    times.sort()
    print(
        "PROBE calls=%d ok=%d failed=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f"
        % (args.calls, len(times), failed, percentile(times, 0.5), percentile(times, 0.9),
           percentile(times, 0.99), times[-1] if times else float("nan"))
    )


if __name__ == "__main__":
    main()

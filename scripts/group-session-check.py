#!/usr/bin/env python3
"""Does a broker move a dead consumer's partitions? (BENCHMARKS section 8)

Two consumers (kafka-python, 6 s sessions) share a 2-partition topic in one group.
Then the second one either leaves cleanly (LeaveGroup) or is killed with SIGKILL.
The script prints when the survivor holds both partitions, or that it still does not
after --wait seconds.

    pip install kafka-python==3.0.12
    tansu broker --listener-url tcp://127.0.0.1:19092 --advertised-listener-url tcp://127.0.0.1:19092 --storage-engine memory://tansu/ &
    python3 scripts/group-session-check.py --brokers 127.0.0.1:19092 --end kill
    python3 scripts/group-session-check.py --brokers 127.0.0.1:19092 --end leave
"""
import argparse
import os
import signal
import subprocess
import sys
import time
import uuid


def member(brokers, topic, life, leave):
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=brokers, group_id=topic,
                      session_timeout_ms=6000, heartbeat_interval_ms=1000)
    t0 = time.time()
    while time.time() - t0 < life:
        c.poll(500)
        print(f"{time.time():.1f} {sorted(p.partition for p in c.assignment())}", flush=True)
        time.sleep(0.5)
    if leave:
        c.close()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--member":
        _, _, brokers, topic, life, leave = sys.argv
        member(brokers, topic, float(life), leave == "1")
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--end", choices=["kill", "leave"], required=True)
    ap.add_argument("--wait", type=float, default=60)
    a = ap.parse_args()
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"session-check-{uuid.uuid4().hex[:8]}"
    KafkaAdminClient(bootstrap_servers=a.brokers).create_topics([NewTopic(topic, 2, 1)])
    run = lambda life, leave: subprocess.Popen(
        [sys.executable, __file__, "--member", a.brokers, topic, str(life), "1" if leave else "0"],
        stdout=subprocess.PIPE, text=True)
    survivor = run(a.wait + 30, True)
    time.sleep(3)
    other = run(12 if a.end == "leave" else 1000, a.end == "leave")
    time.sleep(12)
    if a.end == "kill":
        os.kill(other.pid, signal.SIGKILL)
    ended = time.time()
    other.wait()
    for line in survivor.stdout:
        at, held = line.split(" ", 1)
        if float(at) >= ended and held.strip() == "[0, 1]":
            print(f"{a.end}: the survivor holds both partitions {float(at) - ended:.1f} s after")
            break
        if time.time() - ended > a.wait:
            print(f"{a.end}: the survivor still holds {held.strip()} {a.wait:.0f} s after")
            break
    survivor.kill()


if __name__ == "__main__":
    main()

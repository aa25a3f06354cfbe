#!/usr/bin/env python3
"""The box's own pauses: how long this machine's CPUs stop running a busy thread.

    benches/pauses.py [seconds]        # default 10; one busy process per CPU, nothing else

On a virtual machine the host may stop a virtual CPU for a while (other guests, its own
work); every thread on that CPU stops with it, whatever it was doing. Run on an idle box, a
busy loop on each CPU sees those pauses as gaps between two readings of the clock. They
are the floor under every tail latency measured here: a delivery p99 of 2 ms over 15 s
cannot hold if the CPUs stop for 50 ms a few times a minute. benches/e2e.sh prints this
line before it starts anything, so each run's tail can be read against its box.
"""

import multiprocessing
import os
import sys
import time

GAP_MS = 5.0


def probe(cpu, seconds, results):
    os.sched_setaffinity(0, {cpu})
    gaps = []
    last = time.monotonic()
    end = last + seconds
    while last < end:
        now = time.monotonic()
        if (now - last) * 1000 > GAP_MS:
            gaps.append((now - last) * 1000)
        last = now
    results.put((cpu, gaps))


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    cpus = sorted(os.sched_getaffinity(0))
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=probe, args=(cpu, seconds, results)) for cpu in cpus]
    for worker in workers:
        worker.start()
    found = dict(results.get() for _ in workers)
    for worker in workers:
        worker.join()
    every = [gap for gaps in found.values() for gap in gaps]
    per_cpu = ", ".join(
        f"cpu{cpu} {len(found[cpu])} (max {max(found[cpu], default=0):.1f} ms)" for cpu in cpus
    )
    print(
        f"the box's own pauses over {GAP_MS:.0f} ms in {seconds:.0f} s, nothing else running: "
        f"{per_cpu}; {sum(every):.0f} ms stopped in all"
    )


if __name__ == "__main__":
    main()

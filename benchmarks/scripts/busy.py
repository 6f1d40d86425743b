"""How busy the machine's cores are while something runs: /proc/stat every 0.1 s for N
seconds; prints the median and 90th percentile of the samples above 60% busy (the runs, not
the pauses between them).

Usage: python benchmarks/scripts/busy.py 40 & asyncup bench ...; wait
"""

import sys
import time


def read() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # all, idle + iowait


samples = []
end = time.monotonic() + float(sys.argv[1])
total, idle = read()
while time.monotonic() < end:
    time.sleep(0.1)
    now_total, now_idle = read()
    if now_total > total:
        samples.append(1 - (now_idle - idle) / (now_total - total))
    total, idle = now_total, now_idle
busy = sorted(x for x in samples if x > 0.6)
if busy:
    median, p90 = busy[len(busy) // 2], busy[int(len(busy) * 0.9)]
    print(f"{len(busy)} samples busy: median {median:.0%}, p90 {p90:.0%}")
else:
    print("no busy samples")

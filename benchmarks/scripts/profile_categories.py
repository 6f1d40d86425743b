import collections
import sys

cats = collections.Counter()
total = 0
rules = [
    (
        "imports / interpreter start",
        lambda s: "_find_and_load" in s or ("<module> (" in s.split(";")[0] and "main (" not in s),
    ),
    ("worker threads: CRC32 (_checksums._crc32)", lambda s: "_crc32" in s),
    ("worker threads: file reads (_pread_full)", lambda s: "_pread" in s),
    (
        "loop: hand-off to worker threads (anyio run_sync -> Queue.put -> Condition.notify)",
        lambda s: "run_sync_in_worker_thread" in s and "Thread._bootstrap" not in s,
    ),
    (
        "worker threads: waiting / GIL hand-off (Condition.wait/notify)",
        lambda s: "_worker (concurrent" in s or "Thread._bootstrap" in s,
    ),
    ("loop: TLS encryption (SSLObject.write)", lambda s: "SSLObject.write" in s),
    (
        "loop: aiohttp body writes (StreamWriter._write/_writelines/drain)",
        lambda s: "StreamWriter." in s,
    ),
    (
        "loop: botocore request: serialize/validate/sign/emit/endpoint",
        lambda s: (
            any(x in s for x in ("botocore/", "aiobotocore/"))
            and "SSLContext" not in s
            and "_build_verify_context" not in s
        ),
    ),
    (
        "loop: SSL context set-up (load_default_certs)",
        lambda s: "SSLContext" in s or "_make_ssl_context" in s or "_build_verify_context" in s,
    ),
    (
        "loop: uvloop native I/O (Runner.run self)",
        lambda s: s.rstrip().endswith("Runner.run (asyncio/runners.py:118)"),
    ),
    ("loop: asyncup/anyio/aiohttp other", lambda s: True),
]
with open(sys.argv[1]) as raw:
    lines = raw.read().splitlines()
for line in lines:
    if not line:
        continue
    stack, _, c = line.rpartition(" ")
    c = int(c)
    total += c
    for name, f in rules:
        if f(stack):
            cats[name] += c
            break
for name, _ in rules:
    print(f"| {100 * cats[name] / total:4.1f}% | {name} |")
print("total", total)

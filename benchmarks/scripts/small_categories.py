"""Group py-spy raw stacks of the small-object case by where the time goes.

Usage: python benchmarks/scripts/small_categories.py PROFILE.txt
Stacks of the event-loop thread only (worker threads listed apart); the first matching rule
wins, so "signing" is counted inside botocore before "botocore: the rest".
"""

import collections
import sys

RULES = [
    ("imports, interpreter start", lambda s: "_find_and_load" in s),
    ("worker threads: digests (CRC32)", lambda s: "Thread._bootstrap" in s and "_crc32" in s),
    ("worker threads: waiting, GIL hand-offs", lambda s: "Thread._bootstrap" in s),
    ("client set-up (Uploader open, model load)", lambda s: "Uploader.__aenter__" in s),
    ("botocore: User-Agent built per request", lambda s: "UserAgentString" in s),
    ("botocore: SigV4 signing", lambda s: "AioRequestSigner.sign" in s),
    ("botocore: endpoint rule set", lambda s: "_resolve_endpoint_ruleset" in s),
    ("botocore: serialize + validate", lambda s: "_convert_to_request_dict" in s),
    ("botocore: response parsing", lambda s: "AioResponseParser.parse" in s or "_do_parse" in s),
    ("aiohttp: request and answer", lambda s: "AIOHTTPSession.send" in s),
    ("botocore: the rest (hooks, handlers, retry check, context)", lambda s: "_make_api_call" in s),
    ("asyncup: hand-off of digests to threads", lambda s: "run_sync" in s),
    ("asyncup + anyio: per upload", lambda s: "Uploader.upload" in s),
    ("event loop: callbacks, I/O, aiohttp protocol", lambda s: True),
]


def main() -> None:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    with open(sys.argv[1]) as raw:
        for line in raw:
            if not line.strip():
                continue
            stack, _, n = line.rstrip().rpartition(" ")
            total += int(n)
            for name, rule in RULES:
                if rule(stack):
                    counts[name] += int(n)
                    break
    loop = sum(c for name, c in counts.items() if not name.startswith(("worker", "imports")))
    print(f"samples {total}, event-loop thread {loop}")
    for name, _ in RULES:
        share = 100 * counts[name] / total
        off_loop = name.startswith(("worker", "imports"))
        of_loop = "" if off_loop else f"{100 * counts[name] / loop:5.1f}%"
        print(f"| {share:5.1f}% | {of_loop:>6} | {name} |")


if __name__ == "__main__":
    main()

"""AIMD: how many requests an Uploader keeps in flight, fewer while S3 throttles (pure).

Theory of operation. ``Aimd`` holds the limit, between 1 and ``TransferConfig.concurrency``,
and is pure: it is told of each throttled answer and each success, and says whether the
limit changed. Each request is sent with the limit's current ``epoch``, which moves on at
every decrease. A throttled answer halves the limit (multiplicative decrease) only if its
request was sent in the current epoch: the requests that were already in flight when the
limit came down were sent under the old load, so a burst of throttled answers to them counts
once. The window is one round trip, however long requests take, with no clock to tune.
Successes raise the limit by one for every ``limit`` of them in the current epoch (additive
increase: about one step per round of requests, as TCP's congestion window grows), back up
to ``concurrency`` once throttling has cleared.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Aimd:
    """The limit on requests in flight, from throttled answers and successes. Example::

    aimd = Aimd(ceiling=8)
    epoch = aimd.epoch  # taken when a request is sent
    aimd.throttled(epoch)  # True: the limit is now 4; more answers from that epoch: False
    """

    ceiling: int
    limit: int = field(init=False)
    epoch: int = 0
    """Decreases so far; a request carries the epoch it was sent in."""
    successes: int = 0
    """Successes in this epoch since the limit last changed."""

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError(f"ceiling must be >= 1; got {self.ceiling}")
        self.limit = self.ceiling

    def throttled(self, epoch: int) -> bool:
        """A request sent in ``epoch`` was throttled; whether the limit came down."""
        if epoch != self.epoch:
            return False  # sent before the last decrease, which already answered it
        self.epoch += 1
        self.successes = 0
        lowered = max(1, self.limit // 2)
        changed, self.limit = lowered != self.limit, lowered
        return changed

    def succeeded(self, epoch: int) -> bool:
        """A request sent in ``epoch`` succeeded; whether the limit went up."""
        if epoch != self.epoch or self.limit >= self.ceiling:
            return False
        self.successes += 1
        if self.successes < self.limit:
            return False
        self.successes = 0
        self.limit += 1
        return True

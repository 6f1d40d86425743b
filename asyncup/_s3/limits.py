"""An Uploader's request slots, resized by ``_core.aimd.Aimd`` from S3's answers.

``AdaptiveLimiter`` applies the limit to an ``anyio.CapacityLimiter`` (its ``total_tokens``
may be lowered while tokens are out: the holders keep theirs, and new requests wait until
fewer than the new total are in flight).
"""

from __future__ import annotations

import logging

import anyio

from .._core.aimd import Aimd

log = logging.getLogger("asyncup")


class AdaptiveLimiter:
    """An Uploader's request slots (``slots``, the ``anyio.CapacityLimiter`` its uploads
    hold while sending), resized by ``Aimd`` from the answers S3 gives (``calls.S3.call``)."""

    def __init__(self, ceiling: int) -> None:
        self.slots = anyio.CapacityLimiter(ceiling)
        self.aimd = Aimd(ceiling)

    @property
    def epoch(self) -> int:
        """What a request about to be sent carries, to report its answer with."""
        return self.aimd.epoch

    def throttled(self, epoch: int) -> None:
        if self.aimd.throttled(epoch):
            log.info("S3 is throttling: requests in flight lowered to %d", self.aimd.limit)
            self.slots.total_tokens = self.aimd.limit

    def succeeded(self, epoch: int) -> None:
        if self.aimd.succeeded(epoch):
            log.debug("requests in flight raised to %d", self.aimd.limit)
            self.slots.total_tokens = self.aimd.limit

"""A cap on request-body bytes held in memory by all calls together.

One body is bounded by LLM_PROXY_MAX_BODY_BYTES, but bodies the proxy must read
whole (to find the model) add up: twenty concurrent 12 MiB image calls would pass
a 256 MiB pod limit. Past the cap a call gets 503 + Retry-After instead, except
when no other call holds memory, so one body of the maximum size always fits.
"""

from proxy import errors


class BufferBudget:
    """Bytes reserved by calls that buffer their body; released when each call ends."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, held: int, more: int) -> None:
        """Reserve `more` bytes for a call already holding `held`, or raise 503."""
        if self.used + more > self.limit and self.used > held:
            raise errors.buffers_full(self.limit)
        self.used += more

    def give_back(self, amount: int) -> None:
        self.used -= amount

"""A buffered request body sent upstream in slices.

aiohttp writes a bytes body with one transport.write; whatever the socket does not
take at once the transport copies into its own buffer, so a 12 MiB body briefly
costs two copies. Writing 64 KiB memoryview slices, each awaited (aiohttp drains
above 64 KiB), keeps that second copy to one slice while Content-Length stays exact.
"""

from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import BytesPayload

SLICE_BYTES = 64 * 1024


class SlicedPayload(BytesPayload):
    """BytesPayload whose writes go out a slice at a time."""

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = memoryview(self._value)
        if content_length is not None:
            view = view[:content_length]
        for start in range(0, len(view), SLICE_BYTES):
            await writer.write(view[start : start + SLICE_BYTES])

"""A small upstream request sent on aiohttp's pooled connections, without the session's
per-call machinery.

`ClientSession.request` is general: for every call it merges the session's defaults,
builds a `ClientRequest` (URL, auto headers, cookies, auth, proxy, a payload looked up
by type), its request info and, on Python 3.11, a task to write the body. For the
proxy's usual call, a POST whose small body is already read and no egress proxy, that
is about a third of the client's CPU per call (`python -m bench.client_paths`), and with
a thousand streams held each call's share shows in every chunk.

`DirectCaller` sends such a request on a connection from the session's own connector
(the same pool, limit, DNS cache and TLS), with the head aiohttp would write: the
Host, auto and body headers are those aiohttp gave a template request for the same
origin, and the head goes through aiohttp's own serializer (which refuses control
characters, CR and LF included, in any name or value). The answer is read by aiohttp's
ClientResponse, so the rest of the proxy (relay, release, errors) sees what
`session.request` would have returned. Any other call goes through the session.
"""

import asyncio

import aiohttp
from aiohttp import hdrs
from aiohttp.client_reqrep import ClientRequest, ClientResponse, RequestInfo
from aiohttp.helpers import TimerNoop
from aiohttp.http_writer import _serialize_headers
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

DIRECT_METHODS = frozenset({"POST"})


class _AlreadySent:
    """Stands for the request's writer in ClientResponse: the whole request is out."""

    __slots__ = ()
    output_size = 0


_SENT = _AlreadySent()


class DirectCaller:
    """Sends a POST with a small buffered body on the session's pooled connections."""

    def __init__(self, session: aiohttp.ClientSession, origin: URL) -> None:
        connector = session.connector
        if connector is None or session.timeout.total is not None:
            raise ValueError("a direct caller needs an open session without a total timeout")
        self._session = session
        self._connector = connector
        self._loop = asyncio.get_running_loop()
        # What aiohttp itself adds to a POST with a bytes body for this origin, and the
        # key of the pooled connections such requests use.
        self._template = ClientRequest(
            "POST", origin.with_path("/"), data=b"-", loop=self._loop, ssl=True
        )
        template_headers = self._template.headers
        self._host = template_headers[hdrs.HOST]
        self._added = tuple(
            (name, value)
            for name, value in template_headers.items()
            if name not in (hdrs.HOST, hdrs.CONTENT_LENGTH)
        )

    def head(
        self, method: str, url: URL, headers: CIMultiDict[str], length: int
    ) -> tuple[CIMultiDict[str], bytes]:
        """The headers sent and the request's head, as ClientRequest would write them."""
        sent: CIMultiDict[str] = CIMultiDict(((hdrs.HOST, self._host),))
        sent.extend(headers)
        for name, value in self._added:
            if name not in sent:
                sent[name] = value
        sent[hdrs.CONTENT_LENGTH] = str(length)
        return sent, _serialize_headers(f"{method} {url.raw_path_qs} HTTP/1.1", sent)

    async def request(
        self, method: str, url: URL, headers: CIMultiDict[str], body: bytes | bytearray
    ) -> aiohttp.ClientResponse:
        """Send it, read the response head: errors as `session.request` raises them."""
        sent, head = self.head(method, url, headers, len(body))
        session, timeout = self._session, self._session.timeout
        try:
            connection = await self._connector.connect(self._template, [], timeout)
        except TimeoutError as exc:
            raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {url}") from exc
        except OSError as exc:  # (not aiohttp's own): wrapped, as the session does
            if isinstance(exc, aiohttp.ClientError):
                raise
            raise aiohttp.ClientOSError(*exc.args) from exc
        try:
            protocol, transport = connection.protocol, connection.transport
            if protocol is None or transport is None or transport.is_closing():
                raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
            timer = TimerNoop()
            protocol.set_response_params(
                timer=timer,
                read_until_eof=True,
                auto_decompress=session.auto_decompress,
                read_timeout=timeout.sock_read,
                read_bufsize=session._read_bufsize,
                timeout_ceil_threshold=self._connector._timeout_ceil_threshold,
                max_line_size=session._max_line_size,
                max_field_size=session._max_field_size,
                max_headers=session._max_headers,
            )
            transport.write(head + body)  # one write, as aiohttp coalesces a small body
            protocol.start_timeout()  # the read timeout, from the request's end
            response = ClientResponse(
                method,
                url,
                writer=None,
                continue100=None,
                timer=timer,
                request_info=RequestInfo(url, method, CIMultiDictProxy(sent), url),
                traces=[],
                loop=self._loop,
                session=session,
                stream_writer=_SENT,  # type: ignore[arg-type]
            )
            try:
                await response.start(connection)
            except BaseException:
                response.close()
                raise
        except BaseException:
            connection.close()
            raise
        return response

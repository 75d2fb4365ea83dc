"""A do-nothing HTTP server on 127.0.0.1 (``python -m bench.trivial PORT``): the load generator's ceiling.

It reads each request (headers and ``Content-Length`` body), answers a fixed small JSON document and, like
gunicorn's sync workers, closes the connection. Whatever rate a generator reaches against it is an upper
bound of what that generator can measure on this machine.
"""

from __future__ import annotations

import asyncio
import sys

ANSWER = b'{"predictions": [152.0]}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode()
    + ANSWER
)


class _Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = b""
        self.needed: int | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.needed is None:
            head, separator, _ = self.buffer.partition(b"\r\n\r\n")
            if not separator:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.needed = len(head) + 4 + length
        if len(self.buffer) >= self.needed:
            self.transport.write(RESPONSE)
            self.transport.close()


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Serve on ``127.0.0.1:PORT`` until terminated."""
    port = int((argv if argv is not None else sys.argv[1:])[0])
    asyncio.run(_serve(port))


if __name__ == "__main__":
    main()

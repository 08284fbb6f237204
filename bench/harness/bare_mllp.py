"""`python -m bench.harness.bare_mllp PORT`: the cheapest way to receive HL7v2 in Python.

python-hl7's asyncio MLLP server: parse each message, answer an AA ACK, nothing else (no
validation, no signature, no broker). The e2e bench drives it with the same client and the
same messages as the gateway.
"""

from __future__ import annotations

import asyncio
import sys

import hl7
import hl7.mllp


async def _handle(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await hl7.mllp.start_hl7_server(
        _handle, host="127.0.0.1", port=port, encoding="utf-8", limit=1 << 22
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))

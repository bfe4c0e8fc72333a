"""Server-sent events for the browser simulator and the operations dashboard: one live
view is a bounded queue in the app's subscriber set, streamed with keep-alives."""

import asyncio

from starlette.responses import StreamingResponse

KEEP_ALIVE_SECONDS = 15


def event_stream(subscribers, size, headers=None):
    """A text/event-stream response fed by a new queue in `subscribers`; a None in the
    queue ends the stream (so shutdown need not wait for the client)."""
    queue = asyncio.Queue(size)
    subscribers.add(queue)

    async def stream():
        try:
            yield "event: hello\ndata: {}\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEP_ALIVE_SECONDS)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                yield message
        finally:
            subscribers.discard(queue)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

"""The floor: a bare ASGI broadcast loop under daphne, with no Django and no channel layer.

Each socket joins the set of open sockets of its room (the URL path); every text frame a
socket sends is written, as it came, to every open socket of that room. Whatever the
benchmark measures above this is the cost of everything a real chat adds.

    daphne --bind 127.0.0.1 --port 8000 bench.floor:application
"""

from collections import defaultdict

rooms = defaultdict(set)  # path -> the `send` callables of its open sockets


async def application(scope, receive, send):
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "http":
        await http(receive, send)
    elif scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


async def websocket(scope, receive, send):
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    members = rooms[scope["path"]]
    members.add(send)
    try:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            if text is not None:
                frame = {"type": "websocket.send", "text": text}
                for member in list(members):
                    await member(frame)
    finally:
        members.discard(send)
        if not members:
            rooms.pop(scope["path"], None)


async def http(receive, send):
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"floor\n"})

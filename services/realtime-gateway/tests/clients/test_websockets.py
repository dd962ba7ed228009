"""The JSON protocol from Python's `websockets`, publishing through the gRPC API from Python;
clients cut off mid-stream recover without gaps or duplicates across three nodes."""

from __future__ import annotations

import asyncio
import random
import time

from gateway import Client, cluster, token
from switchyard.realtime.v1 import events_pb2


def test_a_python_client_receives_what_python_publishes_over_grpc(gateway):
    async def run():
        client = await Client.open(gateway.ws_url)
        reply = await client.command("subscribe", {"channel": "product:py"})
        assert reply["subscribe"]["offset"] == 0, reply
        response = await asyncio.to_thread(gateway.api().publish, "product:py", {"price": 12})
        push = await client.push()
        assert push["channel"] == "product:py"
        assert push["pub"]["data"] == {"price": 12}
        assert push["pub"]["offset"] == response.position.offset == 1

        owner = await Client.open(gateway.ws_url, token("42"))
        assert "subscribe" in await owner.command("subscribe", {"channel": "user#42"})
        event = events_pb2.Event(
            order_status_update=events_pb2.OrderStatusUpdate(order_id="7", user_id="42", status="shipped")
        )
        await asyncio.to_thread(gateway.api().publish_event, "user#42", event)
        data = (await owner.push())["pub"]["data"]
        assert data == {"type": "order_status_update", "orderId": "7", "userId": "42", "status": "shipped"}

        stranger = await Client.open(gateway.ws_url, token("43"))
        refused = await stranger.command("subscribe", {"channel": "user#42"})
        assert refused["error"]["code"] == 103

    asyncio.run(run())


def test_malformed_input_gets_an_error_and_the_gateway_keeps_serving(gateway):
    async def run():
        client = await Client.open(gateway.ws_url)
        reply = await client.command("subscribe", {"channel": ["not", "a", "string"]})
        assert reply["error"]["code"] == 107
        await client.socket.send("\x00\x01 not json")
        closed = None
        try:
            while True:
                await client._fill(5)
        except Exception as error:  # the server closes with 3501
            closed = getattr(error, "rcvd", None)
        assert closed is not None and closed.code == 3501
        fine = await Client.open(gateway.ws_url)
        assert "subscribe" in await fine.command("subscribe", {"channel": "product:ok"})

    asyncio.run(run())


TOTAL = 400


async def follow(index: int, urls: list[str], channel: str) -> tuple[list[int], int]:
    """Reads a few publications, cuts the connection, resubscribes with recovery on the next
    node; until it has seen all TOTAL."""
    received: list[int] = []
    position = None
    hops = 0
    rng = random.Random(index)
    while not received or received[-1] != TOTAL:
        client = await Client.open(urls[(index + hops) % len(urls)])
        body = {"channel": channel}
        if position:
            body["recover"] = {"offset": position[0], "epoch": position[1]}
        reply = await client.command("subscribe", body)
        subscribed = reply["subscribe"]
        if position:
            assert subscribed["recovered"] is True, reply
        epoch = subscribed["epoch"]
        received.extend(p["offset"] for p in subscribed.get("publications", []))
        position = (received[-1] if received else subscribed["offset"], epoch)
        for _ in range(rng.randint(10, 60)):
            if received and received[-1] == TOTAL:
                break
            push = await client.push()
            if "unsubscribe" in push:
                break
            received.append(push["pub"]["offset"])
            position = (received[-1], epoch)
        await client.cut()
        hops += 1
    return received, hops


def gaps_and_duplicates(received: list[int]) -> tuple[int, int]:
    return len(set(range(1, TOTAL + 1)) - set(received)), len(received) - len(set(received))


def test_cut_off_clients_recover_exactly_across_three_nodes():
    nodes = cluster(3)
    try:
        asyncio.run(recover_under_load(nodes))
    finally:
        for node in nodes:
            node.stop()


async def recover_under_load(nodes):
    channel = "load:e2e"
    urls = [node.ws_url for node in nodes]
    followers = [asyncio.create_task(follow(index, urls, channel)) for index in range(6)]
    await asyncio.sleep(0.5)

    def publish_all():
        apis = [node.api() for node in nodes]
        for n in range(1, TOTAL + 1):
            assert apis[n % 3].publish(channel, n).position.offset == n
            time.sleep(0.001)

    await asyncio.to_thread(publish_all)
    results = await asyncio.wait_for(asyncio.gather(*followers), 60)
    for index, (received, hops) in enumerate(results):
        gaps, duplicates = gaps_and_duplicates(received)
        print(f"client {index}: {len(received)} received, {hops} reconnects, {gaps} gaps, {duplicates} duplicates")
        assert (gaps, duplicates) == (0, 0)
        assert received == list(range(1, TOTAL + 1))
        assert hops >= 3


def test_clients_of_a_killed_node_reconnect_to_another_and_recover():
    nodes = cluster(3)
    try:
        asyncio.run(survive_a_crash(nodes))
    finally:
        for node in nodes:
            node.stop()


async def survive_a_crash(nodes):
    channel = "load:crash-e2e"
    doomed = nodes[2]
    clients = [await Client.open(doomed.ws_url) for _ in range(3)]
    epochs = [(await client.command("subscribe", {"channel": channel}))["subscribe"]["epoch"] for client in clients]
    api = nodes[0].api()
    for n in range(1, 6):
        await asyncio.to_thread(api.publish, channel, n)
    for client in clients:
        for n in range(1, 6):
            assert (await client.push())["pub"]["offset"] == n
    doomed.kill()
    for n in range(6, 11):
        await asyncio.to_thread(api.publish, channel, n)
    for index, epoch in enumerate(epochs):
        moved = await Client.open(nodes[index % 2].ws_url)
        reply = await moved.command("subscribe", {"channel": channel, "recover": {"offset": 5, "epoch": epoch}})
        assert reply["subscribe"]["recovered"] is True, reply
        assert [p["offset"] for p in reply["subscribe"]["publications"]] == [6, 7, 8, 9, 10]

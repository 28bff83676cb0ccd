"""--workers: worker i's settings are the given ones with every port plus i and --node-id plus i."""

from __future__ import annotations

import dataclasses

import pytest
from kafka_redis_gateway.gateway.cli import parse_config
from kafka_redis_gateway.gateway.workers import check_workers, worker_config

REDIS = "redis://127.0.0.1:6379/0"


def test_every_port_and_the_node_id_move_by_the_worker_index() -> None:
    config = parse_config([
        "--workers", "3", "--node-id", "10", "--metrics-listen", "127.0.0.1:9300",
        "--listeners", "HOST://0.0.0.0:9092,INTERNAL://0.0.0.0:9192",
        "--advertised-listeners", "HOST://broker.example:19092,INTERNAL://internal:9192",
        "--listener-security-protocol-map", "HOST:PLAINTEXT,INTERNAL:PLAINTEXT", "--redis-url", REDIS])
    third = worker_config(config, 2, REDIS)
    assert [str(e) for e in third.listeners] == ["HOST://0.0.0.0:9094", "INTERNAL://0.0.0.0:9194"]
    assert [str(e) for e in third.advertised_listeners] == ["HOST://broker.example:19094",
                                                            "INTERNAL://internal:9194"]
    assert str(third.metrics_listen) == "127.0.0.1:9302"
    assert (third.node_id, third.workers) == (12, 1)
    # Worker 0 is the settings as given, as one gateway.
    assert worker_config(config, 0, REDIS) == dataclasses.replace(config, workers=1)


def test_the_listen_address_and_its_advertised_one_move_together_and_port_0_stays_0() -> None:
    config = parse_config(["--workers", "2", "--listen", "127.0.0.1:0",
                           "--advertised-listener", "gw.example:7000"])
    second = worker_config(config, 1, "redis://h:1/0")
    assert (str(second.listen), str(second.advertised_listener)) == ("127.0.0.1:0", "gw.example:7001")
    assert second.node_id is None  # assigned from Redis, as for any gateway
    assert second.redis_url == "redis://h:1/0"  # the embedded server's, when the parent started one


@pytest.mark.parametrize(("args", "message"), [
    (["--listen", "127.0.0.1:65534"], "port 65534 + 2 is above 65535"),
    (["--metrics-listen", "127.0.0.1:65534"], "port 65534 + 2 is above 65535"),
    (["--node-id", "999"], "--node-id 999 + 2 is above 1000"),
])
def test_a_last_worker_out_of_range_is_refused(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        check_workers(dataclasses.replace(parse_config(args), workers=3))
    with pytest.raises(SystemExit) as stopped:
        parse_config(["--workers", "3", *args])
    assert stopped.value.code == 2
    check_workers(dataclasses.replace(parse_config(args), workers=2))  # one fewer fits

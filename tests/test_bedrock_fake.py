"""The fake Bedrock's event stream encoder, checked against botocore's own decoder and parser."""

from __future__ import annotations

import json

import pytest
from _bedrock_support import *  # noqa: F403 - fixtures: bedrock_server, fake, client, telemetry, capturing
from _bedrock_support import CLAUDE, make_client
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, InvalidHeadersLength

from otel_tokenkpi.testing.fake_bedrock import Reply, ToolCall, encode_event


def decode(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_encoded_event_decodes_with_botocore():
    headers = {":event-type": "messageStop", ":content-type": "application/json", ":message-type": "event"}
    payload = b'{"stopReason":"end_turn"}'
    (message,) = decode(encode_event(headers, payload))
    assert message.headers == headers
    assert message.payload == payload
    assert message.prelude.total_length == len(encode_event(headers, payload))


def test_several_events_in_one_buffer_and_split_across_reads():
    data = b"".join(encode_event({":event-type": f"e{i}"}, f'{{"n":{i}}}'.encode()) for i in range(3))
    buffer = EventStreamBuffer()
    messages = []
    for start in range(0, len(data), 7):  # arrives in small pieces
        buffer.add_data(data[start : start + 7])
        messages.extend(buffer)
    assert [json.loads(m.payload)["n"] for m in messages] == [0, 1, 2]


@pytest.mark.parametrize("position", [5, 20, -2])
def test_a_corrupted_byte_fails_the_crc(position):
    data = bytearray(encode_event({":event-type": "chunk"}, b'{"bytes":"e30="}'))
    data[position] ^= 0xFF
    # Byte 5 is in the prelude's headers-length field: older botocore (1.34.116) checks that bound before the CRC.
    with pytest.raises((ChecksumMismatch, InvalidHeadersLength) if position == 5 else ChecksumMismatch):
        decode(bytes(data))


def test_requests_are_recorded_with_the_decoded_model_id(fake):
    client = make_client(fake.url)
    fake.enqueue(Reply(text="hi", tool_calls=[ToolCall("f", '{"a": 1}')]))
    response = client.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "x"}]}])
    request = fake.requests[-1]
    assert request.model_id == CLAUDE
    assert request.path.endswith("/converse")
    assert request.body["messages"] == [{"role": "user", "content": [{"text": "x"}]}]
    assert response["usage"] == {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}
    assert response["output"]["message"]["content"][1]["toolUse"] == {
        "toolUseId": "tooluse_1",
        "name": "f",
        "input": {"a": 1},
    }

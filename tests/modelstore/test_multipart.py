"""The upload's multipart parser: the same parts whatever the body's chunking, a file
part's bytes handed on as they come (delimiter-like bytes inside a part included)."""

from __future__ import annotations

import random

import pytest

from fedstats.node.modelstore.multipart import (
    MultipartError,
    MultipartParser,
    encode_fields,
    encode_file_head,
    encode_tail,
)

BOUNDARY = "fedstats-0123456789abcdef"


def _parse(body: bytes, sizes: list[int]) -> tuple[dict[str, bytes], bytes]:
    got = bytearray()
    parser = MultipartParser(BOUNDARY, lambda name, filename: lambda mv: got.extend(mv))
    at = 0
    for n in sizes:
        parser.feed(body[at:at + n])
        at += n
    parser.feed(body[at:])
    parser.close()
    return parser.fields, bytes(got)


def _model(rng: random.Random, n: int) -> bytes:
    """Random bytes strewn with near-delimiters: CRLF, '--', the boundary cut short."""
    pieces = []
    while sum(map(len, pieces)) < n:
        pieces.append(rng.choice([rng.randbytes(rng.randint(1, 300000)), b"\r\n",
                                  b"\r\n--", b"\r\n--" + BOUNDARY[:-1].encode(),
                                  b"--" + BOUNDARY.encode(), b"\r\n-"]))
    model = b"".join(pieces)[:n]
    delimiter = b"\r\n--" + BOUNDARY.encode()  # a body never holds its own delimiter
    while delimiter in model:
        model = model.replace(delimiter, b"\r\n-x" + BOUNDARY.encode())
    return model


@pytest.mark.parametrize("seed", range(6))
def test_any_chunking_gives_the_same_parts(seed):
    rng = random.Random(seed)
    model = _model(rng, rng.choice([0, 1, 70, 1 << 20, 3 << 20]))
    body = (encode_fields(BOUNDARY, [("data", b'{"model_store_ddc": "ddc:x"}',
                                      "application/json")])
            + encode_file_head(BOUNDARY) + model + encode_tail(BOUNDARY))
    for _ in range(4):
        cuts, left = [], len(body)
        while left > 0:
            n = rng.choice([1, 2, 7, 43, 44, 45, 4096, 65536, 300000])
            cuts.append(n)
            left -= n
        fields, data = _parse(body, cuts)
        assert fields == {"data": b'{"model_store_ddc": "ddc:x"}'}
        assert data == model


def test_a_body_cut_before_its_closing_delimiter_is_refused():
    body = encode_file_head(BOUNDARY) + b"x" * 100000
    parser = MultipartParser(BOUNDARY, lambda name, filename: lambda mv: None)
    parser.feed(body)
    with pytest.raises(MultipartError):
        parser.close()


@pytest.mark.parametrize("seed", range(4))
def test_the_signed_body_is_the_body_with_the_files_content_replaced_by_its_digest(seed):
    rng = random.Random(100 + seed)
    model = _model(rng, rng.choice([0, 1, 70, 1 << 20]))
    head = (encode_fields(BOUNDARY, [("data", b'{"model_store_ddc": "ddc:x"}',
                                      "application/json")]) + encode_file_head(BOUNDARY))
    tail = encode_tail(BOUNDARY) + b"an epilogue"
    body = b"a preamble\r\n" + head + model + tail
    for _ in range(3):
        parser = MultipartParser(BOUNDARY, lambda name, filename: lambda mv: None,
                                 keep_frame=True)
        at = 0
        while at < len(body):
            n = rng.choice([1, 2, 7, 44, 4096, 65536, 300000])
            parser.feed(body[at:at + n])
            at += n
        parser.close()
        assert parser.signed_body("d" * 64) == b"a preamble\r\n" + head + b"d" * 64 + tail


def test_what_besides_the_file_a_signed_body_keeps_is_bounded():
    parser = MultipartParser(BOUNDARY, lambda name, filename: lambda mv: None,
                             keep_frame=True, max_field_bytes=1000, max_header_bytes=100)
    parser.feed(encode_file_head(BOUNDARY) + b"x" * 10 + encode_tail(BOUNDARY))
    with pytest.raises(MultipartError, match="besides its file"):
        parser.feed(b"e" * 5000)  # an epilogue past what a signature may cover

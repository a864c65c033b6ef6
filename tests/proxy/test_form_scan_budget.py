"""The multipart scanner's total work is bounded like the JSON one's."""

import time

import pytest

from proxy.policy.form_scan import MAX_TOTAL_HEADER_BYTES, FormScanError, multipart_models


def many_parts(parts: int, header_bytes: int) -> bytes:
    header = b"Content-Disposition: form-data; name=junk; x=" + b"a" * header_bytes + b"\r\n"
    part = b"--B\r\n" + header + b"\r\nv\r\n"
    return part * parts + b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nm\r\n--B--'


def test_a_thousand_parts_of_16_kib_headers_are_refused_quickly() -> None:
    body = many_parts(990, 16 * 1024 - 100)  # ~16 MiB; a few KB gzipped
    began = time.process_time()
    with pytest.raises(FormScanError, match="256 KiB of headers"):
        multipart_models(body, "B")
    assert time.process_time() - began < 0.3  # was 1.5 s


def test_ordinary_forms_are_read_whole() -> None:
    body = many_parts(100, MAX_TOTAL_HEADER_BYTES // 100 - 200)
    assert [m.name for m in multipart_models(body, "B")] == ["m"]

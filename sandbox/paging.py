"""NextToken/MaxResults and the deprecated PageNumber/PageSize, one implementation for every Describe*."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sandbox.errors import ApiError
from sandbox.params import Params


@dataclass(frozen=True)
class Page:
    offset: int
    size: int
    by_token: bool  # MaxResults/NextToken used: PageNumber/PageSize ignored
    page_number: int


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sbx:{offset}".encode()).decode().rstrip("=")


def _decode(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        prefix, _, number = text.partition(":")
        if prefix != "sbx":
            raise ValueError(token)
        offset = int(number)
        if offset < 0:
            raise ValueError(token)
        return offset
    except (ValueError, UnicodeDecodeError):
        raise ApiError("InvalidParameter.NextToken", "The specified NextToken is invalid.", 400) from None


def read_page(p: Params, max_size: int = 50, default_size: int = 10, clamp: bool = False) -> Page:
    """`clamp`: DescribeInstances clamps MaxResults into [10, 100] instead of rejecting it."""
    max_results = p.str("MaxResults")
    next_token = p.str("NextToken")
    if max_results is not None or next_token is not None:
        size = default_size
        if max_results is not None:
            try:
                size = int(max_results)
            except ValueError:
                raise ApiError("InvalidParameter.MaxResults", "The specified MaxResults is invalid.", 400) from None
            if clamp:
                size = min(max(size, 10), max_size)
            elif not 1 <= size <= max_size:
                raise ApiError("InvalidParameter.MaxResults",
                               f"The specified MaxResults ({size}) must be between 1 and {max_size}.", 400)
        offset = _decode(next_token) if next_token else 0
        return Page(offset=offset, size=size, by_token=True, page_number=1)
    page_number = 1
    size = default_size
    if p.has("PageNumber"):
        try:
            page_number = int(p.req("PageNumber"))
        except ValueError:
            page_number = 0
        if page_number < 1:
            raise ApiError("InvalidParam.PageNumber", "The specified PageNumber is invalid.", 400)
    if p.has("PageSize"):
        try:
            size = int(p.req("PageSize"))
        except ValueError:
            size = 0
        if clamp:
            size = min(max(size, 1), max_size)
        elif not 1 <= size <= max_size:
            raise ApiError("InvalidParam.PageSize",
                           f"The specified PageSize must be between 1 and {max_size}.", 400)
    return Page(offset=(page_number - 1) * size, size=size, by_token=False, page_number=page_number)


def page_fields(page: Page, total: int) -> dict[str, Any]:
    """TotalCount/PageNumber/PageSize/NextToken. The last page answers NextToken "" (unconfirmed, see README)."""
    more = page.offset + page.size < total
    return {
        "TotalCount": total,
        "PageNumber": page.page_number,
        "PageSize": page.size,
        "NextToken": _encode(page.offset + page.size) if more else "",
    }

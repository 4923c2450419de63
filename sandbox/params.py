"""Request parameters as the SDKs send them: flat strings, `Name.N` lists, JSON strings, `True`/`true`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sandbox.errors import ApiError, invalid, missing

_INDEXED = re.compile(r"^(?P<base>[A-Za-z]+)\.(?P<n>\d+)(?:\.(?P<field>[A-Za-z]+))?$")


class Params:
    """Read-only view of one request's parameters (query and form body merged, body wins)."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw: dict[str, str] = dict(raw)

    def has(self, name: str) -> bool:
        return name in self.raw and self.raw[name] != ""

    def str(
        self,
        name: str,
        required: bool = False,
        default: str | None = None,
        max_len: int | None = None,
        too_long_code: str | None = None,
    ) -> str | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise missing(name)
            return default
        if max_len is not None and len(value) > max_len:
            raise ApiError(
                too_long_code or f"InvalidParameter.{name}",
                f"The length of \"{name}\" exceeds the limit of {max_len} characters.",
                403 if too_long_code else 400,
            )
        return value

    def req(self, name: str, **kw: Any) -> str:
        value = self.str(name, required=True, **kw)
        assert value is not None
        return value

    def int(self, name: str, default: int | None = None, minimum: int | None = None,
            maximum: int | None = None, code: str | None = None) -> int | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise invalid(name, f"\"{value}\" is not an integer.") from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise ApiError(code or f"InvalidParameter.{name}",
                           f"The specified \"{name}\" ({number}) is out of range"
                           f" [{minimum if minimum is not None else ''}, {maximum if maximum is not None else ''}].",
                           403 if code and code.endswith("ExceedLimit") else 400)
        return number

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise invalid(name, f"\"{value}\" is not a boolean.")

    def list(self, name: str) -> list[str]:
        """`Name.1`, `Name.2`, ... in index order (gaps allowed, as the SDKs never send them)."""
        found: list[tuple[int, str]] = []
        for key, value in self.raw.items():
            m = _INDEXED.match(key)
            if m and m.group("base") == name and m.group("field") is None:
                found.append((int(m.group("n")), value))
        return [v for _, v in sorted(found)]

    def obj_list(self, name: str) -> list[dict[str, str]]:
        """`Tag.1.Key=k&Tag.1.Value=v` -> [{"Key": "k", "Value": "v"}] in index order."""
        groups: dict[int, dict[str, str]] = {}
        for key, value in self.raw.items():
            m = _INDEXED.match(key)
            if m and m.group("base") == name and m.group("field") is not None:
                groups.setdefault(int(m.group("n")), {})[m.group("field")] = value
        return [groups[n] for n in sorted(groups)]

    def json(self, name: str, default: Any = None) -> Any:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        try:
            return json.loads(value)
        except ValueError:
            raise invalid(name, "It is not valid JSON.") from None

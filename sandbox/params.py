"""Request parameters as the SDKs send them: flat strings, `Name.N` lists, JSON strings, `True`/`true`."""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping
from typing import Any

from sandbox.errors import ApiError, invalid, missing

_INDEXED = re.compile(r"^(?P<base>[A-Za-z]+)\.(?P<n>\d+)(?:\.(?P<field>[A-Za-z]+))?$")


class Params:
    """Read-only view of one request's parameters (query and form body merged, body wins)."""

    def __init__(self, raw: Mapping[builtins.str, builtins.str]) -> None:
        self.raw: dict[builtins.str, builtins.str] = dict(raw)

    def has(self, name: builtins.str) -> bool:
        return name in self.raw and self.raw[name] != ""

    def str(
        self,
        name: builtins.str,
        required: bool = False,
        default: builtins.str | None = None,
        max_len: int | None = None,
        too_long_code: builtins.str | None = None,
    ) -> builtins.str | None:
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

    def req(self, name: builtins.str, **kw: Any) -> builtins.str:
        value = self.str(name, required=True, **kw)
        assert value is not None
        return value

    def int(self, name: builtins.str, default: builtins.int | None = None, minimum: builtins.int | None = None,
            maximum: builtins.int | None = None, code: builtins.str | None = None) -> builtins.int | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        try:
            number = builtins.int(value)
        except ValueError:
            raise invalid(name, f"\"{value}\" is not an integer.") from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            raise ApiError(code or f"InvalidParameter.{name}",
                           f"The specified \"{name}\" ({number}) is out of range"
                           f" [{minimum if minimum is not None else ''}, {maximum if maximum is not None else ''}].",
                           403 if code and code.endswith("ExceedLimit") else 400)
        return number

    def bool(self, name: builtins.str, default: builtins.bool = False) -> builtins.bool:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
        raise invalid(name, f"\"{value}\" is not a boolean.")

    def list(self, name: builtins.str) -> builtins.list[builtins.str]:
        """`Name.1`, `Name.2`, ... in index order (gaps allowed, as the SDKs never send them)."""
        found: builtins.list[tuple[builtins.int, builtins.str]] = []
        for key, value in self.raw.items():
            m = _INDEXED.match(key)
            if m and m.group("base") == name and m.group("field") is None:
                found.append((int(m.group("n")), value))
        return [v for _, v in sorted(found)]

    def obj_list(self, name: builtins.str) -> builtins.list[dict[builtins.str, builtins.str]]:
        """`Tag.1.Key=k&Tag.1.Value=v` -> [{"Key": "k", "Value": "v"}] in index order."""
        groups: dict[builtins.int, dict[builtins.str, builtins.str]] = {}
        for key, value in self.raw.items():
            m = _INDEXED.match(key)
            if m and m.group("base") == name and m.group("field") is not None:
                groups.setdefault(int(m.group("n")), {})[m.group("field")] = value
        return [groups[n] for n in sorted(groups)]

    def json(self, name: builtins.str, default: Any = None) -> Any:
        value = self.raw.get(name)
        if value is None or value == "":
            return default
        try:
            return json.loads(value)
        except ValueError:
            raise invalid(name, "It is not valid JSON.") from None

"""API errors as the real service reports them (code, HTTP status, message)."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: rendered as {RequestId, HostId, Code, Message, Recommend} with `status`."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.extra = extra or {}


def missing(name: str) -> ApiError:
    return ApiError(f"MissingParameter.{name}" if "." not in name else name,
                    f"The input parameter \"{name}\" that is mandatory for processing this request is not supplied.",
                    400)


def invalid(name: str, detail: str = "") -> ApiError:
    msg = f"The specified parameter \"{name}\" is not valid."
    if detail:
        msg = f"{msg} {detail}"
    return ApiError(f"InvalidParameter.{name}", msg, 400)

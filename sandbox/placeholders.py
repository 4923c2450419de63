"""Custom parameters `{{ name }}` and built-ins `{{ACS::...}}` in command content (pure).

Reference: cloud-assistant-api.md §2.1 "Custom parameter rules", §2.3 (Parameters), §6 (error codes).
Names are case-insensitive; whitespace (newlines included) around a name inside the braces is ignored.
Callers validate the content only when EnableParameter is true: with it false the content is taken literally
(a script may well contain `{{.State.Running}}` for `docker inspect`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sandbox.errors import ApiError

MAX_PLACEHOLDERS = 20  # distinct custom names in one content (§2.1, §7)
MAX_PARAMETERS = 10  # key/value pairs passed with one run (§2.1, §7)
MAX_NAME_LEN = 64  # name / key length (§2.1: 64 bytes; names are ASCII so bytes == characters)

BUILTIN_PREFIX = "acs::"  # reserved prefix, compared case-insensitively
BUILTINS: tuple[str, ...] = (
    "ACS::RegionId",
    "ACS::AccountId",
    "ACS::InstanceId",
    "ACS::InvokeId",
    "ACS::CommandId",
    "ACS::InstanceName",
)
_BUILTIN_BY_LOWER = {name.lower(): name for name in BUILTINS}

# `{{`, optional whitespace (newlines too), the name (one line, lazily), optional whitespace, `}}`.
_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_-]+")


def _is_builtin_form(name: str) -> bool:
    return name.lower().startswith(BUILTIN_PREFIX)


def _raw_names(content: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(content)]


def find_placeholders(content: str) -> list[str]:
    """Custom placeholder names in order of first use, de-duplicated case-insensitively (first spelling kept);
    built-ins (`ACS::` prefix, any case) and empty `{{ }}` are left out."""
    names: list[str] = []
    seen: set[str] = set()
    for name in _raw_names(content):
        if not name or _is_builtin_form(name):
            continue
        key = name.lower()
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names


def validate_content_placeholders(content: str) -> None:
    """CreateCommand/RunCommand checks of the content's placeholders (EnableParameter=true).

    Raises ApiError: CmdParam.EmptyKey (400), CmdParam.InvalidParamName (400),
    CmdParamName.ExceedLimit (403), CmdParamCount.ExceedLimit (403)."""
    for name in _raw_names(content):
        if not name:
            raise ApiError("CmdParam.EmptyKey", "The command content contains an empty parameter name \"{{}}\".",
                           400)
        if _is_builtin_form(name):
            if name.lower() not in _BUILTIN_BY_LOWER:
                raise ApiError(
                    "CmdParam.InvalidParamName",
                    f"The parameter name \"{name}\" uses the reserved prefix \"acs::\" but is not a built-in "
                    f"parameter ({', '.join(BUILTINS)}).",
                    400,
                )
            continue
        if not _NAME_CHARS.fullmatch(name):
            raise ApiError(
                "CmdParam.InvalidParamName",
                f"The parameter name \"{name}\" is invalid: only letters, digits, \"_\" and \"-\" are allowed.",
                400,
            )
        if len(name) > MAX_NAME_LEN:
            raise ApiError(
                "CmdParamName.ExceedLimit",
                f"The parameter name \"{name[:16]}...\" exceeds the limit of {MAX_NAME_LEN} characters.",
                403,
            )
    count = len(find_placeholders(content))
    if count > MAX_PLACEHOLDERS:
        raise ApiError(
            "CmdParamCount.ExceedLimit",
            f"The command content defines {count} custom parameters, more than the limit of {MAX_PLACEHOLDERS}.",
            403,
        )


def validate_parameters(content: str, enable_parameter: bool, parameters: Mapping[str, object] | None) -> None:
    """RunCommand/InvokeCommand checks of `Parameters` against the content (already decoded).

    Raises ApiError: Parameter.Disabled (400), ParameterCount.ExceedLimit (403), ParameterKey.ExceedLimit (403),
    ParameterKey.Duplicate (403), ParameterType.NotSupported (403), Parameter.NotMatched (403),
    Parameter.MissingValue (400)."""
    params: Mapping[str, object] = parameters or {}
    if not enable_parameter:
        if params:  # an empty object counts as "not given"
            raise ApiError("Parameter.Disabled",
                           "Parameters cannot be specified because the command does not enable custom parameters.",
                           400)
        return
    if len(params) > MAX_PARAMETERS:
        raise ApiError(
            "ParameterCount.ExceedLimit",
            f"{len(params)} parameters are specified, more than the limit of {MAX_PARAMETERS}.",
            403,
        )
    lowered: set[str] = set()
    for key, value in params.items():
        if not isinstance(key, str) or not key or len(key) > MAX_NAME_LEN:
            raise ApiError(
                "ParameterKey.ExceedLimit",
                f"The parameter key \"{key}\" must be 1 to {MAX_NAME_LEN} characters long.",
                403,
            )
        if key.lower() in lowered:
            # Keys are case-insensitive like the names, so `a` and `A` collide (§2.3 lists ParameterKey.Duplicate).
            raise ApiError("ParameterKey.Duplicate", f"The parameter key \"{key}\" is specified more than once.", 403)
        lowered.add(key.lower())
        if not isinstance(value, str):
            # ref §2.3 ParameterType.NotSupported: values are strings; a JSON number, boolean, null, array or object
            # is refused.
            raise ApiError(
                "ParameterType.NotSupported",
                f"The value of parameter \"{key}\" must be a string, not a JSON {_json_type(value)}.",
                403,
            )
    names = find_placeholders(content)
    wanted = {name.lower() for name in names}
    for key in params:
        if key.lower() not in wanted:
            raise ApiError(
                "Parameter.NotMatched",
                f"The parameter \"{key}\" is not defined in the command content.",
                403,
            )
    for name in names:
        if name.lower() not in lowered:
            raise ApiError("Parameter.MissingValue", f"No value is specified for the parameter \"{name}\".", 400)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "array" if isinstance(value, list) else "object"


def render_value(value: object) -> str:
    """A parameter value as text: strings as they are, JSON booleans as `true`/`false`, numbers with str()."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(content: str, parameters: Mapping[str, object], builtins: Mapping[str, str]) -> str:
    """Replace `{{ name }}` (case-insensitive) by its parameter value and `{{ACS::X}}` by builtins['ACS::X'].

    One pass: a substituted value is never scanned again. Placeholders without a value stay as written."""
    values = {str(key).lower(): render_value(value) for key, value in parameters.items()}
    builtin_values = {key.lower(): value for key, value in builtins.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        key = name.lower()
        if _is_builtin_form(name):
            found = builtin_values.get(key)
        else:
            found = values.get(key)
        return match.group(0) if found is None else found

    return _PLACEHOLDER.sub(replace, content)

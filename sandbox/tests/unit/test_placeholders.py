"""sandbox.placeholders: `{{ name }}` discovery, validation (reference §2.1 / §6) and substitution."""

from __future__ import annotations

import pytest

from sandbox.errors import ApiError
from sandbox.placeholders import (
    BUILTINS,
    find_placeholders,
    substitute,
    validate_content_placeholders,
    validate_parameters,
)

BUILTIN_VALUES = {
    "ACS::InstanceId": "i-abc",
    "ACS::RegionId": "cn-hangzhou",
    "ACS::InvokeId": "t-123",
    "ACS::CommandId": "c-456",
    "ACS::InstanceName": "web-1",
    "ACS::AccountId": "1234567890",
}


def _names(n: int, prefix: str = "p") -> str:
    return " ".join(f"{{{{{prefix}{i}}}}}" for i in range(n))


# --- find_placeholders -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", []),
        ("echo hello", []),
        ("echo {{name}}", ["name"]),
        ("echo {{ name }}", ["name"]),
        ("echo {{\n  name\n}}", ["name"]),
        ("echo {{\tname \n }}", ["name"]),
        ("{{b}} {{a}} {{b}}", ["b", "a"]),
        ("{{Name}} {{NAME}} {{name}}", ["Name"]),  # case-insensitive de-dup, first spelling kept
        ("{{ACS::InstanceId}} {{x}}", ["x"]),
        ("{{acs::instanceid}} {{ ACS::RegionId }}", []),
        ("{{acs::Unknown}}", []),  # reserved prefix is never a custom name
        ("{{a-b_c9}}", ["a-b_c9"]),
        ("{{}} {{ }} {{x}}", ["x"]),
        ("{ {x} } {x} {{x}", []),
        ("echo {{a}}{{b}}", ["a", "b"]),
    ],
)
def test_find_placeholders(content: str, expected: list[str]) -> None:
    assert find_placeholders(content) == expected


# --- validate_content_placeholders ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "content",
    [
        "",
        "echo plain",
        "echo {{name}} {{ other-name }} {{x_1}}",
        _names(20),
        _names(20) + " " + _names(20),  # repeats do not count twice
        _names(20) + " {{P0}} {{p19}}",  # nor do the same names in another case
        _names(20) + " " + " ".join("{{" + b + "}}" for b in BUILTINS),  # built-ins do not count
        "{{" + "a" * 64 + "}}",
        " ".join("{{" + b + "}}" for b in BUILTINS),
        "{{acs::instanceid}} {{ACS::REGIONID}}",  # built-ins in any case
    ],
)
def test_content_ok(content: str) -> None:
    validate_content_placeholders(content)


@pytest.mark.parametrize(
    ("content", "code", "status"),
    [
        ("echo {{}}", "CmdParam.EmptyKey", 400),
        ("echo {{   }}", "CmdParam.EmptyKey", 400),
        ("echo {{\n}}", "CmdParam.EmptyKey", 400),
        ("echo {{a b}}", "CmdParam.InvalidParamName", 400),
        ("echo {{a.b}}", "CmdParam.InvalidParamName", 400),
        ("docker inspect -f '{{.State.Running}}'", "CmdParam.InvalidParamName", 400),
        ("echo {{naïve}}", "CmdParam.InvalidParamName", 400),
        ("echo {{a$}}", "CmdParam.InvalidParamName", 400),
        ("echo {{ACS::Unknown}}", "CmdParam.InvalidParamName", 400),
        ("echo {{acs::}}", "CmdParam.InvalidParamName", 400),
        ("echo {{ACS::ScriptFileName}}", "CmdParam.InvalidParamName", 400),
        ("echo {{" + "a" * 65 + "}}", "CmdParamName.ExceedLimit", 403),
        (_names(21), "CmdParamCount.ExceedLimit", 403),
        (_names(15) + " " + _names(6, "q"), "CmdParamCount.ExceedLimit", 403),
    ],
)
def test_content_errors(content: str, code: str, status: int) -> None:
    with pytest.raises(ApiError) as info:
        validate_content_placeholders(content)
    assert info.value.code == code
    assert info.value.status == status
    assert info.value.message


# --- validate_parameters ------------------------------------------------------------------------------------------

CONTENT = "echo {{name}} {{ Count }} {{ACS::InstanceId}}"


@pytest.mark.parametrize(
    ("content", "enable", "parameters"),
    [
        ("echo hi", False, {}),
        ("echo hi", False, None),
        ("echo {{x}}", False, {}),  # placeholders are literal text when parameters are disabled
        ("echo hi", True, {}),
        ("echo {{ACS::InstanceId}}", True, {}),  # built-ins need no value
        (CONTENT, True, {"name": "a", "Count": "1"}),
        (CONTENT, True, {"NAME": "a", "count": ""}),  # case-insensitive keys, empty value allowed
        (_names(10), True, {f"p{i}": str(i) for i in range(10)}),
        ("{{" + "k" * 64 + "}}", True, {"k" * 64: "v"}),
    ],
)
def test_parameters_ok(content: str, enable: bool, parameters: dict[str, object] | None) -> None:
    validate_parameters(content, enable, parameters)


@pytest.mark.parametrize(
    ("content", "enable", "parameters", "code", "status"),
    [
        ("echo {{x}}", False, {"x": "1"}, "Parameter.Disabled", 400),
        ("echo hi", False, {"x": "1"}, "Parameter.Disabled", 400),
        (_names(11), True, {f"p{i}": "v" for i in range(11)}, "ParameterCount.ExceedLimit", 403),
        ("echo {{x}}", True, {"": "v", "x": "1"}, "ParameterKey.ExceedLimit", 403),
        ("echo {{x}}", True, {"k" * 65: "v", "x": "1"}, "ParameterKey.ExceedLimit", 403),
        ("echo {{x}}", True, {"x": "1", "X": "2"}, "ParameterKey.Duplicate", 403),
        ("echo {{x}}", True, {"x": None}, "ParameterType.NotSupported", 403),
        ("echo {{x}}", True, {"x": 5}, "ParameterType.NotSupported", 403),
        ("echo {{x}}", True, {"x": 1.5}, "ParameterType.NotSupported", 403),
        ("echo {{x}}", True, {"x": True}, "ParameterType.NotSupported", 403),
        ("echo {{x}}", True, {"x": {"a": 1}}, "ParameterType.NotSupported", 403),
        ("echo {{x}}", True, {"x": ["a"]}, "ParameterType.NotSupported", 403),
        ("echo {{x}}", True, {"x": "1", "y": "2"}, "Parameter.NotMatched", 403),
        ("echo hi", True, {"y": "2"}, "Parameter.NotMatched", 403),
        ("echo {{ACS::InstanceId}}", True, {"ACS::InstanceId": "i-x"}, "Parameter.NotMatched", 403),
        ("echo {{x}} {{y}}", True, {"x": "1"}, "Parameter.MissingValue", 400),
        ("echo {{x}}", True, {}, "Parameter.MissingValue", 400),
        ("echo {{x}}", True, None, "Parameter.MissingValue", 400),
    ],
)
def test_parameter_errors(content: str, enable: bool, parameters: dict[str, object] | None, code: str,
                          status: int) -> None:
    with pytest.raises(ApiError) as info:
        validate_parameters(content, enable, parameters)
    assert info.value.code == code
    assert info.value.status == status


# --- substitute ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("content", "parameters", "expected"),
    [
        ("echo {{name}}", {"name": "world"}, "echo world"),
        ("echo {{ name }}!", {"name": "world"}, "echo world!"),
        ("echo {{\n name \n}}", {"name": "world"}, "echo world"),
        ("echo {{NAME}} {{Name}}", {"name": "w"}, "echo w w"),
        ("echo {{name}}", {"NaMe": "w"}, "echo w"),
        ("echo {{a}}{{b}}", {"a": "1", "b": "2"}, "echo 12"),
        ("echo {{name}}", {"name": ""}, "echo "),
        ("echo {{n}} {{f}}", {"n": 3, "f": 1.5}, "echo 3 1.5"),
        ("echo {{t}} {{f}}", {"t": True, "f": False}, "echo true false"),
        ("echo {{unknown}}", {"name": "x"}, "echo {{unknown}}"),
        ("echo {{ unknown }}", {}, "echo {{ unknown }}"),
        ("echo {{a}}", {"a": "{{b}}", "b": "no"}, "echo {{b}}"),  # one pass: values are not re-scanned
        ("echo {{a}}", {"a": "\\1 $& \\g<0>"}, "echo \\1 $& \\g<0>"),  # values are literal, not regex templates
        ("i={{ACS::InstanceId}} r={{ACS::RegionId}}", {}, "i=i-abc r=cn-hangzhou"),
        ("{{ACS::InvokeId}}/{{ACS::CommandId}}/{{ACS::InstanceName}}/{{ACS::AccountId}}", {},
         "t-123/c-456/web-1/1234567890"),
        ("{{ acs::instanceid }}", {}, "i-abc"),
        ("{{ACS::Unknown}}", {}, "{{ACS::Unknown}}"),
        ("{{ACS::InstanceId}} {{x}}", {"x": "1"}, "i-abc 1"),
        ("{{}} {{ }}", {}, "{{}} {{ }}"),
    ],
)
def test_substitute(content: str, parameters: dict[str, object], expected: str) -> None:
    assert substitute(content, parameters, BUILTIN_VALUES) == expected


def test_substitute_without_builtin_values_leaves_them() -> None:
    assert substitute("{{ACS::InstanceId}}", {}, {}) == "{{ACS::InstanceId}}"


def test_custom_parameter_cannot_shadow_builtin() -> None:
    assert substitute("{{ACS::InstanceId}}", {"ACS::InstanceId": "evil"}, BUILTIN_VALUES) == "i-abc"


def test_builtins_list() -> None:
    assert set(BUILTINS) == set(BUILTIN_VALUES)

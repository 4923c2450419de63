"""Field-for-field comparison of a sandbox answer with the SDK's response model (alibabacloud_ecs20140526).

`model_schema(cls)` walks the model's generated `__init__` annotations and returns the wire-name tree the model
knows: a nested dict whose leaves are the annotated Python type ('str', 'int', 'bool', 'float', 'List[str]');
a list of models becomes a one-element list holding the element's schema. `compare(answer, schema)` then lists
every difference both ways: answer fields the model does not have, model fields the answer leaves out (unless
allowed absent at that path) and values of the wrong type.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from alibabacloud_ecs20140526 import models as ecs_models

_MODEL_REF = re.compile(r"(List\[)?main_models\.(\w+)\]?")


def _filled(cls: type) -> Any:
    obj = cls()
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        annotation = str(param.annotation)
        ref = _MODEL_REF.fullmatch(annotation)
        if ref:
            sub = _filled(getattr(ecs_models, ref.group(2)))
            setattr(obj, name, [sub] if ref.group(1) else sub)
        else:
            # the model's to_map() copies a scalar as it is: the annotation itself stands for the value
            setattr(obj, name, annotation)
    return obj


def model_schema(cls: type) -> dict[str, Any]:
    """Wire-name tree of a response model (see the module docstring)."""
    schema = _filled(cls).to_map()
    assert isinstance(schema, dict)
    return schema


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "List[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise AssertionError(f"model annotation {kind!r} not handled by this test helper")


def compare(answer: Any, schema: Any, allowed_absent: frozenset[str] = frozenset(), path: str = "") -> list[str]:
    """Differences between `answer` and `schema`, both ways. `allowed_absent` holds dotted paths (list levels
    written as `[]`, e.g. 'Invocations.Invocation[].InvokeInstances.InvokeInstance[].Output') that the answer
    may leave out."""
    problems: list[str] = []
    if isinstance(schema, dict):
        if not isinstance(answer, dict):
            return [f"{path or '<root>'}: object expected, got {type(answer).__name__}"]
        for key in answer.keys() - schema.keys():
            problems.append(f"{path}{key}: in the answer, not in the SDK model")
        for key in schema.keys() - answer.keys():
            if f"{path}{key}" not in allowed_absent:
                problems.append(f"{path}{key}: in the SDK model, missing from the answer")
        for key in schema.keys() & answer.keys():
            problems += compare(answer[key], schema[key], allowed_absent, f"{path}{key}.")
        return problems
    where = path.rstrip(".")
    if isinstance(schema, list):
        if not isinstance(answer, list):
            return [f"{where}: list expected, got {type(answer).__name__}"]
        for item in answer:
            problems += compare(item, schema[0], allowed_absent, f"{where}[].")
        return problems
    if not _type_ok(answer, schema):
        problems.append(f"{where}: {schema} expected, got {type(answer).__name__} {answer!r}")
    return problems


def leaf_paths(schema: Any, path: str = "") -> set[str]:
    """Every field path of a schema (objects included), in compare()'s notation."""
    out: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            out.add(f"{path}{key}")
            out |= leaf_paths(value, f"{path}{key}.")
    elif isinstance(schema, list):
        out |= leaf_paths(schema[0], f"{path.rstrip('.')}[].")
    return out

"""Property tests (hypothesis) of request signing: random parameter sets, signed by the real SDKs and by the
collection's own request building, verify in sandbox.auth with the values the client meant; any single-byte change
to a signed request is refused and records nothing.

The requests go to the capture server of test_auth (127.0.0.1), which answers every request with a bare RequestId.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from alibabacloud_tea_openapi import utils_models as open_api_util_models
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from darabonba.runtime import RuntimeOptions
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sandbox import auth, store
from sandbox.errors import ApiError
from sandbox.tests.unit.test_auth import Captured, Env, _CaptureServer, tea_client

REPO = Path(__file__).resolve().parents[3]
# Names the signing schemes use for themselves (V1 puts them beside the business parameters).
RESERVED = {"Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
            "SignatureNonce", "SignatureType", "Timestamp", "SecurityToken", "RegionId", "BearerToken"}
# A dozen examples per test and client keep the stage within seconds; derandomized, so a failure reproduces.
PROPERTY_SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[A-Z][A-Za-z0-9]{0,11}", fullmatch=True).filter(lambda n: n not in RESERVED)
awkward = st.sampled_from(["", " ", "+", "*", "~", "/", "%", "&", "=", "%20", "a b", "ü", "中文", "😀", "\t"])
values = st.one_of(awkward, st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
                   st.lists(awkward, min_size=1, max_size=4).map("".join))
param_sets = st.dictionaries(names, values, min_size=1, max_size=6)


@dataclass
class Signing:
    env: Env

    def nonces(self) -> int:
        return int(self.env.conn.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])  # type: ignore[attr-defined]

    def verify(self, cap: Captured) -> auth.AuthenticatedRequest:
        return auth.authenticate(self.env.conn, cap.method, cap.path, cap.raw_query,  # type: ignore[arg-type]
                                 cap.header_proxy(), cap.body, time.time())


@pytest.fixture(scope="module")
def signing() -> Iterator[Signing]:
    srv = _CaptureServer()
    with tempfile.TemporaryDirectory() as tmp:
        conn = store.connect(tmp)
        store.init_schema(conn)
        creds = auth.ensure_credentials(conn)
        try:
            yield Signing(Env(conn, creds, Path(tmp), srv, [creds["access_key_secret"]]))
        finally:
            conn.close()
            srv.close()


# ----------------------------------------------------------------------------------------------- the SDKs


def _tea_send(s: Signing, params: dict[str, str], version: str, in_body: bool) -> Captured:
    e = s.env
    extra = {"signature_algorithm": "v2"} if version == "v1" else {}
    client = tea_client(e, e.creds["access_key_id"], e.creds["access_key_secret"], **extra)
    api = open_api_util_models.Params(
        action="RunCommand", version="2014-05-26", protocol="HTTP", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
    query = {"RegionId": "cn-hangzhou", **({} if in_body else params)}
    request = open_api_util_models.OpenApiRequest(query=query, body=params if in_body else None)
    client.call_api(api, request, RuntimeOptions())
    return e.srv.recorder.last()


def _acs_send(s: Signing, params: dict[str, str], in_body: bool) -> Captured:
    e = s.env
    req = CommonRequest(domain=e.srv.endpoint, version="2014-05-26", action_name="RunCommand", product="Ecs")
    req.set_protocol_type("http")
    req.set_method("POST" if in_body else "GET")
    req.add_query_param("RegionId", "cn-hangzhou")
    for k, v in params.items():
        if in_body:
            req.add_body_params(k, v)
        else:
            req.add_query_param(k, v)
    AcsClient(e.creds["access_key_id"], e.creds["access_key_secret"], "cn-hangzhou").do_action_with_exception(req)
    return e.srv.recorder.last()


CLIENTS = {
    "tea-v3-query": lambda s, p: _tea_send(s, p, "v3", in_body=False),
    "tea-v3-form": lambda s, p: _tea_send(s, p, "v3", in_body=True),
    "tea-v1-query": lambda s, p: _tea_send(s, p, "v1", in_body=False),
    "tea-v1-form": lambda s, p: _tea_send(s, p, "v1", in_body=True),
    "acsclient-v1-get": lambda s, p: _acs_send(s, p, in_body=False),
    "acsclient-v1-post": lambda s, p: _acs_send(s, p, in_body=True),
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@PROPERTY_SETTINGS
@given(params=param_sets)
def test_random_parameters_sign_and_verify(signing: Signing, client: str, params: dict[str, str]) -> None:
    cap = CLIENTS[client](signing, params)
    verified = signing.verify(cap)
    assert verified.signature_version == client.split("-")[1]
    assert verified.params == {"RegionId": "cn-hangzhou", **params}


def _decoded(cap: Captured) -> tuple[Any, ...]:
    """What a request means once decoded: equal for two encodings of the same request."""
    signed_headers = sorted((k.lower(), v) for k, v in cap.headers
                            if k.lower().startswith("x-acs-") or k.lower() in ("authorization", "host",
                                                                               "content-type"))
    return (cap.method, cap.path, sorted(parse_qsl(cap.raw_query, keep_blank_values=True)),
            sorted(parse_qsl(cap.body.decode("latin-1"), keep_blank_values=True)), signed_headers)


def _flip(cap: Captured, where: str, index: int, byte: int) -> Captured:
    if where == "query":
        raw = bytearray(cap.raw_query.encode("latin-1"))
        raw[index % len(raw)] = byte
        return replace(cap, raw_query=raw.decode("latin-1"))
    if where == "body":
        raw = bytearray(cap.body)
        raw[index % len(raw)] = byte
        return replace(cap, body=bytes(raw))
    headers = [(k, v) for k, v in cap.headers if k.lower().startswith("x-acs-") or k.lower() == "authorization"]
    name, value = headers[index % len(headers)]
    raw = bytearray(value.encode("latin-1"))
    raw[(index // len(headers)) % len(raw)] = byte
    changed = raw.decode("latin-1")
    return replace(cap, headers=tuple((k, changed if k == name else v) for k, v in cap.headers))


@pytest.mark.parametrize("client", sorted(CLIENTS))
@PROPERTY_SETTINGS
@given(params=param_sets, where=st.sampled_from(["query", "body", "header"]),
       index=st.integers(min_value=0, max_value=10_000), byte=st.integers(min_value=0x20, max_value=0x7e))
def test_any_single_byte_change_is_refused(signing: Signing, client: str, params: dict[str, str], where: str,
                                           index: int, byte: int) -> None:
    cap = CLIENTS[client](signing, params)
    assume(where != "body" or cap.body)
    assume(where != "header" or client.startswith("tea-v3"))  # V1 signs no header
    bad = _flip(cap, where, index, byte)
    assume(_decoded(bad) != _decoded(cap))  # e.g. %2b for %2B is the same request
    before = signing.nonces()
    with pytest.raises(ApiError) as refused:
        signing.verify(bad)
    assert refused.value.status in (400, 403, 404), refused.value
    assert signing.nonces() == before  # nothing recorded: the genuine request still goes through once
    signing.verify(cap)


# ----------------------------------------------------------------------------------------------- the collection


@pytest.fixture(scope="module")
def collection() -> Iterator[Any]:
    """The collection's own API layer, importable from this checkout."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "ansible_collections" / "alicloud_ops").mkdir(parents=True)
        os.symlink(REPO, Path(tmp) / "ansible_collections" / "alicloud_ops" / "cloud_assistant")
        sys.path.insert(0, tmp)
        try:
            from ansible_collections.alicloud_ops.cloud_assistant.plugins.module_utils import _api, _options, _retry

            yield _api, _options, _retry
        finally:
            sys.path.remove(tmp)


tag_sets = st.dictionaries(st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)
                           .filter(lambda k: not k.lower().startswith(("aliyun", "acs:"))),
                           st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=20), max_size=3)


@PROPERTY_SETTINGS
@given(content=values, parameters=st.dictionaries(names, values, max_size=4), tags=tag_sets,
       working_dir=values)
def test_the_collections_requests_verify_as_built(signing: Signing, collection: Any, content: str,
                                                   parameters: dict[str, str], tags: dict[str, str],
                                                   working_dir: str) -> None:
    _api, _options, _retry = collection
    e = signing.env
    opts = _options.ConnectionOptions(region_id="cn-hangzhou", endpoint=f"http://{e.srv.endpoint}",
                                      access_key_id=e.creds["access_key_id"],
                                      access_key_secret=e.creds["access_key_secret"])
    api = _api.build_api(opts, _retry.RetryPolicy(deadline=time.monotonic() + 30))
    fields: dict[str, Any] = {"instance_id": ["i-1", "i-2"], "type": "RunShellScript", "command_content": content,
                              "working_dir": working_dir, "timeout": 60}
    if parameters:
        fields.update(enable_parameter=True, parameters=parameters)
    if tags:
        fields["tag"] = _api.request_tags("RunCommandRequestTag", tags)
    api.call("RunCommand", _api.make_request("RunCommandRequest", **fields))
    verified = signing.verify(e.srv.recorder.last())
    got = verified.params
    assert got["CommandContent"] == content and got["WorkingDir"] == working_dir
    assert [got["InstanceId.1"], got["InstanceId.2"]] == ["i-1", "i-2"]
    if parameters:
        assert json.loads(got["Parameters"]) == parameters
    sent_tags = {got[f"Tag.{n}.Key"]: got.get(f"Tag.{n}.Value", "") for n in range(1, len(tags) + 1)}
    assert sent_tags == tags

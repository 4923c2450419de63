"""sandbox.auth against requests produced by the real SDKs.

A throwaway http.server on 127.0.0.1 records what alibabacloud_ecs20140526 (tea openapi, V3 and V1) and
aliyunsdkcore's AcsClient (V1) put on the wire; the recorded requests are then fed to authenticate().
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import utils_models as open_api_util_models
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_openapi.utils import Utils as TeaUtils
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from aliyunsdkcore.utils import parameter_helper
from darabonba.runtime import RuntimeOptions
from multidict import CIMultiDict, CIMultiDictProxy

from sandbox import auth, store
from sandbox.errors import ApiError

# --------------------------------------------------------------------------------------------- capture server


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header_proxy(self) -> CIMultiDictProxy[str]:
        return CIMultiDictProxy(CIMultiDict(self.headers))

    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.raw_query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class _Recorder:
    def __init__(self) -> None:
        self.items: list[Captured] = []
        self.lock = threading.Lock()

    def add(self, item: Captured) -> None:
        with self.lock:
            self.items.append(item)

    def last(self) -> Captured:
        with self.lock:
            assert self.items, "the SDK sent nothing"
            return self.items.pop()


class _CaptureServer:
    def __init__(self) -> None:
        self.recorder = _Recorder()
        recorder = self.recorder

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, raw_query = self.path.partition("?")
                recorder.add(Captured(self.command, path, raw_query, tuple(self.headers.items()), body))
                out = b'{"RequestId":"x"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[_CaptureServer]:
    srv = _CaptureServer()
    yield srv
    srv.close()


# --------------------------------------------------------------------------------------------- state


@dataclass
class Env:
    conn: object
    creds: dict[str, str]
    state_dir: Path
    srv: _CaptureServer
    secrets: list[str]


@pytest.fixture
def env(tmp_path: Path, server: _CaptureServer) -> Iterator[Env]:
    conn = store.connect(tmp_path)
    store.init_schema(conn)
    creds = auth.ensure_credentials(conn)
    secrets = [
        creds["access_key_secret"],
        creds["readonly_access_key_secret"],
        creds["sts_access_key_secret"],
        creds["sts_security_token"],
    ]
    yield Env(conn, creds, tmp_path, server, secrets)
    conn.close()


def authn(e: Env, cap: Captured, now: float | None = None, headers: object = None) -> auth.AuthenticatedRequest:
    return auth.authenticate(
        e.conn,  # type: ignore[arg-type]
        cap.method,
        cap.path,
        cap.raw_query,
        headers if headers is not None else cap.header_proxy(),  # type: ignore[arg-type]
        cap.body,
        time.time() if now is None else now,
    )


def expect(e: Env, code: str, status: int, fn: Callable[[], object], *extra_secrets: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn()
    err = info.value
    assert (err.code, err.status) == (code, status), err.message
    for secret in [*e.secrets, *extra_secrets]:
        assert secret not in err.message
        assert secret not in str(err)
        assert secret not in repr(err.args)
    return err


def nonce_count(e: Env) -> int:
    return int(e.conn.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])  # type: ignore[attr-defined]


def with_query(cap: Captured, **changes: str | None) -> Captured:
    pairs = [(k, v) for k, v in cap.query() if k not in changes]
    pairs += [(k, v) for k, v in changes.items() if v is not None]
    return replace(cap, raw_query=urlencode(pairs))


def with_header(cap: Captured, name: str, value: str | None) -> Captured:
    headers = tuple((k, v) for k, v in cap.headers if k.lower() != name.lower())
    if value is not None:
        headers += ((name, value),)
    return replace(cap, headers=headers)


# --------------------------------------------------------------------------------------------- clients


def tea_client(e: Env, ak: str, secret: str, **kw: str) -> EcsClient:
    return EcsClient(
        Config(
            access_key_id=ak,
            access_key_secret=secret,
            region_id="cn-hangzhou",
            endpoint=e.srv.endpoint,
            protocol="http",
            **kw,
        )
    )


def tea_run(e: Env, client: EcsClient) -> Captured:
    client.run_command(
        ecs_models.RunCommandRequest(
            region_id="cn-hangzhou",
            instance_id=["i-1", "i-2"],
            type="RunShellScript",
            command_content='echo "a b" +~*/&=% ü',
            enable_parameter=True,
            parameters={"name": "Jack Smith", "n": 1},
            tag=[ecs_models.RunCommandRequestTag(key="k 1", value="v/2")],
            timeout=60,
        )
    )
    return e.srv.recorder.last()


EXPECTED_RUN_PARAMS = {
    "RegionId": "cn-hangzhou",
    "InstanceId.1": "i-1",
    "InstanceId.2": "i-2",
    "Type": "RunShellScript",
    "CommandContent": 'echo "a b" +~*/&=% ü',
    "EnableParameter": "True",
    "Parameters": '{"name":"Jack Smith","n":1}',
    "Tag.1.Key": "k 1",
    "Tag.1.Value": "v/2",
    "Timeout": "60",
}


def acs_request(e: Env, method: str = "GET", body: dict[str, str] | None = None) -> CommonRequest:
    req = CommonRequest()
    req.set_domain(e.srv.endpoint)
    req.set_protocol_type("http")
    req.set_product("Ecs")
    req.set_version("2014-05-26")
    req.set_action_name("RunCommand")
    req.set_method(method)
    req.add_query_param("RegionId", "cn-hangzhou")
    req.add_query_param("InstanceId.1", "i-1")
    req.add_query_param("Name", "a b+c/~*")
    for k, v in (body or {}).items():
        req.add_body_params(k, v)
    return req


def acs_send(e: Env, client: AcsClient, req: CommonRequest) -> Captured:
    client.do_action_with_exception(req)
    return e.srv.recorder.last()


def main_acs(e: Env) -> AcsClient:
    return AcsClient(e.creds["access_key_id"], e.creds["access_key_secret"], "cn-hangzhou")


# ============================================================================================= V3 (tea default)


def test_v3_wire_form_and_success(env: Env) -> None:
    cap = tea_run(env, tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"]))
    # what the SDK sends: POST /, business params in the query, empty body, x-acs-* headers, Authorization
    assert cap.method == "POST" and cap.path == "/" and cap.body == b""
    assert "Action" not in dict(cap.query())
    assert (cap.header("Authorization") or "").startswith("ACS3-HMAC-SHA256 Credential=")
    assert cap.header("x-acs-action") == "RunCommand"

    res = authn(env, cap)
    assert res.signature_version == "v3"
    assert res.action == "RunCommand" and res.version == "2014-05-26"
    assert res.params == EXPECTED_RUN_PARAMS
    assert res.identity == auth.Identity(env.creds["access_key_id"], False, "sandbox-account")
    assert nonce_count(env) == 1


def test_v3_plain_dict_lowercase_headers(env: Env) -> None:
    cap = tea_run(env, tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"]))
    res = authn(env, cap, headers={k.lower(): v for k, v in cap.headers})
    assert res.params["Parameters"] == '{"name":"Jack Smith","n":1}'


def test_v3_replay_and_failed_requests_do_not_record_nonce(env: Env) -> None:
    cap = tea_run(env, tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"]))
    err = expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, with_query(cap, RegionId="cn-beijing")))
    assert "ACS3-HMAC-SHA256\n" in err.message
    expect(env, "InvalidTimeStamp.Expired", 400, lambda: authn(env, cap, now=time.time() + 902))
    assert nonce_count(env) == 0
    authn(env, cap)
    expect(env, "SignatureNonceUsed", 400, lambda: authn(env, cap))


def test_v3_tampering(env: Env) -> None:
    cap = tea_run(env, tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"]))
    tampered = [
        with_query(cap, **{"InstanceId.3": "i-3"}),
        with_query(cap, CommandContent="rm -rf /"),
        with_header(cap, "x-acs-action", "DeleteCommand"),
        replace(cap, method="GET"),
        replace(cap, path="/other"),
    ]
    for bad in tampered:
        expect(env, "SignatureDoesNotMatch", 400, lambda bad=bad: authn(env, bad))
    # a body the x-acs-content-sha256 header does not describe
    err = expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, replace(cap, body=b"x=1")))
    assert "not the SHA-256 of the request body" in err.message
    # forged signature of the right shape
    auth_header = cap.header("Authorization") or ""
    forged = re.sub(r"Signature=[0-9a-f]+", "Signature=" + "0" * 64, auth_header)
    expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, with_header(cap, "Authorization", forged)))
    assert nonce_count(env) == 0
    authn(env, cap)


def test_v3_unknown_key(env: Env) -> None:
    cap = tea_run(env, tea_client(env, "LTAI5tNoSuchKey0000000000", "whatever-secret"))
    err = expect(env, "InvalidAccessKeyId.NotFound", 404, lambda: authn(env, cap), "whatever-secret")
    assert "LTAI5tNoSuchKey0000000000" in err.message


def test_v3_wrong_secret(env: Env) -> None:
    cap = tea_run(env, tea_client(env, env.creds["access_key_id"], "not-the-secret"))
    expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, cap), "not-the-secret")


def test_v3_clock_skew(env: Env) -> None:
    client = tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"])
    cap = tea_run(env, client)
    expect(env, "InvalidTimeStamp.Expired", 400, lambda: authn(env, cap, now=time.time() + 902))
    expect(env, "InvalidTimeStamp.Expired", 400, lambda: authn(env, cap, now=time.time() - 902))
    authn(env, cap, now=time.time() + 600)
    cap2 = tea_run(env, client)
    authn(env, cap2, now=time.time() - 600)


def test_v3_bad_date_format(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TeaUtils, "get_timestamp", staticmethod(lambda: "2026-01-01 00:00:00"))
    cap = tea_run(env, tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"]))
    expect(env, "InvalidTimeStamp.Format", 400, lambda: authn(env, cap))


def test_v3_incomplete_and_method(env: Env) -> None:
    cap = tea_run(env, tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"]))
    auth_header = cap.header("Authorization") or ""
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_header(cap, "Authorization", None)))
    no_sig = auth_header.split(",Signature=")[0]
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_header(cap, "Authorization", no_sig)))
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_header(cap, "Authorization", "Basic abc")))
    # an x-acs-* header that is not signed
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_header(cap, "x-acs-extra", "1")))
    # x-acs-date dropped from SignedHeaders
    unsigned_date = auth_header.replace("x-acs-date;", "")
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_header(cap, "Authorization", unsigned_date)))
    # host must be signed
    no_host = auth_header.replace(";host;", ";")
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_header(cap, "Authorization", no_host)))
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_header(cap, "x-acs-signature-nonce", None)))
    expect(env, "IllegalTimestamp", 400, lambda: authn(env, with_header(cap, "x-acs-date", None)))
    expect(env, "MissingParameter.Action", 400, lambda: authn(env, with_header(cap, "x-acs-action", None)))
    sm3 = tea_run(
        env,
        tea_client(
            env, env.creds["access_key_id"], env.creds["access_key_secret"], signature_algorithm="ACS3-HMAC-SM3"
        ),
    )
    expect(env, "InvalidSignatureMethod", 400, lambda: authn(env, sm3))
    assert nonce_count(env) == 0
    authn(env, cap)


def test_v3_form_body(env: Env) -> None:
    client = tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"])
    params = open_api_util_models.Params(
        action="RunCommand", version="2014-05-26", protocol="HTTPS", pathname="/", method="POST",
        auth_type="AK", style="RPC", req_body_type="formData", body_type="json",
    )
    request = open_api_util_models.OpenApiRequest(
        query={"RegionId": "cn-hangzhou"},
        body={"CommandContent": "echo hi & bye +", "InstanceId": ["i-9"]},
    )
    client.call_api(params, request, RuntimeOptions())
    cap = env.srv.recorder.last()
    assert cap.body and cap.header("content-type") == "application/x-www-form-urlencoded"
    res = authn(env, cap)
    assert res.params == {"RegionId": "cn-hangzhou", "CommandContent": "echo hi & bye +", "InstanceId.1": "i-9"}
    expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, replace(cap, body=cap.body.replace(b"hi", b"ho"))))


def test_v3_readonly_key(env: Env) -> None:
    cap = tea_run(env, tea_client(env, env.creds["readonly_access_key_id"], env.creds["readonly_access_key_secret"]))
    res = authn(env, cap)
    assert res.identity.readonly is True
    assert res.identity.access_key_id == env.creds["readonly_access_key_id"]
    assert res.identity.owner == "sandbox-account"


def test_v3_sts(env: Env) -> None:
    ak, sk, tok = env.creds["sts_access_key_id"], env.creds["sts_access_key_secret"], env.creds["sts_security_token"]
    cap = tea_run(env, tea_client(env, ak, sk, security_token=tok))
    assert cap.header("x-acs-security-token") == tok
    res = authn(env, cap)
    assert res.identity.access_key_id == ak and res.identity.owner == "sandbox-account"
    assert not res.identity.readonly

    missing = tea_run(env, tea_client(env, ak, sk))
    expect(env, "InvalidSecurityToken.Missing", 400, lambda: authn(env, missing))
    wrong = tea_run(env, tea_client(env, ak, sk, security_token="CAISwrongtoken"))
    expect(env, "InvalidSecurityToken.Mismatch", 400, lambda: authn(env, wrong))
    # a token with a non-STS key
    main_tok = tea_run(
        env, tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"], security_token=tok)
    )
    expect(env, "InvalidSecurityToken.Mismatch", 400, lambda: authn(env, main_tok))

    expired = auth.mint_sts(env.conn, -60)  # type: ignore[arg-type]
    old = tea_run(
        env, tea_client(env, expired["access_key_id"], expired["access_key_secret"],
                        security_token=expired["security_token"])
    )
    expect(env, "InvalidSecurityToken.Expired", 400, lambda: authn(env, old),
           expired["access_key_secret"], expired["security_token"])

    # a tampered signature with an STS key: the echoed canonical request must not contain the token
    bad = tea_run(env, tea_client(env, ak, sk, security_token=tok))
    err = expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, with_query(bad, RegionId="x")))
    assert "x-acs-security-token:<redacted>" in err.message


def test_v3_minted_readonly_sts(env: Env) -> None:
    minted = auth.mint_sts(env.conn, 3600, readonly=True)  # type: ignore[arg-type]
    cap = tea_run(env, tea_client(env, minted["access_key_id"], minted["access_key_secret"],
                                  security_token=minted["security_token"]))
    res = authn(env, cap)
    assert res.identity.readonly is True and res.identity.access_key_id.startswith("STS.")


def test_v3_concurrent_identical_nonce(env: Env) -> None:
    cap = tea_run(env, tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"]))
    n = 6
    barrier = threading.Barrier(n)
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = store.connect(env.state_dir)
        try:
            barrier.wait()
            try:
                auth.authenticate(conn, cap.method, cap.path, cap.raw_query, cap.header_proxy(), cap.body, time.time())
                outcome = "ok"
            except ApiError as exc:
                outcome = exc.code
        finally:
            conn.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["SignatureNonceUsed"] * (n - 1) + ["ok"]


# ============================================================================================= V1 (tea v2)


def test_v1_tea_wire_form_and_success(env: Env) -> None:
    client = tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"], signature_algorithm="v2")
    cap = tea_run(env, client)
    q = dict(cap.query())
    assert cap.method == "POST" and cap.body == b""
    assert q["Action"] == "RunCommand" and q["SignatureMethod"] == "HMAC-SHA1" and q["Format"] == "json"
    assert cap.header("Authorization") is None
    res = authn(env, cap)
    assert res.signature_version == "v1"
    assert res.action == "RunCommand" and res.version == "2014-05-26"
    assert res.params == EXPECTED_RUN_PARAMS
    expect(env, "SignatureNonceUsed", 400, lambda: authn(env, cap))


def test_v1_tea_failures(env: Env) -> None:
    client = tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"], signature_algorithm="v2")
    cap = tea_run(env, client)
    err = expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, with_query(cap, RegionId="cn-beijing")))
    assert err.message.split("server string to sign is:")[1].startswith("POST&%2F&")
    assert "RegionId%3Dcn-beijing" in err.message
    expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, replace(cap, method="GET")))
    expect(env, "InvalidTimeStamp.Expired", 400, lambda: authn(env, cap, now=time.time() + 902))
    expect(env, "InvalidTimeStamp.Expired", 400, lambda: authn(env, cap, now=time.time() - 902))
    expect(env, "IllegalTimestamp", 400, lambda: authn(env, with_query(cap, Timestamp=None)))
    expect(env, "InvalidSignatureMethod", 400, lambda: authn(env, with_query(cap, SignatureMethod="HMAC-SHA256")))
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_query(cap, Signature=None)))
    expect(env, "IncompleteSignature", 400, lambda: authn(env, with_query(cap, SignatureNonce=None)))
    expect(env, "MissingParameter.Action", 400, lambda: authn(env, with_query(cap, Action=None)))
    assert nonce_count(env) == 0
    authn(env, cap)

    unknown = tea_run(env, tea_client(env, "LTAI5tUnknown", "s3cr3t-x", signature_algorithm="v2"))
    expect(env, "InvalidAccessKeyId.NotFound", 404, lambda: authn(env, unknown), "s3cr3t-x")


def test_v1_tea_bad_timestamp_format(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TeaUtils, "get_timestamp", staticmethod(lambda: "23 Feb 2016 12:46:24"))
    client = tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"], signature_algorithm="v2")
    cap = tea_run(env, client)
    expect(env, "InvalidTimeStamp.Format", 400, lambda: authn(env, cap))


def test_v1_tea_sts_and_readonly(env: Env) -> None:
    ak, sk, tok = env.creds["sts_access_key_id"], env.creds["sts_access_key_secret"], env.creds["sts_security_token"]
    cap = tea_run(env, tea_client(env, ak, sk, security_token=tok, signature_algorithm="v2"))
    assert dict(cap.query())["SecurityToken"] == tok
    res = authn(env, cap)
    assert res.identity.access_key_id == ak and "SecurityToken" not in res.params

    missing = tea_run(env, tea_client(env, ak, sk, signature_algorithm="v2"))
    expect(env, "InvalidSecurityToken.Missing", 400, lambda: authn(env, missing))
    wrong = tea_run(env, tea_client(env, ak, sk, security_token="CAISnope", signature_algorithm="v2"))
    expect(env, "InvalidSecurityToken.Mismatch", 400, lambda: authn(env, wrong))
    expired = auth.mint_sts(env.conn, -1)  # type: ignore[arg-type]
    old = tea_run(env, tea_client(env, expired["access_key_id"], expired["access_key_secret"],
                                  security_token=expired["security_token"], signature_algorithm="v2"))
    expect(env, "InvalidSecurityToken.Expired", 400, lambda: authn(env, old), expired["security_token"])

    # echoed StringToSign never carries the token
    bad = tea_run(env, tea_client(env, ak, sk, security_token=tok, signature_algorithm="v2"))
    err = expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, with_query(bad, RegionId="x")))
    assert "SecurityToken%3D%253Credacted%253E" in err.message

    ro = tea_run(env, tea_client(env, env.creds["readonly_access_key_id"], env.creds["readonly_access_key_secret"],
                                 signature_algorithm="v2"))
    assert authn(env, ro).identity.readonly is True


# ============================================================================================= V1 (AcsClient)


def test_acsclient_get(env: Env) -> None:
    cap = acs_send(env, main_acs(env), acs_request(env))
    q = dict(cap.query())
    # AcsClient: GET by default, everything in the query, an empty SignatureType, Format=JSON
    assert cap.method == "GET" and cap.body == b""
    assert q["SignatureType"] == "" and q["Format"] == "JSON" and q["SignatureMethod"] == "HMAC-SHA1"
    res = authn(env, cap)
    assert res.signature_version == "v1" and res.action == "RunCommand" and res.version == "2014-05-26"
    assert res.params == {"RegionId": "cn-hangzhou", "InstanceId.1": "i-1", "Name": "a b+c/~*"}
    expect(env, "SignatureNonceUsed", 400, lambda: authn(env, cap))


def test_acsclient_post_with_form_body(env: Env) -> None:
    req = acs_request(env, "POST", body={"CommandContent": "echo hi & bye + ü", "Parameters": '{"a":"b c"}'})
    cap = acs_send(env, main_acs(env), req)
    assert cap.method == "POST"
    assert (cap.header("Content-Type") or "").startswith("application/x-www-form-urlencoded")
    assert "CommandContent" not in dict(cap.query())  # body params are only in the body
    res = authn(env, cap)
    assert res.params["CommandContent"] == "echo hi & bye + ü"
    assert res.params["Parameters"] == '{"a":"b c"}'
    assert res.params["RegionId"] == "cn-hangzhou"
    tampered = replace(cap, body=cap.body.replace(b"hi", b"ho"))
    other = acs_send(env, main_acs(env), acs_request(env, "POST", body={"CommandContent": "x"}))
    expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, replace(other, body=tampered.body)))


def test_acsclient_failures(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = acs_send(env, main_acs(env), acs_request(env))
    expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, with_query(cap, Name="other")))
    expect(env, "IllegalTimestamp", 400, lambda: authn(env, with_query(cap, Timestamp=None)))
    expect(env, "InvalidParameter", 400, lambda: authn(env, replace(cap, raw_query=cap.raw_query + "&RegionId=x")))
    expect(env, "InvalidTimeStamp.Expired", 400, lambda: authn(env, cap, now=time.time() + 902))
    unknown = acs_send(env, AcsClient("LTAI5tMissing", "zzz-secret", "cn-hangzhou"), acs_request(env))
    expect(env, "InvalidAccessKeyId.NotFound", 404, lambda: authn(env, unknown), "zzz-secret")

    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: "2016-02-23T12:46:24")
    no_z = acs_send(env, main_acs(env), acs_request(env))
    expect(env, "InvalidTimeStamp.Format", 400, lambda: authn(env, no_z))
    assert nonce_count(env) == 0


def test_acsclient_sts(env: Env) -> None:
    ak, sk, tok = env.creds["sts_access_key_id"], env.creds["sts_access_key_secret"], env.creds["sts_security_token"]
    cap = acs_send(env, AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(ak, sk, tok)),
                   acs_request(env))
    res = authn(env, cap)
    assert res.identity.access_key_id == ak
    missing = acs_send(env, AcsClient(ak, sk, "cn-hangzhou"), acs_request(env))
    expect(env, "InvalidSecurityToken.Missing", 400, lambda: authn(env, missing))
    wrong = acs_send(env, AcsClient(region_id="cn-hangzhou", credential=StsTokenCredential(ak, sk, "CAISbad")),
                     acs_request(env))
    expect(env, "InvalidSecurityToken.Mismatch", 400, lambda: authn(env, wrong))


# ============================================================================================= doc vector, keys


def test_doc_test_vector(env: Env) -> None:
    env.conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO credentials(access_key_id, access_key_secret) VALUES ('testid', 'testsecret')"
    )
    params = {
        "Timestamp": "2016-02-23T12:46:24Z",
        "Format": "XML",
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "Version": "2014-05-26",
        "SignatureVersion": "1.0",
    }
    sts = auth.v1_string_to_sign("GET", params)
    assert sts == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
        "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
    )
    assert auth.v1_signature(sts, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    raw = urlencode({**params, "Signature": "OLeaidS1JvxuMvnyHOwuJ+uX5qY="})
    now = datetime(2016, 2, 23, 12, 50, 0, tzinfo=UTC).timestamp()
    cap = Captured("GET", "/", raw, (("Host", "ecs.aliyuncs.com"),), b"")
    res = authn(env, cap, now=now)
    assert res.action == "DescribeRegions" and res.params == {} and res.identity.access_key_id == "testid"
    # same vector with a wrong secret on file
    env.conn.execute("UPDATE credentials SET access_key_secret='other' WHERE access_key_id='testid'")  # type: ignore[attr-defined]
    cap2 = Captured("GET", "/", raw.replace("3ee8c1b8", "4ee8c1b8"), (("Host", "ecs.aliyuncs.com"),), b"")
    expect(env, "SignatureDoesNotMatch", 400, lambda: authn(env, cap2, now=now), "other")


def test_ensure_credentials_idempotent(env: Env) -> None:
    again = auth.ensure_credentials(env.conn)  # type: ignore[arg-type]
    assert again == env.creds
    assert set(again) == {
        "access_key_id", "access_key_secret", "readonly_access_key_id", "readonly_access_key_secret",
        "sts_access_key_id", "sts_access_key_secret", "sts_security_token",
    }
    assert len({again["access_key_id"], again["readonly_access_key_id"], again["sts_access_key_id"]}) == 3
    assert again["sts_access_key_id"].startswith("STS.")
    rows = {
        r[0]: r
        for r in env.conn.execute(  # type: ignore[attr-defined]
            "SELECT access_key_id, readonly, security_token, expires_at FROM credentials"
        )
    }
    assert len(rows) == 3
    assert rows[again["readonly_access_key_id"]][1] == 1 and rows[again["access_key_id"]][1] == 0
    assert rows[again["access_key_id"]][2] is None
    sts_row = rows[again["sts_access_key_id"]]
    assert sts_row[2] == again["sts_security_token"]
    assert sts_row[3] - time.time() > 9.9 * 365 * 24 * 3600
    # a second connection (another process) sees the same keys
    other = store.connect(env.state_dir)
    try:
        assert auth.ensure_credentials(other) == env.creds
    finally:
        other.close()


def test_mint_sts(env: Env) -> None:
    minted = auth.mint_sts(env.conn, 3600)  # type: ignore[arg-type]
    assert set(minted) == {"access_key_id", "access_key_secret", "security_token", "expiration"}
    assert minted["access_key_id"].startswith("STS.")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", minted["expiration"])
    exp = datetime.strptime(minted["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert 3590 < exp - time.time() <= 3601
    assert auth.mint_sts(env.conn, 60)["access_key_id"] != minted["access_key_id"]  # type: ignore[arg-type]


def test_prune_nonces(env: Env) -> None:
    client = tea_client(env, env.creds["access_key_id"], env.creds["access_key_secret"])
    cap = tea_run(env, client)
    t0 = time.time()
    authn(env, cap, now=t0)
    assert nonce_count(env) == 1
    auth.prune_nonces(env.conn, t0 + 15 * 60)  # type: ignore[arg-type]
    assert nonce_count(env) == 1  # still replayable (request may be dated up to 15 min ahead): kept
    auth.prune_nonces(env.conn, t0 + 2 * 15 * 60 + 120)  # type: ignore[arg-type]
    assert nonce_count(env) == 0


# ============================================================================================= through aiohttp


class _AiohttpAuthServer:
    """A minimal aiohttp app that calls authenticate() the way the real server must (raw query, raw body)."""

    def __init__(self, state_dir: Path) -> None:
        import asyncio
        import json

        from aiohttp import web

        self.seen: list[auth.AuthenticatedRequest] = []
        conn = store.connect(state_dir)
        self.conn = conn
        seen = self.seen

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                res = auth.authenticate(
                    conn, request.method, request.path, request.rel_url.raw_query_string, request.headers, body,
                    time.time(),
                )
            except ApiError as exc:
                payload = {"RequestId": "x", "HostId": "h", "Code": exc.code, "Message": exc.message}
                return web.Response(status=exc.status, text=json.dumps(payload), content_type="application/json")
            seen.append(res)
            return web.Response(text='{"RequestId":"x"}', content_type="application/json")

        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_route("*", "/", handle)
        self.runner = web.AppRunner(app)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)
        self.endpoint = f"127.0.0.1:{self.port}"

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.conn.close()


def test_end_to_end_through_aiohttp(env: Env) -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException
    from aliyunsdkcore.acs_exception.exceptions import ServerException as AcsServerException

    srv = _AiohttpAuthServer(env.state_dir)
    try:
        fake = replace(env, srv=srv)  # type: ignore[arg-type]
        ak, sk = env.creds["access_key_id"], env.creds["access_key_secret"]
        run = ecs_models.RunCommandRequest(
            region_id="cn-hangzhou", instance_id=["i-1"], type="RunShellScript",
            command_content="echo 'a+b' & x=%41 ~ ü", parameters={"k": "v w"},
        )
        tea_client(fake, ak, sk).run_command(run)
        tea_client(fake, ak, sk, signature_algorithm="v2").run_command(run)
        sts = env.creds
        tea_client(fake, sts["sts_access_key_id"], sts["sts_access_key_secret"],
                   security_token=sts["sts_security_token"]).run_command(run)
        acs = main_acs(env)
        acs.do_action_with_exception(acs_request(fake))
        acs.do_action_with_exception(acs_request(fake, "POST", body={"CommandContent": "echo 'a+b' & %41"}))
        assert [r.signature_version for r in srv.seen] == ["v3", "v1", "v3", "v1", "v1"]
        for r in srv.seen[:3]:
            assert r.params["CommandContent"] == "echo 'a+b' & x=%41 ~ ü"
            assert r.params["Parameters"] == '{"k":"v w"}'
        assert srv.seen[3].params["Name"] == "a b+c/~*"
        assert srv.seen[4].params["CommandContent"] == "echo 'a+b' & %41"

        with pytest.raises(ClientException) as info:
            tea_client(fake, ak, "wrong-secret").run_command(run)
        assert info.value.code == "SignatureDoesNotMatch" and info.value.status_code == 400
        with pytest.raises(AcsServerException) as info2:
            AcsClient("LTAI5tNope", "x", "cn-hangzhou").do_action_with_exception(acs_request(fake))
        assert info2.value.get_error_code() == "InvalidAccessKeyId.NotFound"
        assert info2.value.get_http_status() == 404
        # aliyunsdkcore compares the text after "server string to sign is:" with its own StringToSign and, when
        # they are equal (only the secret was wrong), reports InvalidAccessKeySecret: the echo must be exact.
        # (Only for RpcRequest: a CommonRequest keeps an empty string_to_sign, so it stays SignatureDoesNotMatch.)
        from aliyunsdkcore.request import RpcRequest

        rpc = RpcRequest("Ecs", "2014-05-26", "DescribeRegions")
        rpc.set_endpoint(srv.endpoint)
        rpc.set_protocol_type("http")
        rpc.add_query_param("RegionId", "cn-hangzhou")
        with pytest.raises(AcsServerException) as info3:
            AcsClient(ak, "wrong-secret", "cn-hangzhou").do_action_with_exception(rpc)
        assert info3.value.get_error_code() == "InvalidAccessKeySecret"
    finally:
        srv.close()

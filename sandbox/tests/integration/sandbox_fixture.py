"""Helpers and pytest fixtures for the end-to-end tests of the sandbox (`python -m sandbox serve`).

Everything here talks to a real `serve` subprocess through the real SDKs:
- `alibabacloud_ecs20140526` (tea OpenAPI, V3 signature by default, V1 with `signature_algorithm='v2'`),
- `aliyun-python-sdk-core` (`AcsClient` + `CommonRequest`, V1 signature, GET by default),
- `python -m sandbox ctl` for the operator side (instances, agent, faults, stats, sts).

Every wait is bounded in time; nothing sleeps longer than one poll interval.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import http.client
import http.server
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable

START_TIMEOUT = 60.0  # bounded wait for the JSON line of `serve`
STOP_TIMEOUT = 30.0  # bounded wait for `serve` to exit after SIGTERM
LEFTOVER_GRACE = 5.0  # processes of the state dir may take a moment to vanish after `serve` exits
CTL_TIMEOUT = 30.0

# Overall Invocation.InvocationStatus values that never change again (reference §3.2).
TERMINAL_OVERALL = frozenset({"Success", "Failed", "PartialFailed", "Stopped", "Cancelled", "Terminated"})
# Per-instance InvocationStatus values that never change again (reference §3.1).
TERMINAL_INSTANCE = frozenset(
    {"Success", "Failed", "Error", "Timeout", "Invalid", "Aborted", "Cancelled", "Terminated"}
)
TERMINAL_FILE = frozenset({"Success", "Failed", "PartialFailed", "Invalid", "Aborted", "Error", "Timeout"})


# --------------------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """One running `python -m sandbox serve`."""

    state_dir: Path
    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    stderr_path: Path
    extra_lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


def _read_json_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One line of `proc`'s stdout, waiting at most `timeout` seconds (no thread left behind)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"serve printed no JSON line within {timeout:.0f} s (got {buf[:500]!r})")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode} before printing its JSON line")
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"serve closed stdout before printing its JSON line (exit {proc.poll()})")
        buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def _drain(proc: subprocess.Popen[bytes], sink: list[str]) -> None:
    """Keep reading stdout so a chatty server never blocks on a full pipe."""
    assert proc.stdout is not None
    for line in proc.stdout:
        sink.append(line.decode(errors="replace"))


def start_sandbox(
    state_dir: Path,
    instances: int = 6,
    windows_instances: int = 1,
    isolation: str = "auto",
    extra_args: Iterable[str] = (),
) -> Sandbox:
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = state_dir.parent / f"{state_dir.name}.serve-{int(time.time() * 1000)}.stderr"
    cmd = [
        PYTHON,
        "-m",
        "sandbox",
        "serve",
        "--state-dir",
        str(state_dir),
        "--instances",
        str(instances),
        "--windows-instances",
        str(windows_instances),
        "--isolation",
        isolation,
        *extra_args,
    ]
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=str(REPO_ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    try:
        line = _read_json_line(proc, START_TIMEOUT)
        info = json.loads(line)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        stderr = stderr_path.read_text(errors="replace") if stderr_path.exists() else ""
        raise RuntimeError(f"sandbox serve did not start: {exc}\n--- stderr ---\n{stderr[-4000:]}") from exc
    sandbox = Sandbox(state_dir=state_dir, proc=proc, info=info, stderr_path=stderr_path)
    threading.Thread(target=_drain, args=(proc, sandbox.extra_lines), daemon=True).start()
    expected = {
        "endpoint",
        "region_id",
        "access_key_id",
        "access_key_secret",
        "state_dir",
        "isolation",
        "readonly_access_key_id",
        "readonly_access_key_secret",
        "sts_access_key_id",
        "sts_access_key_secret",
        "sts_security_token",
    }
    missing = expected - set(info)
    assert not missing, f"serve's JSON line lacks {sorted(missing)}: {info}"
    return sandbox


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _session_id(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces/parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[1].split()
    try:
        if fields[0] == "Z":  # zombies hold no resources; their parent reaps them
            return None
        return int(fields[3])
    except (IndexError, ValueError):
        return None


def processes_of(state_dir: Path | str, sessions: Iterable[int] = ()) -> list[tuple[int, str]]:
    """Live processes whose command line mentions `state_dir` (as a whole path) or that belong to `sessions`."""
    text = str(state_dir)
    pattern = re.compile(re.escape(text) + r"(?=$|[/\s\"'=:,])")
    sessions = set(sessions)
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        cmd = _cmdline(pid)
        sid = _session_id(pid)
        if sid is None and not cmd:
            continue
        if (cmd and pattern.search(cmd)) or (sid is not None and sid in sessions):
            if sid is None:  # zombie
                continue
            found.append((pid, cmd))
    return found


def processes_matching(text: str) -> list[tuple[int, str]]:
    """Live (non-zombie) processes anywhere on the host whose command line contains `text`."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            cmd = _cmdline(int(entry))
            if text in cmd and _session_id(int(entry)) is not None:
                found.append((int(entry), cmd))
    return found


def wait_no_process(text: str, timeout: float = 3.0) -> None:
    """Bounded wait until no process mentions `text` (e.g. a uniquely-timed `sleep`)."""
    deadline = time.monotonic() + timeout
    left = processes_matching(text)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_matching(text)
    assert not left, f"processes still running {timeout:.0f} s later: {left}"


def agent_pid(state_dir: Path) -> int | None:
    try:
        return int((Path(state_dir) / "agent.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_sandbox(sandbox: Sandbox, check_leftovers: bool = True) -> None:
    """SIGTERM `serve`, wait (bounded), then assert nothing of the state dir is left running."""
    sessions = {sandbox.pid}
    apid = agent_pid(sandbox.state_dir)
    if apid is not None:
        sessions.add(apid)
    if sandbox.proc.poll() is None:
        sandbox.proc.send_signal(signal.SIGTERM)
    try:
        sandbox.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        sandbox.proc.kill()
        sandbox.proc.wait(timeout=10)
        pytest.fail(f"serve (pid {sandbox.pid}) did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM")
    if not check_leftovers:
        return
    deadline = time.monotonic() + LEFTOVER_GRACE
    left = processes_of(sandbox.state_dir, sessions)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_of(sandbox.state_dir, sessions)
    if left:
        # Clean up what this test run started (by pid), then fail loudly.
        for pid, _ in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        detail = "\n".join(f"  {pid}: {cmd}" for pid, cmd in left)
        pytest.fail(
            f"processes of {sandbox.state_dir} still running {LEFTOVER_GRACE:.0f} s after serve exited:\n{detail}"
        )


def kill_server(sandbox: Sandbox) -> None:
    """SIGKILL only the `serve` process (the agent host must survive)."""
    os.kill(sandbox.pid, signal.SIGKILL)
    sandbox.proc.wait(timeout=10)


def force_cleanup(state_dir: Path, sessions: Iterable[int] = ()) -> None:
    """Last-resort cleanup after a failed test: kill (by pid) what is left of this state dir."""
    for pid, _ in processes_of(state_dir, sessions):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------------------------
# ctl
# --------------------------------------------------------------------------------------------------------------


def ctl_raw(info: dict[str, Any], *args: str, timeout: float = CTL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    cmd = [PYTHON, "-m", "sandbox", "ctl", "--state-dir", str(info["state_dir"]), *args]
    return subprocess.run(cmd, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=timeout, check=False)


def ctl(info: dict[str, Any], *args: str, timeout: float = CTL_TIMEOUT) -> Any:
    done = ctl_raw(info, *args, timeout=timeout)
    assert done.returncode == 0, f"ctl {' '.join(args)} failed ({done.returncode}): {done.stderr}{done.stdout}"
    return json.loads(done.stdout)


def add_instances(info: dict[str, Any], count: int = 1, *extra: str) -> list[str]:
    out = ctl(info, "instances", "add", "--count", str(count), *extra)
    ids = [x if isinstance(x, str) else x["instance_id"] for x in out]
    assert len(ids) == count, out
    return ids


def instance_list(info: dict[str, Any]) -> list[dict[str, Any]]:
    return list(ctl(info, "instances", "list"))


def linux_instances(info: dict[str, Any]) -> list[str]:
    return [r["instance_id"] for r in instance_list(info) if r["os_type"] == "linux"]


def windows_instances(info: dict[str, Any]) -> list[str]:
    return [r["instance_id"] for r in instance_list(info) if r["os_type"] == "windows"]


def stats(info: dict[str, Any]) -> dict[str, Any]:
    return dict(ctl(info, "stats"))


def executions_of(st: dict[str, Any], invoke_id: str) -> int:
    return sum(int(v) for v in st.get("executions", {}).get(invoke_id, {}).values())


def mint_sts(info: dict[str, Any], ttl: float = 3600, readonly: bool = False) -> tuple[str, str, str]:
    """`ctl sts` → (access key id, secret, token), whatever the exact JSON key names are."""
    args = ["sts", "--ttl", str(ttl)] + (["--readonly"] if readonly else [])
    out = ctl(info, *args)
    assert isinstance(out, dict), out
    norm = {k.lower().replace("_", "").replace("sts", ""): v for k, v in out.items()}
    key_id = norm.get("accesskeyid")
    secret = norm.get("accesskeysecret")
    token = norm.get("securitytoken") or norm.get("token")
    assert key_id and secret and token, f"unexpected ctl sts output: {out}"
    return str(key_id), str(secret), str(token)


def clear_faults(info: dict[str, Any]) -> None:
    ctl(info, "faults", "--throttle", "0", "--server-errors", "0", "--latency-ms", "0", "--drop", "0",
        "--drop-first", "0", "--actions", "", "--deny-regions", "")


# --------------------------------------------------------------------------------------------------------------
# SDK clients
# --------------------------------------------------------------------------------------------------------------


def host_port(info: dict[str, Any]) -> str:
    return str(info["endpoint"]).split("://", 1)[1].rstrip("/")


def ecs_client(info: dict[str, Any], **overrides: Any) -> Any:
    """tea SDK client pointed at the sandbox. overrides: any Config field (signature_algorithm='v2',
    security_token=..., access_key_id=..., endpoint=...)."""
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    kwargs: dict[str, Any] = {
        "access_key_id": info["access_key_id"],
        "access_key_secret": info["access_key_secret"],
        "region_id": info["region_id"],
        "endpoint": host_port(info),
        "protocol": "http",
        "read_timeout": 20000,
        "connect_timeout": 5000,
    }
    kwargs.update(overrides)
    return Client(Config(**kwargs))


def ecs_client_v1(info: dict[str, Any], **overrides: Any) -> Any:
    return ecs_client(info, signature_algorithm="v2", **overrides)


def ecs_client_sts(info: dict[str, Any], **overrides: Any) -> Any:
    kwargs = {
        "access_key_id": info["sts_access_key_id"],
        "access_key_secret": info["sts_access_key_secret"],
        "security_token": info["sts_security_token"],
    }
    kwargs.update(overrides)
    return ecs_client(info, **kwargs)


def ecs_client_readonly(info: dict[str, Any], **overrides: Any) -> Any:
    kwargs = {"access_key_id": info["readonly_access_key_id"], "access_key_secret": info["readonly_access_key_secret"]}
    kwargs.update(overrides)
    return ecs_client(info, **kwargs)


def acs_client(info: dict[str, Any], access_key_id: str | None = None, access_key_secret: str | None = None) -> Any:
    from aliyunsdkcore.client import AcsClient

    return AcsClient(
        access_key_id or info["access_key_id"],
        access_key_secret or info["access_key_secret"],
        info["region_id"],
        auto_retry=False,
        timeout=20,
        connect_timeout=5,
    )


def acs_call(
    info: dict[str, Any], action: str, params: dict[str, Any] | None = None, *, method: str = "POST", client: Any = None
) -> dict[str, Any]:
    """aliyun-python-sdk-core CommonRequest (RPC style, V1 signature) → parsed JSON body.

    Raises aliyunsdkcore.acs_exception.exceptions.ServerException / ClientException like the SDK does.
    """
    from aliyunsdkcore.request import CommonRequest

    client = client or acs_client(info)
    req = CommonRequest(domain=host_port(info), version="2014-05-26", action_name=action, product="Ecs")
    req.set_protocol_type("http")
    req.set_method(method)
    for key, value in (params or {}).items():
        req.add_query_param(
            key,
            value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value),
        )
    body = client.do_action_with_exception(req)
    return dict(json.loads(body))


def models() -> Any:
    from alibabacloud_ecs20140526 import models as ecs_models

    return ecs_models


# --------------------------------------------------------------------------------------------------------------
# API shortcuts (tea SDK; all return plain dicts via to_map())
# --------------------------------------------------------------------------------------------------------------


def region(client: Any) -> str:
    return str(client._region_id)


def api_error(fn: Callable[[], Any]) -> Any:
    """Run `fn`, expect an SDK exception with a `code`; return it."""
    from Tea.exceptions import TeaException

    try:
        fn()
    except TeaException as exc:
        return exc
    raise AssertionError("the call succeeded; an API error was expected")


def run_command(client: Any, content: str, instance_ids: list[str] | None, **kw: Any) -> dict[str, Any]:
    m = models()
    kw.setdefault("type", "RunShellScript")
    req = m.RunCommandRequest(region_id=region(client), command_content=content, instance_id=instance_ids, **kw)
    return dict(client.run_command(req).body.to_map())


def describe_invocation(
    client: Any, invoke_id: str, include_output: bool = True, content_encoding: str | None = None
) -> dict[str, Any]:
    """The invocation, whether or not it will run again: DescribeInvocations lists executions that will run again
    only with Timed=true (its default is false, ref §2.4), so a lookup that finds nothing asks again with it."""
    m = models()
    for timed in (None, True):
        body = client.describe_invocations(
            m.DescribeInvocationsRequest(
                region_id=region(client),
                invoke_id=invoke_id,
                include_output=include_output,
                content_encoding=content_encoding,
                timed=timed,
            )
        ).body.to_map()
        invs = body.get("Invocations", {}).get("Invocation", [])
        if invs:
            break
    assert len(invs) == 1, f"DescribeInvocations InvokeId={invoke_id} returned {len(invs)} invocations: {body}"
    return dict(invs[0])


def invoke_instances(inv: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["InstanceId"]: i for i in inv.get("InvokeInstances", {}).get("InvokeInstance", [])}


def invocation_results(client: Any, invoke_id: str, **kw: Any) -> list[dict[str, Any]]:
    """All DescribeInvocationResults rows for an invocation (follows NextToken, bounded)."""
    m = models()
    rows: list[dict[str, Any]] = []
    token = None
    for _ in range(50):
        body = client.describe_invocation_results(
            m.DescribeInvocationResultsRequest(
                region_id=region(client), invoke_id=invoke_id, max_results=50, next_token=token, **kw
            )
        ).body.to_map()
        inv = body.get("Invocation", {})
        rows.extend(inv.get("InvocationResults", {}).get("InvocationResult", []))
        token = inv.get("NextToken")
        if not token:
            return rows
    raise AssertionError("DescribeInvocationResults paging did not end within 50 pages")


def api_epoch(api_time: str) -> float:
    """The API's UTC times (yyyy-MM-ddTHH:mm:ssZ) as epoch seconds: tests compare the sandbox's own records."""
    return float(calendar.timegm(time.strptime(api_time, "%Y-%m-%dT%H:%M:%SZ")))


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll `predicate` until it returns a truthy value (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def wait_invocation(
    client: Any, invoke_id: str, timeout: float = 30.0, interval: float = 0.2, content_encoding: str | None = None
) -> dict[str, Any]:
    """Poll DescribeInvocations until the overall status is terminal; return the Invocation (with Output)."""
    state: dict[str, Any] = {}

    def done() -> bool:
        inv = describe_invocation(client, invoke_id, include_output=True, content_encoding=content_encoding)
        state["inv"] = inv
        return inv.get("InvocationStatus") in TERMINAL_OVERALL

    try:
        wait_for(done, timeout, interval, f"invocation {invoke_id} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last state: {json.dumps(state.get('inv'), indent=None)[:3000]}") from None
    return dict(state["inv"])


def wait_instance_status(
    client: Any, invoke_id: str, instance_id: str, statuses: Iterable[str], timeout: float = 30.0
) -> dict[str, Any]:
    wanted = set(statuses)
    state: dict[str, Any] = {}

    def ok() -> bool:
        inv = describe_invocation(client, invoke_id, include_output=True)
        state["row"] = invoke_instances(inv).get(instance_id, {})
        return state["row"].get("InvocationStatus") in wanted

    try:
        wait_for(ok, timeout, 0.2, f"{invoke_id} on {instance_id} to reach {sorted(wanted)}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last row: {state.get('row')}") from None
    return dict(state["row"])


def b64decode(text: str | None) -> bytes:
    return base64.b64decode(text or "")


def output_of(row: dict[str, Any]) -> bytes:
    """Base64 Output of an InvokeInstance / InvocationResult row, decoded."""
    return b64decode(row.get("Output"))


def run_and_wait(
    client: Any, content: str, instance_ids: list[str], timeout: float = 30.0, **kw: Any
) -> tuple[str, dict[str, Any]]:
    invoke_id = run_command(client, content, instance_ids, **kw)["InvokeId"]
    return invoke_id, wait_invocation(client, invoke_id, timeout)


def run_one(client: Any, content: str, instance_id: str, timeout: float = 30.0, **kw: Any) -> dict[str, Any]:
    """Run on one instance, wait, return its InvokeInstance row (Output Base64)."""
    _, inv = run_and_wait(client, content, [instance_id], timeout, **kw)
    return invoke_instances(inv)[instance_id]


def describe_instances(client: Any, instance_ids: list[str] | None = None, **kw: Any) -> list[dict[str, Any]]:
    m = models()
    body = client.describe_instances(
        m.DescribeInstancesRequest(
            region_id=region(client),
            instance_ids=json.dumps(instance_ids) if instance_ids else None,
            max_results=100 if instance_ids else kw.pop("max_results", None),
            **kw,
        )
    ).body.to_map()
    return list(body.get("Instances", {}).get("Instance", []))


def assistant_status(client: Any, instance_id: str) -> str:
    m = models()
    body = client.describe_cloud_assistant_status(
        m.DescribeCloudAssistantStatusRequest(region_id=region(client), instance_id=[instance_id])
    ).body.to_map()
    rows = body.get("InstanceCloudAssistantStatusSet", {}).get("InstanceCloudAssistantStatus", [])
    assert len(rows) == 1, body
    return str(rows[0]["CloudAssistantStatus"])


def wait_agent_ready(client: Any, instance_id: str, timeout: float = 30.0) -> None:
    wait_for(
        lambda: assistant_status(client, instance_id) == "true",
        timeout,
        0.25,
        f"Cloud Assistant on {instance_id} to report true",
    )


def target_root(info: dict[str, Any]) -> str:
    """A directory for SendFile targets: /opt inside namespaced instances; with --isolation process (files land
    on the host) a scratch directory next to the state dir instead."""
    if info.get("isolation") == "namespaces":
        return "/opt"
    return str(Path(info["state_dir"]).parent / "scratch")


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------------------------
# Raw HTTP: capture a signed request, replay it
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CapturedRequest:
    method: str
    path: str  # path + query, exactly as sent
    headers: list[tuple[str, str]]
    body: bytes


class CaptureServer:
    """A tiny local HTTP server that records requests and answers a harmless JSON success."""

    def __init__(self, reply: dict[str, Any] | None = None) -> None:
        self.requests: list[CapturedRequest] = []
        reply_bytes = json.dumps(reply or {"RequestId": "CAPTURED", "Regions": {"Region": []}}).encode()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append(CapturedRequest(self.command, self.path, list(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(reply_bytes)))
                self.end_headers()
                self.wfile.write(reply_bytes)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> CaptureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    @property
    def info_override(self) -> str:
        return f"127.0.0.1:{self.port}"


def replay(info: dict[str, Any], captured: CapturedRequest, timeout: float = 20.0) -> tuple[int, dict[str, str], Any]:
    """Send `captured` byte for byte (same Host header, same signature) to the sandbox."""
    host, port = host_port(info).rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(captured.method, captured.path, skip_host=True, skip_accept_encoding=True)
        for name, value in captured.headers:
            conn.putheader(name, value)
        conn.endheaders(captured.body or None)
        resp = conn.getresponse()
        raw = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    return resp.status, headers, body


# --------------------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The shared sandbox: 6 Linux + 1 Windows instances, isolation auto."""
    state_dir = tmp_path_factory.mktemp("sbx") / "state"
    isolation = os.environ.get("SANDBOX_TEST_ISOLATION", "auto")  # 'process' to exercise the fallback mode
    sandbox = start_sandbox(state_dir, instances=6, windows_instances=1, isolation=isolation)
    try:
        yield sandbox
    finally:
        try:
            clear_faults(sandbox.info)
        except Exception:
            pass
        stop_sandbox(sandbox)


@pytest.fixture(scope="session")
def sandbox_info(sandbox_proc: Sandbox) -> dict[str, Any]:
    return sandbox_proc.info


@pytest.fixture(scope="session")
def client(sandbox_info: dict[str, Any]) -> Any:
    return ecs_client(sandbox_info)


@pytest.fixture(scope="session")
def linux_ids(sandbox_info: dict[str, Any]) -> list[str]:
    """The Linux instances `serve --instances 6` created (not the ones tests add later)."""
    ids = linux_instances(sandbox_info)
    assert len(ids) >= 6, ids
    return ids[:6]


@pytest.fixture(scope="session")
def windows_id(sandbox_info: dict[str, Any]) -> str:
    ids = windows_instances(sandbox_info)
    assert len(ids) == 1, ids
    return ids[0]


@pytest.fixture()
def fresh_instance(sandbox_info: dict[str, Any], client: Any) -> str:
    """A Linux instance of its own (no other test has run anything on it), agent ready."""
    (instance_id,) = add_instances(sandbox_info, 1)
    wait_agent_ready(client, instance_id)
    return instance_id


@pytest.fixture()
def isolated_sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Factory for sandboxes of one test (restart tests); every one started is stopped and checked."""
    started: list[Sandbox] = []

    def start(state_dir: Path | None = None, **kw: Any) -> Sandbox:
        kw.setdefault("isolation", os.environ.get("SANDBOX_TEST_ISOLATION", "auto"))
        kw.setdefault("instances", 2)
        kw.setdefault("windows_instances", 0)
        sb = start_sandbox(state_dir or (tmp_path / "state"), **kw)
        started.append(sb)
        return sb

    try:
        yield start
    finally:
        failures = []
        for sb in started:
            if sb.proc.poll() is None:
                try:
                    stop_sandbox(sb)
                except BaseException as exc:
                    failures.append(str(exc))
        for sb in started:
            force_cleanup(sb.state_dir)
        if failures:
            pytest.fail("\n".join(failures))


__all__ = [
    "Sandbox",
    "client",
    "fresh_instance",
    "isolated_sandbox",
    "linux_ids",
    "sandbox_info",
    "sandbox_proc",
    "windows_id",
]

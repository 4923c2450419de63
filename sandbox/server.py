"""The HTTP side: one aiohttp route for `/`, GET or POST, RPC style like ecs.<region>.aliyuncs.com.

Order of work for every request: faults (throttle, 5xx, latency) → authentication (auth.py) → action
lookup → read-only key denial → RegionId → ClientToken idempotency → handler → optional dropped reply (random
`drop`, or the countdown `drop_first`; each one is recorded in `dropped_replies`).
Nothing before the handler writes anything except the call counter and, once authenticated, the nonce.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sqlite3
import traceback
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from sandbox import agentlink, auth, store
from sandbox.actions import ACTIONS, ActionSpec, Context, load_all
from sandbox.errors import ApiError
from sandbox.params import Params

log = logging.getLogger("sandbox.server")

# Parameters that describe the request rather than the operation: left out of the ClientToken digest.
_NOT_IN_DIGEST = frozenset({"ClientToken", "OwnerId", "OwnerAccount", "ResourceOwnerId", "ResourceOwnerAccount"})

STATE_KEY: web.AppKey[ServerState] = web.AppKey("sandbox_state")


class ServerState:
    def __init__(self, state_dir: Path, isolation: str) -> None:
        self.state_dir = state_dir
        self.isolation = isolation
        self.db = store.connect(state_dir)
        self.requests_since_prune = 0

    def faults(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self.db.execute("SELECT key, value FROM faults")}

    def count_call(self, action: str) -> None:
        self.db.execute(
            "INSERT INTO api_calls(action, count) VALUES (?, 1) ON CONFLICT(action) DO UPDATE SET count = count + 1",
            (action,),
        )


def _to_xml(name: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_to_xml(k, v) for k, v in value.items())
        return f"<{name}>{inner}</{name}>"
    if isinstance(value, list):
        return "".join(_to_xml(name, item) for item in value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def _wants_xml(params: dict[str, str], signature_version: str | None) -> bool:
    """V1 requests default to XML when Format is absent (reference §1.5); V3 always answers JSON."""
    fmt = params.get("Format")
    if fmt is not None:
        return fmt.lower() == "xml"
    return signature_version == "v1"


def _render(
    body: dict[str, Any], status: int, action: str, as_xml: bool, headers: dict[str, str] | None = None
) -> web.Response:
    if as_xml:
        root = f"{action}Response" if status < 400 else "Error"
        text = '<?xml version="1.0" encoding="UTF-8"?>' + _to_xml(root, body)
        return web.Response(status=status, text=text, content_type="text/xml", charset="utf-8", headers=headers)
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def error_body(err: ApiError, request_id: str, host_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "RequestId": request_id,
        "HostId": host_id,
        "Code": err.code,
        "Message": err.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product=Ecs&requestId={request_id}",
    }
    body.update(err.extra)
    return body


def _action_hint(request: web.Request, query: dict[str, str], form: dict[str, str]) -> str:
    return request.headers.get("x-acs-action") or form.get("Action") or query.get("Action") or ""


def _client_token_digest(action: str, region_id: str, params: dict[str, str]) -> str:
    relevant = sorted((k, v) for k, v in params.items() if k not in _NOT_IN_DIGEST)
    return hashlib.sha256(json.dumps([action, region_id, relevant]).encode()).hexdigest()


def _check_region_denied(spec: ActionSpec, params: dict[str, str], faults: dict[str, str]) -> None:
    """`ctl faults --deny-regions`: a RAM policy that denies every action in those regions (whatever the key)."""
    denied = {r for r in faults.get("deny_regions", "").split(",") if r}
    region_id = params.get("RegionId", "")
    if spec.needs_region and region_id in denied:
        # unconfirmed (ref §1.7): the exact RAM-denial code of ECS; chose Forbidden.RAM 403, as for the read-only key.
        raise ApiError(
            "Forbidden.RAM",
            f"User not authorized to operate on the specified resource, or this API doesn't support RAM: "
            f"ecs:{spec.name} is denied in region {region_id}.",
            403,
            extra={"AccessDeniedDetail": {"AuthAction": f"ecs:{spec.name}", "NoPermissionType": "ExplicitDeny",
                                          "PolicyType": "AccountLevelIdentityBasedPolicy"}},
        )


def _take_drop_first(db: sqlite3.Connection) -> bool:
    """`ctl faults --drop-first N`: true for the next N processed requests (of the targeted actions), counted down
    in one statement, so two concurrent requests never take the same one."""
    cur = db.execute("UPDATE faults SET value = CAST(value AS INTEGER) - 1 "
                     "WHERE key = 'drop_first' AND CAST(value AS INTEGER) > 0")
    return cur.rowcount == 1


def _run_action(state: ServerState, spec: ActionSpec, ident: auth.Identity, params: Params, req_id: str,
                host_id: str) -> dict[str, Any]:
    region_id = ""
    if spec.needs_region:
        region_id = params.req("RegionId")
        if state.db.execute("SELECT 1 FROM regions WHERE region_id = ?", (region_id,)).fetchone() is None:
            raise ApiError("InvalidRegionId.NotFound", f"The specified RegionId \"{region_id}\" does not exist.", 404)
    poked = []
    ctx = Context(
        db=state.db,
        request_id=req_id,
        region_id=region_id,
        state_dir=state.state_dir,
        isolation=state.isolation,
        access_key_id=ident.access_key_id,
        poke=lambda: poked.append(True),
        host_id=host_id,
    )
    token = params.str("ClientToken") if spec.client_token else None
    if token is not None and (len(token) > 64 or not token.isascii()):
        raise ApiError("InvalidClientToken.Malformed",
                       "The specified ClientToken must be at most 64 ASCII characters.", 400)
    if token is None:
        result = spec.handler(ctx, params)
    else:
        digest = _client_token_digest(spec.name, region_id, params.raw)
        # The handler and the token record commit together: a lost reply retried with the same token finds
        # the record, so the work is never done twice (reference §1.8).
        with store.transaction(state.db):
            row = state.db.execute(
                "SELECT params_digest, response FROM client_tokens WHERE access_key_owner = ? AND action = ? "
                "AND token = ?",
                (ident.owner, spec.name, token),
            ).fetchone()
            if row is not None:
                if row["params_digest"] != digest:
                    raise ApiError("IdempotentParameterMismatch",
                                   "The request uses the same ClientToken as a previous, but non-identical request.",
                                   403)
                return dict(json.loads(row["response"]))
            result = spec.handler(ctx, params)
            state.db.execute(
                "INSERT INTO client_tokens(access_key_owner, action, token, params_digest, response, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (ident.owner, spec.name, token, digest, json.dumps(result), store.now()),
            )
    if poked:
        agentlink.poke(state.state_dir)
    return result


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    req_id = store.request_id()
    raw_body = await request.read()
    query = {k: v for k, v in request.query.items()}
    form: dict[str, str] = {}
    if request.content_type == "application/x-www-form-urlencoded" and raw_body:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    hinted_action = _action_hint(request, query, form)
    region_hint = form.get("RegionId") or query.get("RegionId") or ""
    host_id = f"ecs.{region_hint}.aliyuncs.com" if region_hint else "ecs.aliyuncs.com"
    as_xml = _wants_xml({**query, **form}, "v1" if ("Signature" in query or "Signature" in form) else "v3")
    action_name = hinted_action or "Unknown"

    def fail(err: ApiError) -> web.Response:
        return _render(error_body(err, req_id, host_id), err.status, action_name, as_xml, err.headers)

    if hinted_action:
        state.count_call(hinted_action)
    faults = state.faults()
    targeted = {a for a in faults.get("actions", "").split(",") if a}
    in_scope = not targeted or hinted_action in targeted
    if in_scope:
        latency_ms = float(faults.get("latency_ms", "0") or 0)
        if latency_ms > 0:
            import asyncio

            await asyncio.sleep(latency_ms / 1000.0)
        if random.random() < float(faults.get("throttle", "0") or 0):
            # x-acs-retry-after is read by the tea SDK as a positive integer; it counts milliseconds in the
            # SDK's rate-limit helper next to it (unit unconfirmed, reference §8).
            return fail(ApiError("Throttling.User", "Request was denied due to user flow control.", 400,
                                 headers={"x-acs-retry-after": str(random.randint(100, 400))}))
        if random.random() < float(faults.get("server_errors", "0") or 0):
            if random.random() < 0.5:
                return fail(ApiError("InternalError", "The request processing has failed due to some unknown "
                                     "error, exception or failure.", 500))
            return fail(ApiError("ServiceUnavailable", "The request has failed due to a temporary failure of "
                                 "the server.", 503))
    drop = in_scope and random.random() < float(faults.get("drop", "0") or 0)

    try:
        authed = auth.authenticate(state.db, request.method, request.path, request.rel_url.raw_query_string,
                                   request.headers, raw_body, store.now())
        action_name = authed.action
        as_xml = _wants_xml({**query, **form}, authed.signature_version)
        spec = ACTIONS.get(authed.action)
        if spec is None or authed.version != "2014-05-26":
            raise ApiError("InvalidApi.NotFound",
                           f"Specified api \"{authed.action}\" is not found in version {authed.version}.", 404)
        if spec.mutating and authed.identity.readonly:
            raise ApiError(
                "Forbidden.RAM",
                f"User not authorized to operate on the specified resource, or this API doesn't support RAM: "
                f"ecs:{spec.name} is denied for this access key.",
                403,
                extra={"AccessDeniedDetail": {"AuthAction": f"ecs:{spec.name}", "NoPermissionType": "ImplicitDeny",
                                              "PolicyType": "AccountLevelIdentityBasedPolicy"}},
            )
        _check_region_denied(spec, authed.params, faults)
        result = _run_action(state, spec, authed.identity, Params(authed.params), req_id, host_id)
    except ApiError as err:
        return fail(err)
    except sqlite3.Error:
        log.error("database error in %s:\n%s", action_name, traceback.format_exc())
        return fail(ApiError("ServiceUnavailable", "The request has failed due to a temporary failure of the "
                             "server.", 503))
    except Exception:
        log.error("unexpected error in %s:\n%s", action_name, traceback.format_exc())
        return fail(ApiError("InternalError", "The request processing has failed due to some unknown error.", 500))

    state.requests_since_prune += 1
    if state.requests_since_prune >= 500:
        state.requests_since_prune = 0
        auth.prune_nonces(state.db, store.now())
    if not drop and in_scope and int(faults.get("drop_first") or 0) > 0:
        # (the countdown writes; a request reads first, so that without the fault it takes no write lock)
        drop = _take_drop_first(state.db)
    if drop and request.transport is not None:
        # The work is done and committed; the client never hears about it (what a lost reply looks like).
        state.db.execute("INSERT INTO dropped_replies(action, client_token) VALUES (?, ?)",
                         (action_name, authed.params.get("ClientToken")))
        request.transport.abort()
        raise web.HTTPServiceUnavailable()
    return _render({"RequestId": req_id, **result}, 200, action_name, as_xml)


def build_app(state_dir: Path, isolation: str) -> web.Application:
    load_all()
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE_KEY] = ServerState(state_dir, isolation)
    app.router.add_route("GET", "/", handle)
    app.router.add_route("POST", "/", handle)
    return app

"""Request authentication: signature V3 (ACS3-HMAC-SHA256) and V1 (HMAC-SHA1), STS tokens, nonces, clock skew.

What the clients send (captured from the real SDKs, see reference §1.2-1.5):

* `alibabacloud_tea_openapi` default (V3): POST /, every business parameter in the query string, empty body,
  `Authorization: ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=...,Signature=hex`, action/version/date/nonce in
  `x-acs-*` headers; with STS also `x-acs-accesskey-id` and `x-acs-security-token` (both signed).
* `alibabacloud_tea_openapi` with `signature_algorithm='v2'` (V1): POST /, everything in the query string
  (`Action, Format=json, Version, Timestamp, SignatureNonce, SignatureMethod, SignatureVersion, AccessKeyId,
  [SecurityToken], Signature`), empty body.
* `aliyunsdkcore` `AcsClient` + `CommonRequest` (V1): GET by default (POST when asked); signature parameters always
  in the query string, also an empty `SignatureType=` and `Format=JSON`; `add_body_params` values go into an
  `application/x-www-form-urlencoded` body and are part of the V1 signature.

Checks run in this order: parse -> key lookup -> STS token -> signature -> timestamp -> nonce. The nonce is only
recorded when everything else passed. No secret (access key secret, security token) ever goes into a message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from . import store
from .errors import ApiError, missing

OWNER = "sandbox-account"
V3_ALGORITHM = "ACS3-HMAC-SHA256"
V1_METHOD = "HMAC-SHA1"
V1_VERSION = "1.0"
MAX_SKEW_SECONDS = 15 * 60
# A request may be dated up to 15 minutes in the future and is accepted until 15 minutes after its date, so the
# same signed request can be replayed up to 30 minutes after the server first saw it. Nonces are therefore kept
# for 2 x 15 minutes plus a margin (the brief asked for "15 minutes + a margin"; the margin covers the skew window).
NONCE_RETENTION_SECONDS = 2 * MAX_SKEW_SECONDS + 60
STS_DEFAULT_TTL_SECONDS = 10 * 365 * 24 * 3600

# Common (protocol) parameters: removed from AuthenticatedRequest.params. `Format` is one of them; a server that
# wants to honour Format=XML must read it from the raw query itself.
COMMON_PARAMS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "SignatureType",
        "Timestamp",
        "SecurityToken",
    }
)
_V1_MARKERS = ("Signature", "AccessKeyId", "SignatureMethod", "SignatureNonce", "SignatureVersion")
_TIMESTAMP_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d{1,9})?Z$")
_FORM_TYPE = "application/x-www-form-urlencoded"

_META_MAIN = "auth.main_access_key_id"
_META_READONLY = "auth.readonly_access_key_id"
_META_STS = "auth.sts_access_key_id"


@dataclass(frozen=True)
class Identity:
    access_key_id: str
    readonly: bool  # the read-only key: server denies mutating actions
    owner: str  # account the key belongs to (same for main, read-only and STS keys: "sandbox-account")


@dataclass(frozen=True)
class AuthenticatedRequest:
    identity: Identity
    action: str
    version: str
    params: dict[str, str]  # business params only (RegionId, InstanceId.1, Parameters, ...)
    signature_version: str  # 'v3' or 'v1'


# --------------------------------------------------------------------------------------------------- errors


def _incomplete(detail: str) -> ApiError:
    return ApiError("IncompleteSignature", f"The request signature does not conform to Aliyun standards. {detail}", 400)


def _bad_method(detail: str) -> ApiError:
    return ApiError("InvalidSignatureMethod", f"The specified signature method is not supported. {detail}", 400)


def _no_match(string_to_sign: str, extra: str = "") -> ApiError:
    # Like the real service, tell the caller the server's StringToSign (security tokens redacted, never a secret).
    msg = f"Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
    if extra:
        msg = f"{msg} {extra}"
    return ApiError("SignatureDoesNotMatch", msg, 400)


def _missing_timestamp(name: str) -> ApiError:
    return ApiError("IllegalTimestamp", f'The input parameter "{name}" that is mandatory for processing this request '
                    "is not supplied.", 400)


# --------------------------------------------------------------------------------------------------- encoding


def percent_encode(value: str) -> str:
    """RFC 3986: only A-Za-z0-9-_.~ unescaped, UTF-8, space -> %20 (what both signature versions use)."""
    return quote(value, safe="~", encoding="utf-8")


def _parse_pairs(text: str, where: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError("InvalidParameter", f"The {where} is not valid percent-encoded UTF-8.", 400) from exc


def _header_map(headers: Mapping[str, str]) -> dict[str, list[str]]:
    """Lower-cased name -> every value (aiohttp's CIMultiDictProxy yields repeated headers from items())."""
    out: dict[str, list[str]] = {}
    for name, value in headers.items():
        out.setdefault(name.lower(), []).append(str(value))
    return out


def _first(hdrs: dict[str, list[str]], name: str) -> str | None:
    values = hdrs.get(name)
    return values[0].strip() if values else None


def _read_params(raw_query: str, hdrs: dict[str, list[str]], body: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """(query params, form-body params), both decoded. A name given twice (anywhere) is rejected."""
    query: dict[str, str] = {}
    for name, value in _parse_pairs(raw_query.lstrip("?"), "query string"):
        if name in query:
            raise ApiError("InvalidParameter", f'The parameter "{name}" is given more than once.', 400)
        query[name] = value
    form: dict[str, str] = {}
    content_type = (_first(hdrs, "content-type") or "").split(";", 1)[0].strip().lower()
    if body and content_type == _FORM_TYPE:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError("InvalidParameter", "The form body is not valid UTF-8.", 400) from exc
        for name, value in _parse_pairs(text, "form body"):
            if name in form or name in query:
                raise ApiError("InvalidParameter", f'The parameter "{name}" is given more than once.', 400)
            form[name] = value
    return query, form


def _business(*sources: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for src in sources:
        out.update((k, v) for k, v in src.items() if k not in COMMON_PARAMS)
    return out


# --------------------------------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class _Key:
    access_key_id: str
    secret: str
    security_token: str | None
    readonly: bool
    expires_at: float | None


def _lookup(conn: sqlite3.Connection, access_key_id: str) -> _Key:
    row = conn.execute(
        "SELECT access_key_secret, security_token, readonly, expires_at FROM credentials WHERE access_key_id = ?",
        (access_key_id,),
    ).fetchone()
    if row is None:
        # Reference §1.7/§9.10: 404 (common list) vs 400 (ECS 2021 list) is a conflict; the brief chose 404.
        raise ApiError("InvalidAccessKeyId.NotFound", f"Specified access key is not found: {access_key_id}", 404)
    return _Key(access_key_id, str(row[0]), row[1], bool(row[2]), row[3])


def _check_token(key: _Key, given: str | None, now: float) -> None:
    # InvalidSecurityToken.* codes and their HTTP status are unconfirmed (reference §1.7: 400/403); we use 400.
    given = given or None
    if key.security_token is None:
        if given is not None:
            raise ApiError(
                "InvalidSecurityToken.Mismatch",
                f"A security token was sent, but access key {key.access_key_id} is not an STS key.",
                400,
            )
        if key.expires_at is not None and now >= key.expires_at:
            raise ApiError("InvalidAccessKeyId.Inactive", f"Specified access key is disabled: {key.access_key_id}", 400)
        return
    if given is None:
        raise ApiError(
            "InvalidSecurityToken.Missing",
            f"Access key {key.access_key_id} is an STS key: the security token is required "
            "(V3: signed header x-acs-security-token, V1: parameter SecurityToken).",
            400,
        )
    if not hmac.compare_digest(given.encode("utf-8"), key.security_token.encode("utf-8")):
        raise ApiError(
            "InvalidSecurityToken.Mismatch",
            f"The specified security token does not belong to access key {key.access_key_id}.",
            400,
        )
    if key.expires_at is not None and now >= key.expires_at:
        raise ApiError(
            "InvalidSecurityToken.Expired",
            f"The specified security token is expired (expired at {store.iso(key.expires_at)}).",
            400,
        )


# --------------------------------------------------------------------------------------------------- time, nonce


def _parse_time(value: str, name: str) -> float:
    m = _TIMESTAMP_RE.match(value)
    if m:
        try:
            return datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    raise ApiError(
        "InvalidTimeStamp.Format",
        f'The specified {name} "{value}" is not in the format yyyy-MM-ddTHH:mm:ssZ (UTC).',
        400,
    )


def _check_time(value: str, name: str, now: float) -> None:
    ts = _parse_time(value, name)
    if abs(now - ts) > MAX_SKEW_SECONDS:
        raise ApiError(
            "InvalidTimeStamp.Expired",
            f"The specified {name} {value} is more than 15 minutes away from the server time {store.iso(now)}.",
            400,
        )


def _record_nonce(conn: sqlite3.Connection, nonce: str, now: float) -> None:
    # One statement, so atomic: the PRIMARY KEY lets only one of two concurrent identical nonces in. A nonce older
    # than the retention window (not pruned yet) counts as unseen, the same as after prune_nonces().
    cur = conn.execute(
        "INSERT INTO nonces(nonce, seen_at) VALUES (?, ?) "
        "ON CONFLICT(nonce) DO UPDATE SET seen_at = excluded.seen_at WHERE nonces.seen_at < ?",
        (nonce, now, now - NONCE_RETENTION_SECONDS),
    )
    if cur.rowcount != 1:
        raise ApiError("SignatureNonceUsed", f'The request signature nonce "{nonce}" has been used.', 400)


def prune_nonces(conn: sqlite3.Connection, now: float) -> None:
    """Forget nonces that can no longer be replayed (older than 2 x 15 minutes + a margin)."""
    conn.execute("DELETE FROM nonces WHERE seen_at < ?", (now - NONCE_RETENTION_SECONDS,))


# --------------------------------------------------------------------------------------------------- V3


def _v3_canonical_query(query: dict[str, str], encode_names: bool) -> str:
    # alibabacloud_tea_openapi get_canonical_query_string: names sorted and NOT encoded, values RFC 3986. The
    # documented algorithm (and other-language SDKs) also encode the names; both forms are accepted.
    names = sorted(query)
    return "&".join(f"{percent_encode(n) if encode_names else n}={percent_encode(query[n])}" for n in names)


def _authenticate_v3(
    conn: sqlite3.Connection,
    method: str,
    path: str,
    query: dict[str, str],
    form: dict[str, str],
    hdrs: dict[str, list[str]],
    authorization: str,
    body: bytes,
    now: float,
) -> AuthenticatedRequest:
    # ---- parse
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != V3_ALGORITHM:
        if scheme.upper().startswith("ACS3-"):
            raise _bad_method(f'Authorization algorithm "{scheme}" is not supported; use {V3_ALGORITHM}.')
        raise _incomplete(f"The Authorization header must start with {V3_ALGORITHM}.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise _incomplete("The Authorization header must be Credential=...,SignedHeaders=...,Signature=....")
        fields[name.strip()] = value.strip()
    access_key_id = fields.get("Credential", "")
    signed_list = fields.get("SignedHeaders", "")
    signature = fields.get("Signature", "")
    for name, value in (("Credential", access_key_id), ("SignedHeaders", signed_list), ("Signature", signature)):
        if not value:
            raise _incomplete(f"The Authorization header has no {name}.")

    action = _first(hdrs, "x-acs-action")
    if not action:
        raise missing("Action")
    version = _first(hdrs, "x-acs-version")
    if not version:
        raise missing("Version")
    date = _first(hdrs, "x-acs-date")
    if not date:
        raise _missing_timestamp("x-acs-date")
    nonce = _first(hdrs, "x-acs-signature-nonce")
    if not nonce:
        raise _incomplete("The header x-acs-signature-nonce is missing.")
    content_sha = _first(hdrs, "x-acs-content-sha256")
    if not content_sha:
        raise _incomplete("The header x-acs-content-sha256 is missing.")

    signed = sorted({h.strip().lower() for h in signed_list.split(";") if h.strip()})
    required = {"host"} | {h for h in hdrs if h.startswith("x-acs-")}
    unsigned = sorted(required - set(signed))
    if unsigned:
        raise _incomplete(f"These headers must be signed (listed in SignedHeaders): {', '.join(unsigned)}.")
    absent = [h for h in signed if h not in hdrs]
    if absent:
        raise _incomplete(f"Signed headers not present in the request: {', '.join(absent)}.")
    key_header = _first(hdrs, "x-acs-accesskey-id")
    if key_header is not None and key_header != access_key_id:
        raise _incomplete("The header x-acs-accesskey-id differs from the Authorization Credential.")

    # ---- key, STS token
    key = _lookup(conn, access_key_id)
    _check_token(key, _first(hdrs, "x-acs-security-token"), now)

    # ---- signature (exactly alibabacloud_tea_openapi utils.get_authorization)
    payload_hash = hashlib.sha256(body).hexdigest()
    if content_sha.lower() != payload_hash:
        raise ApiError(
            "SignatureDoesNotMatch",
            f"The header x-acs-content-sha256 ({content_sha}) is not the SHA-256 of the request body ({payload_hash}).",
            400,
        )
    canonical_headers = "".join(
        f"{h}:{','.join(sorted(v.strip() for v in hdrs[h]))}\n" for h in signed
    )
    signed_headers = ";".join(signed)
    canonical_uri = path.split("?", 1)[0] or "/"
    variants = dict.fromkeys((_v3_canonical_query(query, True), _v3_canonical_query(query, False)))
    given = signature.strip().lower().encode("utf-8")
    secret = key.secret.encode("utf-8")
    first_sts = ""
    first_request = ""
    for canonical_query in variants:
        canonical_request = (
            f"{method.upper()}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n"
            f"{payload_hash}"
        )
        string_to_sign = f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"
        expected = hmac.new(secret, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest().encode("utf-8")
        if hmac.compare_digest(expected, given):
            break
        if not first_sts:
            first_sts, first_request = string_to_sign, canonical_request
    else:
        shown = _redact_v3(first_request, hdrs)
        raise _no_match(first_sts, f"Server canonical request (security token redacted) is:\n{shown}")

    # ---- time, nonce
    _check_time(date, "x-acs-date", now)
    _record_nonce(conn, nonce, now)
    identity = Identity(access_key_id=key.access_key_id, readonly=key.readonly, owner=OWNER)
    return AuthenticatedRequest(identity, action, version, _business(query, form), "v3")


def _redact_v3(canonical_request: str, hdrs: dict[str, list[str]]) -> str:
    token = _first(hdrs, "x-acs-security-token")
    lines = canonical_request.split("\n")
    if token:
        lines = ["x-acs-security-token:<redacted>" if ln.startswith("x-acs-security-token:") else ln for ln in lines]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------- V1


def v1_string_to_sign(method: str, params: Mapping[str, str], redact_token: bool = False) -> str:
    """METHOD&%2F&percentEncode(sorted k=v of every parameter except Signature, RFC 3986 encoded)."""
    pairs = []
    for name in sorted(params):
        if name == "Signature":
            continue
        value = "<redacted>" if redact_token and name == "SecurityToken" else params[name]
        pairs.append(f"{percent_encode(name)}={percent_encode(value)}")
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode('&'.join(pairs))}"


def v1_signature(string_to_sign: str, secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _authenticate_v1(
    conn: sqlite3.Connection,
    method: str,
    query: dict[str, str],
    form: dict[str, str],
    now: float,
) -> AuthenticatedRequest:
    params = {**query, **form}
    # ---- parse
    action = params.get("Action")
    if not action:
        raise missing("Action")
    version = params.get("Version")
    if not version:
        raise missing("Version")
    for name in ("AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce"):
        if not params.get(name):
            raise _incomplete(f'The signature parameter "{name}" is missing.')
    if params["SignatureMethod"] != V1_METHOD:
        raise _bad_method(f'SignatureMethod "{params["SignatureMethod"]}" is not supported; use {V1_METHOD}.')
    if params["SignatureVersion"] != V1_VERSION:
        # No dedicated code in the reference; an unsupported SignatureVersion is reported as InvalidSignatureMethod.
        raise _bad_method(f'SignatureVersion "{params["SignatureVersion"]}" is not supported; use {V1_VERSION}.')
    if params.get("SignatureType"):
        # aliyunsdkcore sends an empty SignatureType; BEARERTOKEN (bearer-token auth) is not offered by the sandbox.
        raise _bad_method(f'SignatureType "{params["SignatureType"]}" is not supported.')
    timestamp = params.get("Timestamp")
    if not timestamp:
        raise _missing_timestamp("Timestamp")

    # ---- key, STS token
    key = _lookup(conn, params["AccessKeyId"])
    _check_token(key, params.get("SecurityToken"), now)

    # ---- signature: query and form parameters together (aliyunsdkcore signs body params too)
    string_to_sign = v1_string_to_sign(method, params)
    expected = v1_signature(string_to_sign, key.secret)
    # A '+' the client forgot to encode arrives as a space; base64 never contains spaces.
    given = params["Signature"].replace(" ", "+")
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8")):
        raise _no_match(v1_string_to_sign(method, params, redact_token=True))

    # ---- time, nonce
    _check_time(timestamp, "Timestamp", now)
    _record_nonce(conn, params["SignatureNonce"], now)
    identity = Identity(access_key_id=key.access_key_id, readonly=key.readonly, owner=OWNER)
    return AuthenticatedRequest(identity, action, version, _business(query, form), "v1")


# --------------------------------------------------------------------------------------------------- entry point


def authenticate(
    conn: sqlite3.Connection,
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> AuthenticatedRequest:
    """Verify one request (V3 or V1) and record its nonce; raises ApiError on every failure."""
    hdrs = _header_map(headers)
    query, form = _read_params(raw_query, hdrs, body)
    authorization = _first(hdrs, "authorization")
    has_v1 = any(name in query or name in form for name in _V1_MARKERS)
    if authorization and (authorization.upper().startswith("ACS3-") or not has_v1):
        return _authenticate_v3(conn, method, path, query, form, hdrs, authorization, body, now)
    if has_v1:
        return _authenticate_v1(conn, method, query, form, now)
    raise _incomplete("No Authorization header (V3) and no Signature parameters (V1) were sent.")


# --------------------------------------------------------------------------------------------------- credentials

_ALNUM = string.ascii_letters + string.digits


def _rand(n: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(n))


def _new_token() -> str:
    # Shaped like a real STS token (base64, "CAIS" prefix); contains '+', '/', '=' to exercise encoding.
    return "CAIS" + base64.b64encode(secrets.token_bytes(150)).decode("ascii")


def _insert_key(
    conn: sqlite3.Connection, sts: bool, readonly: bool, expires_at: float | None
) -> tuple[str, str, str | None]:
    access_key_id = f"STS.{_rand(28)}" if sts else f"LTAI5t{_rand(18)}"
    secret = _rand(30)
    token = _new_token() if sts else None
    conn.execute(
        "INSERT INTO credentials(access_key_id, access_key_secret, security_token, readonly, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (access_key_id, secret, token, int(readonly), expires_at),
    )
    return access_key_id, secret, token


def mint_sts(conn: sqlite3.Connection, ttl_seconds: float, readonly: bool = False) -> dict[str, str]:
    """A new STS key (id starts with "STS.") valid for ttl_seconds (may be negative: already expired)."""
    expires_at = time.time() + ttl_seconds
    access_key_id, secret, token = _insert_key(conn, sts=True, readonly=readonly, expires_at=expires_at)
    assert token is not None
    return {
        "access_key_id": access_key_id,
        "access_key_secret": secret,
        "security_token": token,
        "expiration": store.iso(expires_at),
    }


def _ensure_one(
    conn: sqlite3.Connection, meta_key: str, create: Callable[[], tuple[str, str, str | None]], now: float
) -> tuple[str, str, str | None]:
    access_key_id = store.get_meta(conn, meta_key)
    if access_key_id:
        row = conn.execute(
            "SELECT access_key_secret, security_token, expires_at FROM credentials WHERE access_key_id = ?",
            (access_key_id,),
        ).fetchone()
        if row is not None and (row[2] is None or row[2] > now):
            return access_key_id, str(row[0]), row[1]
    created = create()
    store.set_meta(conn, meta_key, created[0])
    return created


def ensure_credentials(conn: sqlite3.Connection) -> dict[str, str]:
    """Create (first call) or read back the main key, the read-only key and one STS key (valid 10 years)."""
    now = time.time()
    with store.transaction(conn):
        main = _ensure_one(conn, _META_MAIN, lambda: _insert_key(conn, False, False, None), now)
        ro = _ensure_one(conn, _META_READONLY, lambda: _insert_key(conn, False, True, None), now)
        sts = _ensure_one(
            conn, _META_STS, lambda: _insert_key(conn, True, False, now + STS_DEFAULT_TTL_SECONDS), now
        )
    return {
        "access_key_id": main[0],
        "access_key_secret": main[1],
        "readonly_access_key_id": ro[0],
        "readonly_access_key_secret": ro[1],
        "sts_access_key_id": sts[0],
        "sts_access_key_secret": sts[1],
        "sts_security_token": sts[2] or "",
    }


__all__ = [
    "AuthenticatedRequest",
    "Identity",
    "authenticate",
    "ensure_credentials",
    "mint_sts",
    "prune_nonces",
]

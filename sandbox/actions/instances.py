"""Inventory and power actions: DescribeRegions, DescribeInstances, Start/Stop/RebootInstance,
DescribeCloudAssistantStatus, InstallCloudAssistant (reference §2.12-2.15, §6, §7).

Power actions only change `instances.status` / `boot_count`; the agent host reacts (INTERNALS.md).
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

from sandbox import store
from sandbox.actions import Context, action
from sandbox.errors import ApiError, missing
from sandbox.fleet import AGENT_VERSIONS
from sandbox.paging import page_fields, read_page
from sandbox.params import Params

HEARTBEAT_FRESH_SECONDS = 120  # ref §2.12: "heartbeat seen in the last 2 minutes"
INSTANCE_STATUSES = ("Pending", "Running", "Starting", "Stopping", "Stopped")
ACCEPT_LANGUAGES = ("zh-CN", "en-US", "ja", "zh-TW", "fr", "de", "ko")
RESOURCE_TYPES = ("instance", "disk", "reservedinstance", "scu")
SESSION_MANAGER_MIN = {"linux": (2, 2, 3, 189), "windows": (2, 1, 3, 189)}  # ref §2.12
CA_OS_TYPES = {"linux": "Linux", "windows": "Windows"}


# ---------------------------------------------------------------------------------------------- shared helpers
def instance_ids_param(p: Params, limit: int) -> list[str]:
    """`InstanceId.N` for the Cloud Assistant actions: 1..limit IDs (duplicates dropped, order kept)."""
    # unconfirmed (ref §2.10/§2.13): chose to drop repeated IDs silently, counting the limit after that.
    given: list[str] = p.list("InstanceId")
    ids = list(dict.fromkeys(i for i in given if i))
    if not ids:
        raise ApiError("MissingParam.InstanceId",
                       'The input parameter "InstanceId" that is mandatory for processing this request is not '
                       "supplied.", 400)
    check_instance_count(ids, limit)
    return ids


def check_instance_count(ids: Sequence[str], limit: int) -> None:
    if len(ids) > limit:
        raise ApiError("InstanceIds.ExceedLimit",
                       f"The number of instances ({len(ids)}) exceeds the limit of {limit}.", 403)


def fetch_instances(conn: sqlite3.Connection, region_id: str, ids: Sequence[str]) -> dict[str, sqlite3.Row]:
    """Rows of `ids` in `region_id`; any unknown ID (or one in another region) -> InvalidInstance.NotFound 404."""
    rows = conn.execute(
        f"SELECT * FROM instances WHERE region_id = ? AND instance_id IN ({_marks(ids)})",  # noqa: S608
        (region_id, *ids),
    ).fetchall()
    found = {r["instance_id"]: r for r in rows}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise ApiError("InvalidInstance.NotFound", f"The specified instance does not exist: {unknown[0]}.", 404)
    return found


def _marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


def _digest(*parts: str, n: int = 20) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:n]


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in version.split("."))
    except ValueError:
        return ()


# --------------------------------------------------------------------------------------------- DescribeRegions
@action("DescribeRegions", needs_region=False)
def describe_regions(ctx: Context, p: Params) -> dict[str, Any]:
    language = p.str("AcceptLanguage")
    if language is not None and language not in ACCEPT_LANGUAGES:
        raise ApiError("InvalidAcceptLanguage.NotFound", "The specified AcceptLanguage is not found.", 404)
    resource_type = p.str("ResourceType")
    if resource_type is not None and resource_type not in RESOURCE_TYPES:
        raise ApiError("InvalidResourceType.NotFound", "The specified ResourceType is not found.", 404)
    # unconfirmed (ref §2.15): chose to answer the stored LocalName whatever AcceptLanguage says (the real
    # service localises it; zh-CN is its default).
    rows = ctx.db.execute("SELECT region_id, local_name FROM regions ORDER BY rowid").fetchall()
    return {
        "Regions": {
            "Region": [
                {
                    "RegionId": r["region_id"],
                    "LocalName": r["local_name"],
                    "RegionEndpoint": f"ecs.{r['region_id']}.aliyuncs.com",
                    "Status": "available",
                }
                for r in rows
            ]
        }
    }


# ------------------------------------------------------------------------------------------- DescribeInstances
def _json_str_list(p: Params, name: str, limit: int) -> list[str] | None:
    # unconfirmed (ref §2.14): no code is documented for a malformed or over-long list; chose
    # InvalidParameter.<Name> 400 (the code Params.json uses for bad JSON).
    value = p.json(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(f"InvalidParameter.{name}", f'The specified "{name}" must be a JSON array of strings.', 400)
    if len(value) > limit:
        raise ApiError(f"InvalidParameter.{name}", f'The specified "{name}" holds more than {limit} items.', 400)
    return value


def _glob_pattern(wildcard: str) -> str:
    """InstanceName with `*` wildcards -> a SQLite GLOB pattern (other GLOB metacharacters literal)."""
    out = []
    for ch in wildcard:
        if ch == "*":
            out.append("*")
        elif ch in "?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def _instance_tag_filters(p: Params) -> list[tuple[str, str | None]]:
    tags: list[dict[str, str]] = p.obj_list("Tag")
    if len(tags) > 20:
        raise ApiError("InvalidTagCount", "The specified tags are beyond the permitted range (1-20).", 400)
    out: list[tuple[str, str | None]] = []
    for tag in tags:
        key = tag.get("Key", "")
        if not key:
            # ref §2.14 (2021 table): a Tag.N.Value without its Tag.N.Key
            raise ApiError("InvalidTag.Mismatch", "The specified Tag.n.Key and Tag.n.Value are not match.", 400)
        # unconfirmed (ref §2.14): chose "Tag.N.Key without Tag.N.Value matches any value of that key".
        out.append((key, tag.get("Value")))
    return out


def _vpc_id(region_id: str) -> str:
    return f"vpc-{_digest('vpc', region_id)}"


def _vswitch_id(zone_id: str) -> str:
    return f"vsw-{_digest('vsw', zone_id)}"


def _instance_item(row: sqlite3.Row, tags: list[dict[str, str]]) -> dict[str, Any]:
    """One `Instance` of DescribeInstances: every field of the SDK model, in the order the real service sends
    them (ref §2.14: captured order; fields the capture lacks follow it, see sandbox/README.md). Some older
    clients read the fields in arrival order (footmark needs `EipAddress` before `PublicIpAddress`)."""
    instance_id = row["instance_id"]
    ip = row["private_ip"]
    mac_bytes = hashlib.sha256(f"mac/{instance_id}".encode()).digest()[:3]
    mac = "00:16:3e:" + ":".join(f"{b:02x}" for b in mac_bytes)
    serial = str(uuid.UUID(bytes=hashlib.md5(instance_id.encode()).digest()))  # noqa: S324 - not security
    linux = row["os_type"] == "linux"
    created = store.iso_minute(row["created_at"])
    return {
        # --- captured order (ref §2.14), ImageOptions/HibernationOptions as the later records place them
        "ResourceGroupId": "",
        "Memory": 8192,
        "InstanceChargeType": "PostPaid",
        "Cpu": 2,
        "OSName": row["os_name"],
        "InstanceNetworkType": "vpc",
        "InnerIpAddress": {"IpAddress": []},
        "ExpiredTime": "2099-12-31T15:59Z",
        "ImageId": ("aliyun_3_x64_20G_alibase_20240819.vhd" if linux
                    else "win2022_21H2_x64_dtc_zh-cn_40G_alibase_20240816.vhd"),
        "ImageOptions": {"CurrentOSNVMeSupported": False, "LoginAsNonRoot": False},
        "EipAddress": {"AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": "",
                       "IsSupportUnassociate": False},
        "HibernationOptions": {"Configured": False},
        "HostName": row["hostname"],
        "VlanId": "",
        "Status": row["status"],
        "MetadataOptions": {"HttpTokens": "optional", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1,
                            "InstanceMetadataTags": ""},
        "InstanceId": instance_id,
        "StoppedMode": "KeepCharging" if row["status"] == "Stopped" else "Not-applicable",
        # 2 vCPUs = 1 core x 2 threads (captured defaults); the model's later fields empty
        "CpuOptions": {"ThreadsPerCore": 2, "Numa": "ON", "CoreCount": 1, "EnableVISST": False, "EnableVRDT": False,
                       "NestedVirtualization": "", "TopologyType": "", "TurboMode": ""},
        "StartTime": created,
        "DeletionProtection": False,
        "SecurityGroupIds": {"SecurityGroupId": [f"sg-{_digest('sg', row['region_id'])}"]},
        "VpcAttributes": {
            "VpcId": _vpc_id(row["region_id"]),
            "VSwitchId": _vswitch_id(row["zone_id"]),
            "NatIpAddress": "",
            "PrivateIpAddress": {"IpAddress": [ip]},
        },
        "InternetChargeType": "PayByTraffic",
        "InstanceName": row["instance_name"],
        "DeploymentSetId": "",
        "InternetMaxBandwidthOut": 0,
        "SerialNumber": serial,
        "OSType": row["os_type"],
        "CreationTime": created,
        "AutoReleaseTime": "",
        "Description": "",
        "InstanceTypeFamily": row["instance_type"].rsplit(".", 1)[0],
        "DedicatedInstanceAttribute": {"Tenancy": "", "Affinity": ""},
        "PublicIpAddress": {"IpAddress": []},
        "GPUSpec": "",
        "NetworkInterfaces": {
            "NetworkInterface": [
                {
                    "NetworkInterfaceId": f"eni-{_digest('eni', instance_id)}",
                    "PrimaryIpAddress": ip,
                    "MacAddress": mac,
                    "Type": "Primary",
                    "PrivateIpSets": {
                        "PrivateIpSet": [{"PrivateIpAddress": ip, "Primary": True, "PrivateDnsName": ""}]
                    },
                    "Ipv6Sets": {"Ipv6Set": []},
                    "Ipv4PrefixSets": {"Ipv4PrefixSet": []},
                    "Ipv6PrefixSets": {"Ipv6PrefixSet": []},
                }
            ]
        },
        "SpotPriceLimit": 0.0,
        "DeviceAvailable": True,
        "SaleCycle": "",
        "InstanceType": row["instance_type"],
        "OSNameEn": row["os_name"],
        "SpotStrategy": "NoSpot",
        "IoOptimized": True,
        "ZoneId": row["zone_id"],
        "ClusterId": "",
        "EcsCapacityReservationAttr": {"CapacityReservationPreference": "", "CapacityReservationId": ""},
        "DedicatedHostAttribute": {"DedicatedHostId": "", "DedicatedHostName": "", "DedicatedHostClusterId": ""},
        "GPUAmount": 0,
        "OperationLocks": {"LockReason": []},
        "InternetMaxBandwidthIn": 0,
        "Recyclable": False,
        "RegionId": row["region_id"],
        "CreditSpecification": "",  # "Standard" only for burstable (t5/t6) types
        # --- not in the captured answer: Tags (later records), then the SDK model's other fields with empty
        # values, in alphabetical order (position guessed)
        "Tags": {"Tag": tags},
        "AdditionalInfo": {"EnableHighDensityMode": False, "ManagedHostId": "", "NodeSerialNumber": ""},
        "ClockOptions": {"PtpStatus": ""},
        "DeploymentSetGroupNo": 0,
        "EnableNVS": False,
        "HpcClusterId": "",
        "ISP": "",
        "KeyPairName": "",
        "LocalStorageAmount": 0,
        "LocalStorageCapacity": 0,
        "PrivateDnsNameOptions": {"EnableInstanceIdDnsAAAARecord": False, "EnableInstanceIdDnsARecord": False,
                                  "EnableIpDnsARecord": False, "EnableIpDnsPtrRecord": False, "HostnameType": ""},
        "RdmaIpAddress": {"IpAddress": []},
        "SecurityOptions": {"EnableSecureBoot": False},
        "SpotDuration": 0,
        "SpotInterruptionBehavior": "",
    }


@action("DescribeInstances")
def describe_instances(ctx: Context, p: Params) -> dict[str, Any]:
    where = ["i.region_id = ?"]
    args: list[Any] = [ctx.region_id]
    empty = False  # a filter no sandbox instance can match

    ids = _json_str_list(p, "InstanceIds", 100)
    if ids:
        where.append(f"i.instance_id IN ({_marks(ids)})")
        args.extend(ids)
    ips = _json_str_list(p, "PrivateIpAddresses", 100)
    if ips:
        where.append(f"i.private_ip IN ({_marks(ips)})")
        args.extend(ips)
    for name in ("PublicIpAddresses", "EipAddresses"):
        if _json_str_list(p, name, 100):
            empty = True  # sandbox instances have no public IP or EIP
    instance_name = p.str("InstanceName")
    if instance_name is not None:
        where.append("i.instance_name GLOB ?")
        args.append(_glob_pattern(instance_name))
    status = p.str("Status")
    if status is not None:
        if status not in INSTANCE_STATUSES:
            raise ApiError("InvalidStatus.NotFound", "The specified Status is not found.", 404)
        where.append("i.status = ?")
        args.append(status)
    for param, column in (("ZoneId", "zone_id"), ("InstanceType", "instance_type")):
        value = p.str(param)
        if value is not None:
            where.append(f"i.{column} = ?")
            args.append(value)
    vpc_id = p.str("VpcId")
    if vpc_id is not None and vpc_id != _vpc_id(ctx.region_id):
        empty = True
    vswitch_id = p.str("VSwitchId")
    if vswitch_id is not None:
        zones = [r[0] for r in ctx.db.execute("SELECT DISTINCT zone_id FROM instances WHERE region_id = ?",
                                              (ctx.region_id,))]
        matching = [z for z in zones if _vswitch_id(z) == vswitch_id]
        if not matching:
            empty = True
        else:
            where.append("i.zone_id = ?")
            args.append(matching[0])
    network_type = p.str("InstanceNetworkType")
    if network_type is not None and network_type != "vpc":
        empty = True
    if p.str("ResourceGroupId") is not None:
        # unconfirmed (ref §2.14): sandbox instances are in the default resource group, which is not
        # filterable; chose "any ResourceGroupId matches no instance".
        empty = True
    for key, value in _instance_tag_filters(p):
        if value is None:
            where.append("EXISTS (SELECT 1 FROM instance_tags t WHERE t.instance_id = i.instance_id"
                         " AND t.tag_key = ?)")
            args.append(key)
        else:
            where.append("EXISTS (SELECT 1 FROM instance_tags t WHERE t.instance_id = i.instance_id"
                         " AND t.tag_key = ? AND t.tag_value = ?)")
            args.extend((key, value))

    page = read_page(p, max_size=100, clamp=True)
    if empty:
        where.append("0")
    clause = " AND ".join(where)
    total = ctx.db.execute(f"SELECT COUNT(*) FROM instances i WHERE {clause}", args).fetchone()[0]  # noqa: S608
    rows = ctx.db.execute(
        f"SELECT * FROM instances i WHERE {clause} ORDER BY i.seq LIMIT ? OFFSET ?",  # noqa: S608
        (*args, page.size, page.offset),
    ).fetchall()
    tags: dict[str, list[dict[str, str]]] = {r["instance_id"]: [] for r in rows}
    if rows:
        for t in ctx.db.execute(
            f"SELECT instance_id, tag_key, tag_value FROM instance_tags WHERE instance_id IN ({_marks(rows)})"  # noqa: S608
            " ORDER BY instance_id, tag_key",
            [r["instance_id"] for r in rows],
        ):
            tags[t[0]].append({"TagKey": t[1], "TagValue": t[2]})
    return {
        **page_fields(page, total),
        "Instances": {"Instance": [_instance_item(r, tags[r["instance_id"]]) for r in rows]},
    }


# ------------------------------------------------------------------------------------------ power operations
def _power_target(ctx: Context, p: Params) -> sqlite3.Row:
    instance_id = p.str("InstanceId")
    if instance_id is None:
        raise missing("InstanceId")
    # These requests carry no RegionId (the real endpoint is regional); one sandbox endpoint serves every
    # region, so the instance is found by its ID alone, within RegionId when a client sends one anyway.
    region_id = p.str("RegionId")
    if region_id is None:
        row = ctx.db.execute("SELECT * FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    else:
        row = ctx.db.execute("SELECT * FROM instances WHERE instance_id = ? AND region_id = ?",
                             (instance_id, region_id)).fetchone()
    if row is None:
        raise ApiError("InvalidInstanceId.NotFound", "The specified InstanceId does not exist.", 404)
    return row


def _incorrect_status() -> ApiError:
    # StartInstance/StopInstance/RebootInstance error tables: 403 IncorrectInstanceStatus
    return ApiError("IncorrectInstanceStatus", "The current status of the resource does not support this operation.",
                    403)


def _dry_run(p: Params) -> None:
    # unconfirmed (not in the reference; SDK docstrings name DryRunOperation): chose 400 DryRunOperation once
    # every check has passed.
    if p.bool("DryRun"):
        raise ApiError("DryRunOperation", "Request validation has been passed with DryRun flag set.", 400)


def _power(ctx: Context, p: Params, from_status: str, set_sql: str) -> dict[str, Any]:
    row = _power_target(ctx, p)
    if row["status"] != from_status:
        raise _incorrect_status()
    _dry_run(p)
    with store.transaction(ctx.db):
        changed = ctx.db.execute(
            f"UPDATE instances SET {set_sql} WHERE instance_id = ? AND status = ?",  # noqa: S608
            (row["instance_id"], from_status),
        ).rowcount
    if changed != 1:  # someone else changed the status in between
        raise _incorrect_status()
    ctx.poke()
    return {}


@action("StartInstance", mutating=True, needs_region=False)
def start_instance(ctx: Context, p: Params) -> dict[str, Any]:
    p.bool("InitLocalDisk")  # accepted (validated), meaningless here
    return _power(ctx, p, "Stopped", "status = 'Running', boot_count = boot_count + 1")


@action("StopInstance", mutating=True, needs_region=False)
def stop_instance(ctx: Context, p: Params) -> dict[str, Any]:
    # ForceStop / ConfirmStop / StoppedMode / Hibernate accepted; a sandbox stop is always immediate.
    p.bool("ForceStop")
    p.bool("ConfirmStop")
    # unconfirmed (not in the reference; StartInstance's table has it): chose IncorrectInstanceStatus 403 for
    # an instance that is not Running (e.g. already Stopped), as StartInstance answers for a non-Stopped one.
    return _power(ctx, p, "Running", "status = 'Stopped'")


@action("RebootInstance", mutating=True, needs_region=False)
def reboot_instance(ctx: Context, p: Params) -> dict[str, Any]:
    p.bool("ForceStop")
    return _power(ctx, p, "Running", "boot_count = boot_count + 1")


# ------------------------------------------------------------------------------- DescribeCloudAssistantStatus
def _ca_os_filter(p: Params) -> str | None:
    """OSType filter -> instances.os_type value; '' for FreeBSD (no sandbox instance matches)."""
    value = p.str("OSType")
    if value is None:
        return None
    lowered = value.lower()
    if lowered in CA_OS_TYPES:
        return lowered
    if lowered == "freebsd":
        return ""
    # unconfirmed (ref §2.12): no documented code for an unknown OSType; chose InvalidParameter.OSType 400.
    raise ApiError("InvalidParameter.OSType", f'The specified "OSType" ({value}) is not valid.', 400)


def _ca_item(row: sqlite3.Row, counts: dict[str, tuple[int, int]], at: float) -> dict[str, Any]:
    installed = bool(row["agent_installed"])
    agent_up = installed and bool(row["agent_running"])
    heartbeat = row["last_heartbeat"]
    online = (row["status"] == "Running" and agent_up and heartbeat is not None
              and at - heartbeat <= HEARTBEAT_FRESH_SECONDS)
    version = row["agent_version"] if agent_up else ""
    # unconfirmed (ref §2.12 "CloudAssistantVersion empty when the agent is absent/not running"): chose ''
    # when the agent is not installed or its process is stopped; a stopped instance keeps its version.
    minimum = SESSION_MANAGER_MIN.get(row["os_type"], (99,))
    invocations, active = counts.get(row["instance_id"], (0, 0))
    return {
        "InstanceId": row["instance_id"],
        "CloudAssistantStatus": "true" if online else "false",
        "CloudAssistantVersion": version,
        "OSType": CA_OS_TYPES.get(row["os_type"], row["os_type"]),
        "LastHeartbeatTime": store.iso(heartbeat),
        "LastInvokedTime": store.iso(row["last_invoked"]),
        "ActiveTaskCount": active,
        "InvocationCount": invocations,
        "SupportSessionManager": installed and _version_tuple(row["agent_version"]) >= minimum,
    }


@action("DescribeCloudAssistantStatus")
def describe_cloud_assistant_status(ctx: Context, p: Params) -> dict[str, Any]:
    given: list[str] = p.list("InstanceId")
    ids = list(dict.fromkeys(i for i in given if i))
    check_instance_count(ids, 100)
    os_type = _ca_os_filter(p)
    if ids:
        found = fetch_instances(ctx.db, ctx.region_id, ids)
        rows = [found[i] for i in ids if os_type is None or found[i]["os_type"] == os_type]
        # ref §2.12: MaxResults (and, unconfirmed, every paging parameter) is ignored when InstanceId is given;
        # chose one page holding every match, PageSize = its length.
        paging: dict[str, Any] = {"TotalCount": len(rows), "PageNumber": 1, "PageSize": len(rows), "NextToken": ""}
    else:
        page = read_page(p, max_size=50)
        where = "region_id = ?"
        args: list[Any] = [ctx.region_id]
        if os_type is not None:
            where += " AND os_type = ?"
            args.append(os_type)
        total = ctx.db.execute(f"SELECT COUNT(*) FROM instances WHERE {where}", args).fetchone()[0]  # noqa: S608
        rows = ctx.db.execute(
            f"SELECT * FROM instances WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",  # noqa: S608
            (*args, page.size, page.offset),
        ).fetchall()
        paging = page_fields(page, total)
    counts: dict[str, tuple[int, int]] = {}
    if rows:
        for r in ctx.db.execute(
            "SELECT instance_id, COUNT(*), SUM(status IN ('Running', 'Stopping')) FROM invocation_instances"  # noqa: S608
            f" WHERE instance_id IN ({_marks(rows)}) GROUP BY instance_id",
            [r["instance_id"] for r in rows],
        ):
            counts[r[0]] = (int(r[1]), int(r[2] or 0))
    at = store.now()
    return {
        **paging,
        "InstanceCloudAssistantStatusSet": {"InstanceCloudAssistantStatus": [_ca_item(r, counts, at) for r in rows]},
    }


# ------------------------------------------------------------------------------------- InstallCloudAssistant
@action("InstallCloudAssistant", mutating=True)
def install_cloud_assistant(ctx: Context, p: Params) -> dict[str, Any]:
    ids = instance_ids_param(p, 50)
    found = fetch_instances(ctx.db, ctx.region_id, ids)
    todo = [i for i in ids if not found[i]["agent_installed"]]
    if todo:
        # ref §2.13: takes effect after the next restart; the agent host applies agent_install_pending on a
        # boot_count change. The version is recorded now and only shown once the agent is installed.
        with store.transaction(ctx.db):
            for instance_id in todo:
                ctx.db.execute(
                    "UPDATE instances SET agent_install_pending = 1,"
                    " agent_version = CASE WHEN agent_version = '' THEN ? ELSE agent_version END"
                    " WHERE instance_id = ? AND agent_installed = 0",
                    (AGENT_VERSIONS.get(found[instance_id]["os_type"], AGENT_VERSIONS["linux"]), instance_id),
                )
        ctx.poke()
    return {}

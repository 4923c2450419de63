"""`python -m sandbox serve|env|ctl|agent-host` (names relied on by the collection's tests and scripts)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import shlex
import signal
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox import agentlink, store

if TYPE_CHECKING:
    from aiohttp import web

INFO_FILE = "sandbox.json"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--tag takes KEY=VALUE, got {text!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API endpoint and its instances until SIGINT/SIGTERM")
    serve.add_argument("--state-dir", required=True, type=Path)
    serve.add_argument("--host", help="loopback address to listen on (default: the one DIR's last run used,"
                       " else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on, 0 = any free one (default: the port DIR's last"
                       " run used when it is free, else any free one)")
    serve.add_argument("--instances", type=int, default=3, help="Linux instances to create when DIR is new")
    serve.add_argument("--windows-instances", type=int, default=0)
    serve.add_argument("--regions", default="cn-hangzhou,cn-beijing")
    serve.add_argument("--isolation", choices=("auto", "namespaces", "process"), default="auto")

    env = sub.add_parser("env", help="print export lines for the collection's environment variables")
    env.add_argument("--state-dir", required=True, type=Path)

    agent_host = sub.add_parser("agent-host", help=argparse.SUPPRESS)
    agent_host.add_argument("--state-dir", required=True, type=Path)
    agent_host.add_argument("--isolation", choices=("auto", "namespaces", "process"), required=True)

    ctl = sub.add_parser("ctl", help="act on a running sandbox")
    ctl.add_argument("--state-dir", required=True, type=Path)
    ctl_sub = ctl.add_subparsers(dest="ctl_command", required=True)

    instances = ctl_sub.add_parser("instances")
    inst_sub = instances.add_subparsers(dest="instances_command", required=True)
    add = inst_sub.add_parser("add", help="create instances; prints a JSON list of their IDs")
    add.add_argument("--count", type=int, required=True)
    add.add_argument("--region")
    add.add_argument("--name")
    add.add_argument("--tag", action="append", type=_tag, default=[])
    add.add_argument("--os", choices=("linux", "windows"), default="linux")
    add.add_argument("--no-agent", action="store_true")
    add.add_argument("--stopped", action="store_true")
    lst = inst_sub.add_parser("list", help="print a JSON list of instances")
    lst.add_argument("--region")
    stop = inst_sub.add_parser("stop", help="stop Running instances at once, as StopInstance does")
    stop.add_argument("instance_ids", nargs="+", metavar="INSTANCE_ID")
    release = inst_sub.add_parser("release", help="release (delete) instances; the runs planned or running on them"
                                  " end Aborted + InstanceReleased")
    release.add_argument("instance_ids", nargs="+", metavar="INSTANCE_ID")

    agent = ctl_sub.add_parser("agent", help="stop or start an instance's Cloud Assistant agent")
    agent.add_argument("agent_action", choices=("stop", "start"))
    agent.add_argument("instance_id")

    faults = ctl_sub.add_parser("faults", help="inject faults into API answers (0 clears one)")
    faults.add_argument("--throttle", type=_fraction)
    faults.add_argument("--server-errors", type=_fraction)
    faults.add_argument("--latency-ms", type=float)
    faults.add_argument("--drop", type=_fraction)
    faults.add_argument("--drop-first", type=int, metavar="N",
                        help="drop the replies of the next N processed requests of --actions (deterministic)")
    faults.add_argument("--actions", help="comma-separated actions the faults apply to ('' = all)")
    faults.add_argument("--deny-regions", help="comma-separated regions where every action is denied (Forbidden.RAM,"
                        " whatever --actions says; '' = none)")

    ctl_sub.add_parser("stats", help="API calls per action and process starts per invocation")
    runs = ctl_sub.add_parser("runs", help="when each command run started and ended on the instances with a tag, "
                              "and the most that ran at once")
    runs.add_argument("--tag", required=True, type=_tag, help="KEY=VALUE: an instance tag")

    sts = ctl_sub.add_parser("sts", help="mint an STS access key and security token")
    sts.add_argument("--ttl", type=float, default=3600.0)
    sts.add_argument("--readonly", action="store_true")
    return parser


def _open_existing(state_dir: Path) -> Any:
    if not store.db_path(state_dir).exists():
        raise SystemExit(f"error: {state_dir} holds no sandbox (no {store.DB_NAME}); start one with 'serve' first")
    conn = store.connect(state_dir)
    # a state directory made by an older sandbox lacks the tables added since (CREATE TABLE IF NOT EXISTS)
    store.init_schema(conn)
    return conn


def _ctl(args: argparse.Namespace) -> int:
    from sandbox import auth, fleet

    conn = _open_existing(args.state_dir)
    out: Any
    if args.ctl_command == "instances" and args.instances_command in ("stop", "release"):
        change = fleet.stop_instances if args.instances_command == "stop" else fleet.release_instances
        try:
            done = change(conn, args.instance_ids)
        except fleet.UnknownInstances as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        agentlink.poke(args.state_dir)
        out = {"stopped" if args.instances_command == "stop" else "released": done}
    elif args.ctl_command == "instances":
        region = args.region or store.get_meta(conn, "default_region") or "cn-hangzhou"
        if conn.execute("SELECT 1 FROM regions WHERE region_id = ?", (region,)).fetchone() is None:
            print(f"error: --region {region} is not a region of this sandbox", file=sys.stderr)
            return 2
        if args.instances_command == "add":
            if not 1 <= args.count <= 5000:
                print("error: --count must be between 1 and 5000", file=sys.stderr)
                return 2
            out = fleet.create_instances(
                conn, args.count, region, name=args.name, tags=dict(args.tag), os_type=args.os,
                agent=not args.no_agent, stopped=args.stopped,
            )
            agentlink.poke(args.state_dir)
        else:
            rows = conn.execute(
                "SELECT instance_id, instance_name, os_type, status, agent_installed, agent_running FROM instances "
                "WHERE region_id = ? ORDER BY seq", (region,)).fetchall()
            out = [dict(r) for r in rows]
    elif args.ctl_command == "agent":
        running = 1 if args.agent_action == "start" else 0
        cur = conn.execute("UPDATE instances SET agent_running = ? WHERE instance_id = ? AND agent_installed = 1",
                           (running, args.instance_id))
        if cur.rowcount != 1:
            print(f"error: no instance {args.instance_id} with an installed agent", file=sys.stderr)
            return 2
        agentlink.poke(args.state_dir)
        out = {"instance_id": args.instance_id, "agent": "running" if running else "stopped"}
    elif args.ctl_command == "faults":
        if args.drop_first is not None and args.drop_first < 0:
            print("error: --drop-first must be 0 or more", file=sys.stderr)
            return 2
        settings = {"throttle": args.throttle, "server_errors": args.server_errors,
                    "latency_ms": args.latency_ms, "drop": args.drop, "drop_first": args.drop_first,
                    "actions": args.actions,
                    "deny_regions": args.deny_regions}
        with store.transaction(conn):
            for key, value in settings.items():
                if value is None:
                    continue
                if value in (0, 0.0, ""):
                    conn.execute("DELETE FROM faults WHERE key = ?", (key,))
                else:
                    conn.execute("INSERT INTO faults(key, value) VALUES (?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, str(value)))
        out = {r[0]: r[1] for r in conn.execute("SELECT key, value FROM faults")}
    elif args.ctl_command == "stats":
        out = stats(conn)
    elif args.ctl_command == "runs":
        out = runs_on_tagged(conn, *args.tag)
    else:
        out = auth.mint_sts(conn, args.ttl, readonly=args.readonly)
    print(json.dumps(out, indent=None))
    return 0


def stats(conn: Any) -> dict[str, Any]:
    executions: dict[str, dict[str, int]] = {}
    for row in conn.execute("SELECT invoke_id, instance_id, SUM(starts) FROM executions "
                            "GROUP BY invoke_id, instance_id"):
        executions.setdefault(row[0], {})[row[1]] = int(row[2])
    duplicates = conn.execute("SELECT COUNT(*) FROM executions WHERE starts > 1").fetchone()[0]
    return {
        "api_calls": {r[0]: r[1] for r in conn.execute("SELECT action, count FROM api_calls ORDER BY action")},
        "api_calls_total": conn.execute("SELECT COALESCE(SUM(count), 0) FROM api_calls").fetchone()[0],
        "executions": executions,
        "executions_total": conn.execute("SELECT COALESCE(SUM(starts), 0) FROM executions").fetchone()[0],
        "duplicate_executions": int(duplicates),
        # what the API has created so far (RunCommand's one-time commands included): "nothing was created" checks
        "created": {
            "commands": conn.execute("SELECT COUNT(*) FROM commands").fetchone()[0],
            "invocations": conn.execute("SELECT COUNT(*) FROM invocations").fetchone()[0],
            "file_tasks": conn.execute("SELECT COUNT(*) FROM file_tasks").fetchone()[0],
        },
        # ClientTokens stored per action (a retry that kept its token adds none), and every dropped reply in order
        "client_tokens": {r[0]: r[1] for r in conn.execute(
            "SELECT action, COUNT(*) FROM client_tokens GROUP BY action ORDER BY action")},
        "dropped_replies": [{"action": r[0], "client_token": r[1]} for r in conn.execute(
            "SELECT action, client_token FROM dropped_replies ORDER BY seq")],
    }


def runs_on_tagged(conn: Any, key: str, value: str) -> dict[str, Any]:
    """Every command run that started on an instance with the tag KEY=VALUE: invocation, instance, status, start
    and end (epoch seconds, as the agent host recorded them: claimed, then finished; end None while it runs), in
    start order; and `peak_running`, the most of them that were running at one moment."""
    rows = conn.execute(
        "SELECT ii.invoke_id, ii.instance_id, ii.status, ii.start_time, ii.finish_time"
        " FROM invocation_instances ii JOIN instance_tags t ON t.instance_id = ii.instance_id"
        " WHERE t.tag_key = ? AND t.tag_value = ? AND ii.start_time IS NOT NULL"
        " ORDER BY ii.start_time, ii.instance_id", (key, value)).fetchall()
    found = [{"invoke_id": r[0], "instance_id": r[1], "status": r[2], "start": r[3], "end": r[4]} for r in rows]
    return {"runs": found, "peak_running": peak_running([(r["start"], r["end"]) for r in found])}


def peak_running(intervals: list[tuple[float, float | None]]) -> int:
    """The most intervals (start, end) open at one moment; an end of None is still open. An interval that ends at
    the moment another starts does not overlap it."""
    events = sorted([(start, 1) for start, _ in intervals]
                    + [(end, -1) for _, end in intervals if end is not None])
    peak = current = 0
    for _, step in events:   # at equal times the end (-1) sorts first
        current += step
        peak = max(peak, current)
    return peak


def _env(args: argparse.Namespace) -> int:
    info_path = args.state_dir / INFO_FILE
    if not info_path.exists():
        print(f"error: {info_path} does not exist; is a sandbox serving {args.state_dir}?", file=sys.stderr)
        return 2
    info = json.loads(info_path.read_text())
    for var, key in (("ALIBABA_CLOUD_ACCESS_KEY_ID", "access_key_id"),
                     ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "access_key_secret"),
                     ("ALIBABA_CLOUD_REGION_ID", "region_id"),
                     ("ALIBABA_CLOUD_ECS_ENDPOINT", "endpoint")):
        print(f"export {var}={shlex.quote(str(info[key]))}")
    return 0


def _prepare_state(args: argparse.Namespace) -> tuple[dict[str, str], str]:
    """Create or reopen DIR. Instances are only created when DIR is new."""
    from sandbox import auth, fleet

    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    if not regions:
        raise SystemExit("error: --regions names no region")
    conn = store.connect(args.state_dir)
    try:
        store.init_schema(conn)
        try:
            fleet.seed_regions(conn, regions)
        except ValueError as exc:
            raise SystemExit(f"error: --regions: {exc}") from None
        creds = auth.ensure_credentials(conn)
        if store.get_meta(conn, "initialized") is None:
            if args.instances:
                fleet.create_instances(conn, args.instances, regions[0])
            if args.windows_instances:
                fleet.create_instances(conn, args.windows_instances, regions[0], os_type="windows")
            store.set_meta(conn, "default_region", regions[0])
            store.set_meta(conn, "initialized", "1")
        default_region = store.get_meta(conn, "default_region") or regions[0]
    finally:
        conn.close()
    return creds, default_region


def _previous_address(state_dir: Path) -> tuple[str, int] | None:
    """(host, port) of the endpoint DIR/sandbox.json names (the last `serve` on DIR), if any."""
    try:
        endpoint = json.loads((state_dir / INFO_FILE).read_text())["endpoint"]
        parts = urllib.parse.urlsplit(endpoint)
        if parts.hostname is None or parts.port is None:
            return None
        return parts.hostname, parts.port
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def _listen(runner: web.AppRunner, args: argparse.Namespace) -> web.TCPSite:
    """Start listening. A restarted sandbox takes the port its last run had, so the clients that were talking
    to it reach it again; when that port is taken meanwhile, any free one (an explicit --port is never
    replaced)."""
    from aiohttp import web

    site = web.TCPSite(runner, args.host, args.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await site.stop()  # unregisters the site that never listened
        if not args.reuse_port:
            raise
        logging.getLogger("sandbox.cli").warning("port %s of the last run is not free (%s); taking another one",
                                                 args.port, exc)
        site = web.TCPSite(runner, args.host, 0, reuse_address=True)
        await site.start()
    return site


async def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from sandbox import agent, isolation, server

    args.state_dir = args.state_dir.resolve()
    previous = _previous_address(args.state_dir)
    args.reuse_port = args.port is None and previous is not None and args.host in (None, previous[0])
    if args.host is None:
        args.host = previous[0] if previous else "127.0.0.1"
    if args.port is None:
        args.port = previous[1] if args.reuse_port and previous else 0
    if not _loopback(args.host):
        print(f"error: --host {args.host} is not a loopback address; the sandbox listens on loopback only",
              file=sys.stderr)
        return 2
    args.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        mode = isolation.detect_isolation(args.isolation)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    creds, region = _prepare_state(args)
    store.protect_state_dir(args.state_dir, traversable=mode == "process")
    logging.basicConfig(filename=str(args.state_dir / "server.log"), level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    agent.start_agent_host(args.state_dir, mode)

    app = server.build_app(args.state_dir, mode)
    # The SDKs put every parameter in the URL, CommandContent and SendFile Content included: up to 32 KB of
    # Base64 that percent-encoding can triple, so the request line may be far longer than aiohttp's 8 KB default.
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           max_line_size=256 * 1024, max_field_size=64 * 1024)
    await runner.setup()
    site = await _listen(runner, args)
    server_obj = site._server
    assert server_obj is not None
    port = server_obj.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    host = f"[{args.host}]" if ":" in args.host else args.host
    info = {
        "endpoint": f"http://{host}:{port}",
        "region_id": region,
        "access_key_id": creds["access_key_id"],
        "access_key_secret": creds["access_key_secret"],
        "state_dir": str(args.state_dir),
        "isolation": mode,
        "readonly_access_key_id": creds["readonly_access_key_id"],
        "readonly_access_key_secret": creds["readonly_access_key_secret"],
        "sts_access_key_id": creds["sts_access_key_id"],
        "sts_access_key_secret": creds["sts_access_key_secret"],
        "sts_security_token": creds["sts_security_token"],
    }
    info_path = args.state_dir / INFO_FILE
    fd = os.open(info_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh, indent=2)
    print(json.dumps(info), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    agent.stop_agent_host(args.state_dir)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return asyncio.run(_serve(args))
    if args.command == "agent-host":
        from sandbox import agent

        return agent.run_agent_host(args.state_dir.resolve(), args.isolation)
    try:
        rc = _env(args) if args.command == "env" else _ctl(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`ctl ... | head`): end quietly with the status of a tool killed by SIGPIPE.
        # stdout now points at /dev/null so that the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    return rc

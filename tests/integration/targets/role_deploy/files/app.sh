#!/bin/sh
# A stand-in service for the deploy role's test (the sandbox instances have no systemd): "restart" records the
# release that was started in $DEPLOY_ROOT/running, "health" checks that the active release is the one running.
# (runme.sh makes the broken v2 from this file: its "health" always fails.)
case $1 in
    restart) basename "$(dirname "$(readlink -f "$0")")" >"$DEPLOY_ROOT/running" ;;
    health)
        [ "$(cat "$DEPLOY_ROOT/running")" = "$(basename "$(readlink -f "$DEPLOY_ROOT/current")")" ] ;;
    *) echo "usage: app.sh restart|health"; exit 2 ;;
esac

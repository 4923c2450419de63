#!/bin/sh
# A stand-in service for the deploy role's test (the sandbox instances have no systemd): "restart" records the
# release that was started in $DEPLOY_ROOT/running, "health" checks that the active release is the one running
# and that it is not marked broken.
case $1 in
    restart) basename "$(dirname "$(readlink -f "$0")")" >"$DEPLOY_ROOT/running" ;;
    health)
        [ ! -e "$(dirname "$0")/BROKEN" ] || { echo "health: this release is broken"; exit 1; }
        [ "$(cat "$DEPLOY_ROOT/running")" = "$(basename "$(readlink -f "$DEPLOY_ROOT/current")")" ] ;;
    *) echo "usage: app.sh restart|health"; exit 2 ;;
esac

# shellcheck shell=sh
# Activates a release sent by the alicloud_ops.cloud_assistant.deploy role, restarts the service, checks its
# health and rolls back to the previous release when the check fails. Sent after lines that set:
#   DEPLOY_ROOT       the application's directory: releases/<version>/ and the link current -> releases/<version>
#   DEPLOY_VERSION    this release's name
#   DEPLOY_ARTIFACT   the file sent to the instance (removed once used)
#   DEPLOY_UNPACK     1: the artifact is a tar archive unpacked into the release; 0: copied into it as it is
#   DEPLOY_NAME, DEPLOY_MODE   the artifact's file name and mode in the release (DEPLOY_UNPACK=0)
#   DEPLOY_SERVICE    the service to restart (may be empty)
#   DEPLOY_RESTART    a shell command that restarts the service (auto: systemctl, else service, for DEPLOY_SERVICE)
#   DEPLOY_HEALTH     a shell command that exits 0 when the service is healthy (empty: none)
#   DEPLOY_HEALTH_RETRIES, DEPLOY_HEALTH_DELAY   tries of DEPLOY_HEALTH and seconds between them
#   DEPLOY_KEEP       releases kept (the current and the previous ones always are)
# The commands run with DEPLOY_ROOT, DEPLOY_VERSION and DEPLOY_RELEASE (the active release's directory) exported.
# The last line of the output is one JSON object: status (deployed, unchanged, rolled_back, rollback_failed,
# failed), version, previous, message, health (the last lines of the health check's output).
# Exit codes: 0 deployed or unchanged, 2 rolled back, 3 the rollback failed too, 1 failed with nothing to roll back to.
export LC_ALL=C DEPLOY_ROOT DEPLOY_VERSION
log=$(mktemp) || exit 1
trap 'rm -f "$log"' EXIT

json_str() {
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\010\013-\037' | tr '\t\n' '  ' |
        sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | cut -c1-600)"
}
report() {  # report STATUS MESSAGE EXIT_CODE
    printf '{"status": %s, "version": %s, "previous": %s, "message": %s, "health": %s}\n' "$(json_str "$1")" \
        "$(json_str "$DEPLOY_VERSION")" "$(json_str "$previous")" "$(json_str "$2")" "$(json_str "$(tail -n 5 "$log")")"
    exit "$3"
}

previous=''
mkdir -p "$DEPLOY_ROOT/releases" || report failed "cannot create $DEPLOY_ROOT/releases" 1
# one deployment at a time on an instance (a second run waits up to 10 minutes)
if command -v flock >/dev/null 2>&1; then
    exec 8>"$DEPLOY_ROOT/.deploy.lock"
    flock -w 600 8 || report failed "another deployment holds $DEPLOY_ROOT/.deploy.lock" 1
fi
previous=$(readlink "$DEPLOY_ROOT/current" 2>/dev/null | sed -n 's|^releases/||p')
release="$DEPLOY_ROOT/releases/$DEPLOY_VERSION"
[ -f "$DEPLOY_ARTIFACT" ] || report failed "the artifact $DEPLOY_ARTIFACT is missing" 1
sum=$(sha256sum "$DEPLOY_ARTIFACT" | cut -d' ' -f1)

if [ "$previous" = "$DEPLOY_VERSION" ] && [ "$(cat "$release/.deploy-sha256" 2>/dev/null)" = "$sum" ]; then
    rm -f "$DEPLOY_ARTIFACT"
    report unchanged "release $DEPLOY_VERSION is already active" 0
fi

# stage the release beside its final place, then move it in
staging="$release.staging.$$"
rm -rf "$staging"
mkdir -p "$staging" || report failed "cannot create $staging" 1
if [ "$DEPLOY_UNPACK" = 1 ]; then
    tar -xf "$DEPLOY_ARTIFACT" -C "$staging" >"$log" 2>&1 || { rm -rf "$staging"; report failed "cannot unpack the artifact" 1; }
else
    { cp "$DEPLOY_ARTIFACT" "$staging/$DEPLOY_NAME" && chmod "$DEPLOY_MODE" "$staging/$DEPLOY_NAME"; } ||
        { rm -rf "$staging"; report failed "cannot copy the artifact" 1; }
fi
printf '%s\n' "$sum" >"$staging/.deploy-sha256"
rm -f "$DEPLOY_ARTIFACT"
if [ "$previous" = "$DEPLOY_VERSION" ]; then
    # the active release is replaced: keep the old content to roll back to
    rm -rf "$release.rollback"
    mv "$release" "$release.rollback"
    previous_dir="$release.rollback"
else
    rm -rf "$release"
    previous_dir=${previous:+$DEPLOY_ROOT/releases/$previous}
fi
mv "$staging" "$release" || report failed "cannot move the release into $release" 1

activate() {  # activate DIR (relative to DEPLOY_ROOT): switch the link atomically
    ln -sfn "$1" "$DEPLOY_ROOT/current.new" && mv -Tf "$DEPLOY_ROOT/current.new" "$DEPLOY_ROOT/current"
}
restart() {
    DEPLOY_RELEASE=$(cd "$DEPLOY_ROOT/current" && pwd -P)
    export DEPLOY_RELEASE
    if [ "$DEPLOY_RESTART" = auto ]; then
        [ -n "$DEPLOY_SERVICE" ] || return 0
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl restart "$DEPLOY_SERVICE" >>"$log" 2>&1
        elif command -v service >/dev/null 2>&1; then
            service "$DEPLOY_SERVICE" restart >>"$log" 2>&1
        else
            echo "neither systemd nor service(8) to restart $DEPLOY_SERVICE" >>"$log"
            return 1
        fi
    else
        sh -c "$DEPLOY_RESTART" >>"$log" 2>&1
    fi
}
healthy() {
    [ -n "$DEPLOY_HEALTH" ] || return 0
    tries=0
    while :; do
        tries=$((tries + 1))
        if sh -c "$DEPLOY_HEALTH" >>"$log" 2>&1; then return 0; fi
        [ "$tries" -lt "$DEPLOY_HEALTH_RETRIES" ] || return 1
        sleep "$DEPLOY_HEALTH_DELAY"
    done
}

activate "releases/$DEPLOY_VERSION" || report failed "cannot switch $DEPLOY_ROOT/current" 1
if restart && healthy; then
    rm -rf "$release.rollback"
    # prune: keep the newest DEPLOY_KEEP releases, and always the current and the previous ones
    # shellcheck disable=SC2012
    ls -1t "$DEPLOY_ROOT/releases" | tail -n +"$((DEPLOY_KEEP + 1))" | while IFS= read -r old; do
        case $old in "$DEPLOY_VERSION" | "$previous" | *.staging.* | *.rollback) continue ;; esac
        rm -rf "${DEPLOY_ROOT:?}/releases/$old"
    done
    report deployed "release $DEPLOY_VERSION is active${previous:+ (was $previous)}" 0
fi
failure="release $DEPLOY_VERSION failed its restart or health check"
if [ -z "$previous_dir" ] || [ ! -d "$previous_dir" ]; then
    report failed "$failure; no previous release to roll back to" 1
fi
if [ "$previous_dir" = "$release.rollback" ]; then
    rm -rf "$release"
    mv "$release.rollback" "$release"
fi
echo "--- rollback to ${previous}" >>"$log"
activate "releases/$previous" || report rollback_failed "$failure; switching back to $previous failed" 3
if restart && healthy; then
    [ "$previous" = "$DEPLOY_VERSION" ] || rm -rf "$release"
    report rolled_back "$failure; rolled back to $previous, which is healthy" 2
fi
report rollback_failed "$failure; rolled back to $previous, which failed its restart or health check too" 3

# shellcheck shell=sh
# Package updates: check (from the package manager's cache, offline) or apply (refresh the metadata, then
# upgrade). Sent by the alicloud_ops.cloud_assistant.patch role after lines that set the PATCH_* variables:
#   PATCH_ACTION      check | apply
#   PATCH_MANAGER     auto | apt | dnf | yum
#   PATCH_PACKAGES    space-separated package names to limit the run to (empty: every installed package)
#   PATCH_REFRESH     1: refresh the metadata before a check too (a failure is reported, the cache is used)
#   PATCH_OPTIONS     extra options for apt-get / dnf / yum (for example -o Acquire::http::Proxy=http://proxy:3128)
#   PATCH_REFRESH_TIMEOUT  seconds a metadata refresh may take
#   PATCH_LIST_MAX    at most this many entries in "updates" (the output Cloud Assistant keeps is 24 KB)
# The output is one JSON object: manager, action, status, count (every update), updates [{name, current,
# available}] (the first PATCH_LIST_MAX), reboot_required, message. Exit codes: 0 up_to_date / updates_available / applied, 3 the mirror
# was unreachable (nothing installed), 4 no supported package manager, 1 any other failure.
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
# PATCH_PACKAGES and PATCH_OPTIONS are split into words unquoted: no file name expansion (a package pattern a*)
set -f
# another apt-get or dpkg at work (a second run, unattended-upgrades): wait up to 5 minutes for its lock
apt_wait="-o DPkg::Lock::Timeout=300"
out=$(mktemp) || exit 1
updates=$(mktemp) || exit 1
trap 'rm -f "$out" "$updates"' EXIT

json_str() {  # a JSON string of $1 (quotes, backslashes, control characters)
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\010\013-\037' | tr '\t\n' '  ' |
        sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | cut -c1-400)"
}

report() {  # report STATUS MESSAGE EXIT_CODE
    count=$(grep -c . "$updates")
    reboot=false
    if [ -f /var/run/reboot-required ]; then
        reboot=true
    elif [ "$manager" != apt ] && command -v needs-restarting >/dev/null 2>&1; then
        needs-restarting -r >/dev/null 2>&1 || [ $? -ne 1 ] || reboot=true
    fi
    printf '{"manager": %s, "action": %s, "status": %s, "count": %s, "reboot_required": %s, "message": %s, "updates": [' \
        "$(json_str "$manager")" "$(json_str "$PATCH_ACTION")" "$(json_str "$1")" "$count" "$reboot" "$(json_str "$2")"
    sep=''
    while read -r name current available; do
        [ -n "$name" ] || continue
        [ "$current" = - ] && current=''
        printf '%s{"name": %s, "current": %s, "available": %s}' "$sep" "$(json_str "$name")" "$(json_str "$current")" \
            "$(json_str "$available")"
        sep=', '
    done <<EOT
$(head -n "$PATCH_LIST_MAX" "$updates")
EOT
    printf ']}\n'
    exit "$3"
}

manager=$PATCH_MANAGER
if [ "$manager" = auto ]; then
    manager=none
    for m in apt-get dnf yum; do
        if command -v "$m" >/dev/null 2>&1; then manager=$m; break; fi
    done
    [ "$manager" = apt-get ] && manager=apt
fi
case $manager in
    apt) command -v apt-get >/dev/null 2>&1 || report error "apt-get not found" 4 ;;
    dnf | yum) command -v "$manager" >/dev/null 2>&1 || report error "$manager not found" 4 ;;
    *) manager=none; report unsupported "no supported package manager (apt-get, dnf, yum)" 4 ;;
esac

# refresh: 0 when the metadata was refreshed; the failure lines are kept in $refresh_error
refresh() {
    refresh_error=''
    if [ "$manager" = apt ]; then
        # shellcheck disable=SC2086
        timeout "$PATCH_REFRESH_TIMEOUT" apt-get -q $apt_wait $PATCH_OPTIONS -o Acquire::Retries=0 update >"$out" 2>&1
        rc=$?
        # (Err: lines alone can be retries that succeeded: W: Failed to fetch and E: are what failed)
        refresh_error=$(grep -E '^(E:|W: Failed to fetch|W: Some index files failed)' "$out" | head -n 3)
    else
        # shellcheck disable=SC2086
        timeout "$PATCH_REFRESH_TIMEOUT" "$manager" -q -y $PATCH_OPTIONS makecache >"$out" 2>&1
        rc=$?
        [ $rc -eq 0 ] || refresh_error=$(grep -iE 'error|fail|cannot|curl' "$out" | head -n 3)
    fi
    [ $rc -eq 124 ] && refresh_error="metadata refresh timed out after ${PATCH_REFRESH_TIMEOUT}s"
    [ $rc -ne 0 ] && [ -z "$refresh_error" ] && refresh_error=$(tail -n 3 "$out")
    [ -z "$refresh_error" ]
}

# list_updates: "name current available" lines in $updates, from the cache only
list_updates() {
    if [ "$manager" = apt ]; then
        if [ -n "$PATCH_PACKAGES" ]; then
            # shellcheck disable=SC2086
            apt-get -s -q $PATCH_OPTIONS -o Debug::NoLocking=1 install --only-upgrade $PATCH_PACKAGES >"$out" 2>&1
        else
            # shellcheck disable=SC2086
            apt-get -s -q $PATCH_OPTIONS -o Debug::NoLocking=1 upgrade >"$out" 2>&1
        fi
        rc=$?
        sed -n -e 's/^Inst \([^ ]*\) \[\([^]]*\)\] (\([^ ]*\) .*/\1 \2 \3/p' -e 's/^Inst \([^ []*\) (\([^ ]*\) .*/\1 - \2/p' \
            "$out" >"$updates"
        return $rc
    fi
    # dnf/yum check-update: 100 = updates listed, 0 = none, 1 = error; -C: the cache only
    # shellcheck disable=SC2086
    "$manager" -q -C $PATCH_OPTIONS check-update $PATCH_PACKAGES >"$out" 2>&1
    rc=$?
    [ $rc -eq 0 ] || [ $rc -eq 100 ] || return $rc
    awk 'NF == 3 && $1 ~ /\./ && $2 ~ /[0-9]/ {sub(/\.[^.]*$/, "", $1); print $1, "-", $2}' "$out" >"$updates"
    return 0
}

case $PATCH_ACTION in
    check)
        note=''
        if [ "$PATCH_REFRESH" = 1 ] && ! refresh; then
            note="metadata not refreshed, the cache was used: $refresh_error"
        fi
        list_updates || report error "listing the updates failed: $(grep -E '^E:|rror' "$out" | head -n 3)" 1
        if [ -s "$updates" ]; then
            report updates_available "$(grep -c . "$updates") update(s) available${note:+; $note}" 0
        fi
        report up_to_date "no update available${note:+; $note}" 0
        ;;
    apply)
        refresh || report mirror_unreachable "the package mirror could not be reached, nothing was installed: $refresh_error" 3
        list_updates || report error "listing the updates failed: $(grep -E '^E:|rror' "$out" | head -n 3)" 1
        [ -s "$updates" ] || report up_to_date "no update available" 0
        if [ "$manager" = apt ]; then
            if [ -n "$PATCH_PACKAGES" ]; then
                # shellcheck disable=SC2086
                apt-get -y -q $apt_wait $PATCH_OPTIONS -o Dpkg::Options::=--force-confold install --only-upgrade $PATCH_PACKAGES >"$out" 2>&1
            else
                # shellcheck disable=SC2086
                apt-get -y -q $apt_wait $PATCH_OPTIONS -o Dpkg::Options::=--force-confold upgrade >"$out" 2>&1
            fi
        else
            # shellcheck disable=SC2086
            "$manager" -y -q $PATCH_OPTIONS upgrade $PATCH_PACKAGES >"$out" 2>&1
        fi
        rc=$?
        if grep -qE '^(E: Failed to fetch|E: Unable to fetch)|Cannot download|Curl error' "$out"; then
            report mirror_unreachable "the packages could not be downloaded, nothing was installed: $(grep -E '^E:|Cannot download|Curl error' "$out" | head -n 2)" 3
        fi
        [ $rc -eq 0 ] || report error "the upgrade failed (exit $rc): $(grep -E '^E:|rror' "$out" | head -n 3)" 1
        report applied "$(grep -c . "$updates") package(s) upgraded" 0
        ;;
    *) report error "PATCH_ACTION must be check or apply" 1 ;;
esac

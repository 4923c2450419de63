# shellcheck shell=sh
# Packs the tails of the files matching COLLECT_PATHS (one glob a line) into a gzip'd tar, Base64 on one line.
# Sent by the alicloud_ops.cloud_assistant.collect_logs role after lines that set:
#   COLLECT_PATHS   glob patterns, one a line (absolute paths)
#   COLLECT_LINES   the last lines of each file to take (0: the whole file)
#   COLLECT_LIMIT   at most this many Base64 characters (Cloud Assistant keeps the last 24 KB of output)
# While the archive is too large, the number of lines per file is halved (down to 10).
# Output: line 1 a JSON header (files, missing, lines, truncated, bytes, fits), line 2 the Base64 archive.
export LC_ALL=C
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
: >"$work/files"
: >"$work/missing"
old_ifs=$IFS
IFS='
'
for pattern in $COLLECT_PATHS; do
    matched=0
    # unquoted on purpose: the pattern is expanded as a glob
    for f in $pattern; do
        if [ -f "$f" ] && [ -r "$f" ]; then
            printf '%s\n' "$f" >>"$work/files"
            matched=1
        fi
    done
    [ "$matched" = 1 ] || printf '%s\n' "$pattern" >>"$work/missing"
done
IFS=$old_ifs
sort -u -o "$work/files" "$work/files"

pack() {  # pack LINES: the archive of the files' last LINES lines (0: whole) in $work/out.b64
    rm -rf "$work/tree"
    mkdir "$work/tree" || exit 1
    while IFS= read -r f; do
        mkdir -p "$work/tree$(dirname "$f")" || continue
        if [ "$1" -gt 0 ]; then tail -n "$1" "$f" >"$work/tree$f"; else cat "$f" >"$work/tree$f"; fi
    done <"$work/files"
    tar -czf - -C "$work/tree" . | base64 | tr -d '\n' >"$work/out.b64"
}

json_list() {  # the lines of file $1 as a JSON list of strings (at most 20)
    printf '['
    head -n 20 "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/"/' | paste -sd, - | tr -d '\n'
    printf ']'
}

lines=$COLLECT_LINES
truncated=false
pack "$lines"
tries=0
while [ "$(wc -c <"$work/out.b64")" -gt "$COLLECT_LIMIT" ] && [ "$tries" -lt 20 ]; do
    if [ "$lines" -eq 0 ]; then
        lines=$(while IFS= read -r f; do wc -l <"$f"; done <"$work/files" | sort -n | tail -n 1)
    fi
    [ "$lines" -le 10 ] && break
    lines=$((lines / 2))
    truncated=true
    pack "$lines"
    tries=$((tries + 1))
done
size=$(wc -c <"$work/out.b64")
fits=true
[ "$size" -le "$COLLECT_LIMIT" ] || fits=false
printf '{"files": %s, "missing": %s, "lines": %s, "truncated": %s, "bytes": %s, "fits": %s}\n' \
    "$(grep -c . "$work/files")" "$(json_list "$work/missing")" "$lines" "$truncated" "$size" "$fits"
if [ "$fits" = true ]; then cat "$work/out.b64"; fi
echo

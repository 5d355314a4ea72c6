#!/bin/sh
# One-shot: register our custom search attributes in the namespace. Safe to re-run: an attribute
# that already exists with the same type counts as success (recent servers accept the request,
# older ones answer "already exists"); one that exists with another type is an error.
#
# Environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, SEARCH_ATTRIBUTES (space-separated
# NAME=Type pairs; must match safeguarding/temporal_connection.py SEARCH_ATTRIBUTES).
# Search attributes are stored unencrypted: names and values never carry personal data.
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}" "${SEARCH_ATTRIBUTES:?}"

t() {
    temporal "$@" --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE"
}

# Exit 0 when NAME is registered with TYPE. The table prints "Keyword"; JSON would print
# "INDEXED_VALUE_TYPE_KEYWORD": compare case-insensitively without the prefix and underscores.
registered() {
    t operator search-attribute list 2>/dev/null | awk -v name="$1" -v want="$2" '
        function norm(s) { s = tolower(s); sub(/^indexed_value_type_/, "", s); gsub(/_/, "", s); return s }
        $1 == name && norm($2) == norm(want) { found = 1 }
        END { exit found ? 0 : 1 }'
}

for pair in $SEARCH_ATTRIBUTES; do
    name="${pair%%=*}"
    type="${pair#*=}"
    if [ -z "$name" ] || [ "$name" = "$pair" ] || [ -z "$type" ]; then
        echo "bad SEARCH_ATTRIBUTES entry '${pair}' (want NAME=Type)" >&2
        exit 1
    fi
    attempt=0
    until out=$(t operator search-attribute create --name "$name" --type "$type" 2>&1); do
        case "$out" in
            *"already exists"*)
                if registered "$name" "$type"; then
                    break
                fi
                echo "search attribute ${name} exists with a type other than ${type}: ${out}" >&2
                exit 1
                ;;
        esac
        attempt=$((attempt + 1))
        if [ "$attempt" -ge 10 ]; then
            echo "could not register search attribute ${name}: ${out}" >&2
            exit 1
        fi
        echo "retrying ${name} in 3 s: ${out}"
        sleep 3
    done
done

# The server may accept a same-name request silently, so check every attribute's type.
# The namespace cache can lag a few seconds behind a registration: retry before failing.
for pair in $SEARCH_ATTRIBUTES; do
    name="${pair%%=*}"
    type="${pair#*=}"
    attempt=0
    until registered "$name" "$type"; do
        attempt=$((attempt + 1))
        if [ "$attempt" -ge 20 ]; then
            echo "search attribute ${name} is not registered as ${type}:" >&2
            t operator search-attribute list >&2 || true
            exit 1
        fi
        sleep 2
    done
    echo "search attribute ${name} (${type}) is registered"
done

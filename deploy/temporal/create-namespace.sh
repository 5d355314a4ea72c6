#!/bin/sh
# One-shot: wait until the Temporal frontend serves, then make sure our namespace exists with the
# configured retention (create it, or update the retention of an existing one). Safe to re-run.
#
# Environment: TEMPORAL_ADDRESS (host:port), TEMPORAL_NAMESPACE, TEMPORAL_NAMESPACE_RETENTION
# (how long Temporal keeps a *closed* workflow's history, e.g. 720h; the case record itself lives
# in the application database).
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}" "${TEMPORAL_NAMESPACE_RETENTION:?}"

echo "waiting for Temporal at ${TEMPORAL_ADDRESS}"
i=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -ge 60 ]; then
        echo "Temporal at ${TEMPORAL_ADDRESS} did not become healthy" >&2
        temporal operator cluster health --address "$TEMPORAL_ADDRESS" || true
        exit 1
    fi
    sleep 3
done

# Retries: right after a namespace is created, other frontend paths can still answer "not found"
# for a few seconds (namespace cache refresh, seen on a 1.32 dev server); the next job,
# search-attributes.sh, retries for the same reason.
attempt=0
if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" \
        --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
    echo "namespace ${TEMPORAL_NAMESPACE} exists; setting retention ${TEMPORAL_NAMESPACE_RETENTION}"
    until temporal operator namespace update --address "$TEMPORAL_ADDRESS" \
            --namespace "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_NAMESPACE_RETENTION"; do
        attempt=$((attempt + 1))
        if [ "$attempt" -ge 10 ]; then
            echo "could not update namespace ${TEMPORAL_NAMESPACE}" >&2
            exit 1
        fi
        sleep 3
    done
else
    echo "creating namespace ${TEMPORAL_NAMESPACE} (retention ${TEMPORAL_NAMESPACE_RETENTION})"
    # A create that failed on the way back may still have happened: describe decides.
    until temporal operator namespace create --address "$TEMPORAL_ADDRESS" \
            --namespace "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_NAMESPACE_RETENTION" \
          || temporal operator namespace describe --address "$TEMPORAL_ADDRESS" \
            --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; do
        attempt=$((attempt + 1))
        if [ "$attempt" -ge 10 ]; then
            echo "could not create namespace ${TEMPORAL_NAMESPACE}" >&2
            exit 1
        fi
        sleep 3
    done
fi
echo "namespace ${TEMPORAL_NAMESPACE} is ready"

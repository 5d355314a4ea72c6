#!/bin/sh
# One-shot: create Temporal's two databases and bring their schemas up to the version that
# matches this admin-tools image. Runs on every `docker compose up`; every step is idempotent
# (an existing database is left alone, setup-schema keeps a higher version, update-schema applies
# only the missing versioned steps). Upgrading Temporal = bump server and admin-tools together.
#
# Environment (set in docker-compose.yml): SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD (read by
# temporal-sql-tool itself, so the password never appears on a command line),
# TEMPORAL_DB, TEMPORAL_VISIBILITY_DB.
set -eu

: "${SQL_HOST:?}" "${SQL_PORT:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
: "${TEMPORAL_DB:?}" "${TEMPORAL_VISIBILITY_DB:?}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" "$@"
}

echo "waiting for PostgreSQL at ${SQL_HOST}:${SQL_PORT}"
i=0
until nc -z -w 5 "$SQL_HOST" "$SQL_PORT"; do
    i=$((i + 1))
    if [ "$i" -ge 30 ]; then
        echo "PostgreSQL did not answer at ${SQL_HOST}:${SQL_PORT}" >&2
        exit 1
    fi
    sleep 2
done

setup() {
    db="$1"
    versioned="$2"
    echo "Temporal schema: database ${db}"
    sql_tool --db "$db" create
    sql_tool --db "$db" setup-schema -v 0.0
    sql_tool --db "$db" update-schema -d "${SCHEMA_ROOT}/${versioned}/versioned"
}

setup "$TEMPORAL_DB" temporal
setup "$TEMPORAL_VISIBILITY_DB" visibility
echo "Temporal schema is up to date"

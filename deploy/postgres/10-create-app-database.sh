#!/bin/sh
# Creates the application's own role and database next to Temporal's.
#
# Run by the postgres image's entrypoint from /docker-entrypoint-initdb.d, as the
# `postgres` OS user, ONCE: only when the data volume is empty (first start). On an
# existing volume it is skipped; see docs/production.md ("An existing PostgreSQL volume").
#
# Temporal's databases (`temporal`, `temporal_visibility`) are created later by the
# temporal-admin-tools job, as the superuser POSTGRES_USER. The application never uses
# that superuser: it connects as APP_DB_USER, which owns only APP_DB_NAME.
# docker-compose.yml sets all three APP_DB_* variables; DATABASE_URL must match them.
set -eu

: "${APP_DB_USER:?APP_DB_USER must be set}"
: "${APP_DB_NAME:?APP_DB_NAME must be set}"
: "${APP_DB_PASSWORD:?APP_DB_PASSWORD must be set (see deploy/.env.example)}"

# psql variables (:"ident", :'literal') quote the names and the password safely.
psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-postgres}" \
    --set app_user="$APP_DB_USER" \
    --set app_db="$APP_DB_NAME" \
    --set app_password="$APP_DB_PASSWORD" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
GRANT ALL ON DATABASE :"app_db" TO :"app_user";
SQL

echo "created role ${APP_DB_USER} and database ${APP_DB_NAME}"

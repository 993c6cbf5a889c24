#!/usr/bin/env bash
# Generate the secrets docker-compose.yml mounts (compose `secrets:`), once:
#   token_key       HMAC key every front door and worker signs/checks tokens with
#   admin_password  the admin user's password (print it with: cat secrets/admin_password)
#   tls_cert.pem, tls_key.pem  a self-signed certificate for the public host name
# Usage: compose/make-secrets.sh [DIR] (default: compose/secrets). Existing files are
# kept: delete one to make it again. Needs openssl. DUCKFLEET_PUBLIC_HOST (from the
# environment, else from compose/.env, else localhost) goes into the certificate.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/secrets}"
host="${DUCKFLEET_PUBLIC_HOST:-}"
if [ -z "$host" ] && [ -f "$here/.env" ]; then
    host="$(sed -n 's/^DUCKFLEET_PUBLIC_HOST=//p' "$here/.env" | tail -n 1)"
fi
host="${host:-localhost}"
mkdir -p "$out"
# The folder is private to you; the files themselves stay readable, because compose
# bind-mounts them into containers that run as another user (uid 10001).
chmod 700 "$out"
umask 022
if [ ! -s "$out/token_key" ]; then
    openssl rand -hex 32 >"$out/token_key"
fi
if [ ! -s "$out/admin_password" ]; then
    openssl rand -base64 24 | tr -d '/+=\n' >"$out/admin_password"
fi
if [ ! -s "$out/tls_cert.pem" ] || [ ! -s "$out/tls_key.pem" ]; then
    names="DNS:localhost,DNS:frontdoor,IP:127.0.0.1"
    [ "$host" = localhost ] || names="DNS:$host,$names"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 825 -subj "/CN=$host" -addext "subjectAltName=$names" \
        -keyout "$out/tls_key.pem" -out "$out/tls_cert.pem" 2>/dev/null
    chmod 644 "$out/tls_key.pem"  # see above: the folder, not the file, keeps it private
fi
echo "secrets in $out: token_key admin_password tls_cert.pem tls_key.pem"

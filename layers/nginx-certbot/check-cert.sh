#!/bin/bash
# ingot (layer nginx-certbot): is the instance's certificate the real thing?
#   check-cert              file checks + nginx serves exactly that certificate
#   check-cert --file-only  file checks only (used by issue-cert)
# File checks: it exists, names the FQDN, is valid for at least one more day,
# and was issued by Let's Encrypt (the staging CA when certbot_staging=true).
# Exit 0 when good (or certbot=false), 1 with the reason on stdout otherwise.
set -u
# shellcheck source=/dev/null
. /etc/ingot/nginx-certbot.env
STATE_DIR=/var/lib/ingot/nginx-certbot

if [ "$CERTBOT" != true ]; then
    echo "certbot=false: no certificate expected"
    exit 0
fi
crt="/etc/letsencrypt/live/$FQDN/fullchain.pem"
if [ ! -s "$crt" ]; then
    echo "no certificate at $crt (issuance status: $(cat "$STATE_DIR/status" 2>/dev/null || echo 'not run'))"
    exit 1
fi
issuer=$(openssl x509 -in "$crt" -noout -issuer)
if [ "$STAGING" = true ]; then
    case "$issuer" in
        *"(STAGING)"*) ;;
        *) echo "expected a staging certificate, got $issuer"; exit 1 ;;
    esac
else
    case "$issuer" in
        *STAGING*) echo "staging certificate while certbot_staging=false: $issuer"; exit 1 ;;
        *"Let's Encrypt"*) ;;
        *) echo "not issued by Let's Encrypt: $issuer"; exit 1 ;;
    esac
fi
if ! openssl x509 -in "$crt" -noout -checkend 86400 >/dev/null; then
    echo "certificate $crt expires within a day"
    exit 1
fi
if ! openssl x509 -in "$crt" -noout -checkhost "$FQDN" | grep -q ' does match'; then
    echo "certificate $crt does not name $FQDN"
    exit 1
fi
if [ "${1:-}" = --file-only ]; then
    echo "certificate for $FQDN ok ($issuer)"
    exit 0
fi

want=$(openssl x509 -in "$crt" -noout -fingerprint -sha256)
served=$(timeout 10 openssl s_client -connect 127.0.0.1:443 -servername "$FQDN" </dev/null 2>/dev/null \
    | openssl x509 -noout -fingerprint -sha256 2>/dev/null)
if [ "$served" != "$want" ]; then
    echo "nginx does not serve $crt for $FQDN on 127.0.0.1:443 (served: ${served:-nothing})"
    exit 1
fi
echo "certificate for $FQDN ok and served ($issuer)"

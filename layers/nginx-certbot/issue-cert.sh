#!/bin/bash
# ingot (layer nginx-certbot): obtain the instance's certificate at first
# boot. Never run during the bake: a certificate names one FQDN, its private
# key must not be shared by clones, and re-issuing on every rebuild burns
# Let's Encrypt's rate limits.
#
# 1. wait (bounded) until the FQDN resolves to one of this instance's public
#    addresses - asking earlier only produces failed validations, and Let's
#    Encrypt allows 5 of them per name and hour;
# 2. certbot certonly with the nginx authenticator (HTTP-01 on port 80);
# 3. check the issuer; enable the HTTPS site (unless the jitsi layer serves
#    the certificate through its own site).
#
# A failure is logged clearly and recorded in $STATE_DIR/status; the script
# still exits 0 so that the rest of the first boot runs, and the boot check
# `certificate` (check-cert) fails, so the instance is reported not ready.
# Re-run it by hand once the cause is fixed.
set -u
ENV_FILE=/etc/ingot/nginx-certbot.env
STATE_DIR=/var/lib/ingot/nginx-certbot
LIB=/usr/local/libexec/ingot-layers
# shellcheck source=/dev/null
. "$ENV_FILE"
mkdir -p "$STATE_DIR"

log() {
    echo "nginx-certbot: $*"
    logger -t ingot-nginx-certbot -- "$*" 2>/dev/null || true
}
fail() {
    echo "$1" > "$STATE_DIR/status"
    log "ERROR: $2"
    log "no HTTPS for $FQDN; the boot check 'certificate' fails. Fix the cause, then run $0 again."
    exit 0
}

if [ "$CERTBOT" != true ]; then
    echo disabled > "$STATE_DIR/status"
    log "certbot=false: the site stays on plain HTTP, no certificate requested"
    exit 0
fi

if "$LIB/nginx-certbot/check-cert" --file-only >/dev/null 2>&1; then
    log "a valid certificate for $FQDN already exists; none requested"
else
    echo waiting-dns > "$STATE_DIR/status"
    deadline=$(( $(date +%s) + DNS_WAIT_SECONDS ))
    match=""
    while :; do
        mapfile -t mine < <("$LIB/public-ip" "$PUBLIC_IP" 2>/dev/null)
        # Ask DNS, not /etc/hosts (manage_etc_hosts maps the FQDN to
        # 127.0.1.1); forget cached negative answers between attempts.
        resolvectl flush-caches >/dev/null 2>&1 || true
        mapfile -t seen < <(dig +short +time=3 +tries=1 A "$FQDN" 2>/dev/null \
            | grep -E '^[0-9]+(\.[0-9]+){3}$')
        for a in "${seen[@]}"; do
            for b in "${mine[@]}"; do
                if [ "$a" = "$b" ]; then match="$a"; fi
            done
        done
        if [ -n "$match" ]; then
            break
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            fail dns-timeout "after ${DNS_WAIT_SECONDS}s $FQDN resolves to [${seen[*]:-nothing}], not to this instance [${mine[*]:-address unknown}]; no certificate requested (it would fail validation). Point the A record at this instance (or set public_ip)."
        fi
        log "waiting for $FQDN to resolve to this instance [${mine[*]:-address unknown}]; DNS answers [${seen[*]:-nothing}]"
        sleep 10
    done
    log "$FQDN resolves to $match (this instance); requesting a certificate"

    echo requesting > "$STATE_DIR/status"
    args=(certonly --nginx --non-interactive --agree-tos --no-eff-email
          --email "$EMAIL" -d "$FQDN" --keep-until-expiring)
    if [ "$STAGING" = true ]; then
        args+=(--test-cert)
        log "using Let's Encrypt's staging CA (certbot_staging=true)"
    fi
    if ! certbot "${args[@]}"; then
        fail certbot-failed "certbot could not obtain a certificate for $FQDN (details in /var/log/letsencrypt/letsencrypt.log)"
    fi
fi

if ! reason=$("$LIB/nginx-certbot/check-cert" --file-only 2>&1); then
    fail bad-certificate "the certificate for $FQDN is not usable: $reason"
fi

if [ "$MANAGED_BY_JITSI" = true ]; then
    log "certificate for $FQDN ready; the jitsi layer serves it through its own nginx site"
else
    ln -sfn /etc/nginx/sites-available/ingot-tls.conf /etc/nginx/sites-enabled/ingot-tls.conf
    if ! nginx -t -q; then
        rm -f /etc/nginx/sites-enabled/ingot-tls.conf
        fail nginx-invalid "nginx rejected the HTTPS site /etc/nginx/sites-available/ingot-tls.conf"
    fi
    systemctl reload nginx
    log "HTTPS enabled for $FQDN (HTTP redirects to HTTPS, HSTS on)"
fi
echo ok > "$STATE_DIR/status"

#!/bin/bash
# ingot (layer jitsi): install and configure Jitsi Meet at first boot.
#
# The packages were downloaded during the bake into /var/cache/ingot/jitsi
# (apt lists are removed from the image, so nothing is downloaded here).
# Jitsi's maintainer scripts write the FQDN and per-instance secrets into
# prosody, jicofo, videobridge and nginx configuration, which is why this
# happens on each instance, never in the image. The debconf answers
# (hostname, "own certificate" at /etc/ssl/<fqdn>.crt|key, no JaaS) were
# set by cloud-init just before.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/ingot/jitsi.env
: "${FQDN:?}" "${SECURE_DOMAIN:?}" "${NAT_MAPPING:?}" "${PUBLIC_IP=}"
# The FQDN goes into sed and awk programs below: ingot only writes a valid
# one (letters, digits, `-` and `.`), and this script makes sure of it.
case "$FQDN" in
    *[!A-Za-z0-9.-]*|'') echo "jitsi: refusing FQDN '$FQDN': letters, digits, '-' and '.' only" >&2; exit 1 ;;
esac
CACHE=/var/cache/ingot/jitsi
LIB=/usr/local/libexec/ingot-layers
APT_OPTS=(-o DPkg::Lock::Timeout=600 -y --no-install-recommends)

log() {
    echo "jitsi: $*"
    logger -t ingot-jitsi -- "$*" 2>/dev/null || true
}

# 1. The certificate files named in the debconf answers. nginx-certbot ran
#    before this layer: link its Let's Encrypt certificate (renewals follow
#    the links). Without one, a self-signed stand-in keeps nginx working and
#    the boot check `certificate` reports the failure.
live="/etc/letsencrypt/live/$FQDN"
if [ -s "$live/fullchain.pem" ] && [ -s "$live/privkey.pem" ]; then
    ln -sfn "$live/fullchain.pem" "/etc/ssl/$FQDN.crt"
    ln -sfn "$live/privkey.pem" "/etc/ssl/$FQDN.key"
    log "serving the Let's Encrypt certificate of $FQDN"
else
    log "WARNING: no Let's Encrypt certificate for $FQDN (see the nginx-certbot lines above); using a self-signed stand-in until issue-cert succeeds"
    rm -f "/etc/ssl/$FQDN.crt" "/etc/ssl/$FQDN.key"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$FQDN" \
        -addext "subjectAltName=DNS:$FQDN" \
        -keyout "/etc/ssl/$FQDN.key" -out "/etc/ssl/$FQDN.crt" 2>/dev/null
    chmod 0600 "/etc/ssl/$FQDN.key"
fi

# 2. Install from the local cache.
if dpkg-query -W -f '${Status}' jitsi-meet 2>/dev/null | grep -q 'install ok installed'; then
    log "jitsi-meet already installed"
else
    shopt -s nullglob
    debs=("$CACHE"/*.deb)
    if [ "${#debs[@]}" -eq 0 ]; then
        log "ERROR: no cached packages in $CACHE - was the image baked with the jitsi layer?"
        exit 1
    fi
    log "installing jitsi-meet for $FQDN from ${#debs[@]} cached packages"
    DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" "${debs[@]}"
    rm -rf "$CACHE"
fi

# 3. nginx: Jitsi's site must use the certificate files above, and carry the
#    locations other layers drop into /etc/nginx/ingot.d (e.g. /grafana/).
site="/etc/nginx/sites-available/$FQDN.conf"
if [ ! -s "$site" ]; then
    log "ERROR: jitsi-meet-web-config did not write $site"
    exit 1
fi
sed -i -E \
    -e "s#^([[:space:]]*ssl_certificate)[[:space:]]+/etc/jitsi/meet/[^;]*;#\\1 /etc/ssl/$FQDN.crt;#" \
    -e "s#^([[:space:]]*ssl_certificate_key)[[:space:]]+/etc/jitsi/meet/[^;]*;#\\1 /etc/ssl/$FQDN.key;#" \
    "$site"
if ! grep -q 'ingot\.d' "$site"; then
    awk '
        { print }
        !done && /^[[:space:]]*ssl_certificate_key[[:space:]]/ {
            print "    # ingot: locations contributed by other layers (e.g. /grafana/)"
            print "    include /etc/nginx/ingot.d/*.conf;"
            done = 1
        }' "$site" > "$site.ingot"
    mv "$site.ingot" "$site"
fi

# 4. Videobridge behind 1:1 NAT (OpenStack floating IP): announce the public
#    address. Without a floating IP the NIC's address is public and nothing
#    is needed; the packaged STUN mapping still covers later changes.
jvb_conf=/etc/jitsi/videobridge/jvb.conf
local_ip=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit }}')
pub_ip=$("$LIB/public-ip" "$PUBLIC_IP" 2>/dev/null | head -n 1 || true)
if [ "$NAT_MAPPING" = true ] && [ -n "$local_ip" ] && [ -n "$pub_ip" ] \
        && [ "$local_ip" != "$pub_ip" ] && ! grep -q 'ingot-nat' "$jvb_conf"; then
    cat >> "$jvb_conf" <<HOCON

# ingot (layer jitsi): this instance is reached through 1:1 NAT
ice4j.harvest.mapping.static-mappings = [
  { name = "ingot-nat", local-address = "$local_ip", public-address = "$pub_ip" }
]
HOCON
    log "videobridge: static NAT mapping $local_ip -> $pub_ip"
fi

# 5. Secure domain (Jitsi handbook, secure-domain.md).
host_cfg="/etc/prosody/conf.avail/$FQDN.cfg.lua"
guest_cfg="/etc/prosody/conf.avail/guest.$FQDN.cfg.lua"
if [ "$SECURE_DOMAIN" = true ]; then
    # Main host: accounts only (first authentication line of its block).
    awk -v host="VirtualHost \"$FQDN\"" '
        index($0, host) == 1 { inhost = 1; print; next }
        /^(VirtualHost|Component)[[:space:]]/ { inhost = 0 }
        inhost && !done && /^[[:space:]]*authentication[[:space:]]*=/ {
            sub(/"[^"]*"/, "\"internal_hashed\""); done = 1
        }
        { print }' "$host_cfg" > "$host_cfg.ingot"
    mv "$host_cfg.ingot" "$host_cfg"
    if [ ! -e /usr/share/jitsi-meet/prosody-plugins/mod_auth_jitsi-anonymous.lua ]; then
        sed -i 's/"jitsi-anonymous"/"anonymous"/' "$guest_cfg"
    fi
    ln -sfn "$guest_cfg" "/etc/prosody/conf.d/guest.$FQDN.cfg.lua"
    # Web client: guests use the anonymous host.
    meet_cfg="/etc/jitsi/meet/$FQDN-config.js"
    if ! grep -q "^[[:space:]]*anonymousdomain: 'guest\." "$meet_cfg"; then
        if grep -q '^[[:space:]]*//[[:space:]]*anonymousdomain:' "$meet_cfg"; then
            sed -i -E "s#^([[:space:]]*)//[[:space:]]*anonymousdomain:.*#\\1anonymousdomain: 'guest.$FQDN',#" "$meet_cfg"
        else
            sed -i -E "0,/^([[:space:]]*)domain: '$FQDN',/s##&\\n\\1anonymousdomain: 'guest.$FQDN',#" "$meet_cfg"
        fi
    fi
    # jicofo: authenticate the meeting owner through XMPP.
    if ! grep -q 'ingot: secure domain' /etc/jitsi/jicofo/jicofo.conf; then
        cat >> /etc/jitsi/jicofo/jicofo.conf <<HOCON

# ingot: secure domain (merged into the jicofo block above)
jicofo.authentication {
  enabled = true
  type = XMPP
  login-url = "$FQDN"
}
HOCON
    fi
    # Accounts from the jitsi_users secret ("user:password" pairs).
    registered=0
    while read -r pair; do
        [ -n "$pair" ] || continue
        user=${pair%%:*}
        password=${pair#*:}
        if [ -z "$user" ] || [ "$user" = "$pair" ]; then
            log "WARNING: ignoring a jitsi_users entry that is not user:password"
            continue
        fi
        prosodyctl register "$user" "$FQDN" "$password"
        registered=$((registered + 1))
    done < <(tr '[:blank:]' '\n' < /etc/ingot/jitsi-users)
    : > /etc/ingot/jitsi-users
    if [ "$registered" -eq 0 ]; then
        log "WARNING: secure domain without accounts - nobody can open a meeting; add one with: prosodyctl register USER $FQDN PASSWORD"
    else
        log "secure domain on: $registered account(s) registered"
    fi
else
    rm -f "/etc/prosody/conf.d/guest.$FQDN.cfg.lua"
fi

# 6. Lobby: enabled by the packaged prosody configuration (muc_lobby_rooms,
#    lobby.<fqdn>); say so, the boot check `lobby` verifies it.
if grep -q "Component \"lobby.$FQDN\"" "$host_cfg"; then
    log "lobby available (lobby.$FQDN)"
else
    log "WARNING: the prosody configuration has no lobby component"
fi

# 7. Apply.
systemctl restart prosody
systemctl restart jicofo jitsi-videobridge2
nginx -t -q
systemctl reload nginx
log "Jitsi Meet ready at https://$FQDN/"

#!/bin/sh
# ingot (layer nginx-certbot): certbot deploy hook, run after each renewal
# (certbot.timer): serve the renewed certificate.
set -eu
nginx -t -q
systemctl reload nginx

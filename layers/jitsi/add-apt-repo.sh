#!/bin/bash
# ingot (layer jitsi): add the Jitsi apt repository (bake only).
#
# The armored key text of download.jitsi.org could not be obtained while this
# layer was written (no copy of the current key was found in public sources
# reachable from the build workplace), so the layer does not ship it as a
# key_file. Instead the bake fetches the key over HTTPS and accepts it only
# if it contains the pinned fingerprint below - the key that signs the
# stable repository since Jitsi rotated it in April 2021 (repository
# signatures by 0xB4D2D216F1FD7806, jitsi/jitsi-meet#9084). A key without
# it fails the bake: nothing unverified enters the image. apt then verifies
# every InRelease and package against this keyring.
# To ship the key instead: save the armored text as layers/jitsi/jitsi-key.asc
# and declare an apt source with key_file (see README.md).
set -euo pipefail
KEY_URL=https://download.jitsi.org/jitsi-key.gpg.key
PINNED_FPR=FFD65A0DA2BEBDEB73D44C8BB4D2D216F1FD7806
KEYRING=/usr/share/keyrings/jitsi-keyring.gpg
SOURCES=/etc/apt/sources.list.d/jitsi-stable.list

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GNUPGHOME="$tmp/gnupg"
mkdir -m 0700 "$GNUPGHOME"

curl -fsSL --retry 3 --max-time 60 "$KEY_URL" -o "$tmp/key.asc"
fprs=$(gpg --batch --show-keys --with-colons --with-subkey-fingerprints "$tmp/key.asc" \
    | awk -F: '$1 == "fpr" { print $10 }')
if ! grep -qx "$PINNED_FPR" <<<"$fprs"; then
    echo "jitsi: $KEY_URL does not contain the pinned key $PINNED_FPR (it has: $(tr '\n' ' ' <<<"$fprs")); refusing it" >&2
    exit 1
fi
gpg --batch --yes --dearmor -o "$KEYRING" "$tmp/key.asc"
chmod 0644 "$KEYRING"
echo "deb [signed-by=$KEYRING] https://download.jitsi.org stable/" > "$SOURCES"
echo "jitsi: repository https://download.jitsi.org stable/ added (key $PINNED_FPR)"

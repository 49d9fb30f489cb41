#!/usr/bin/env bash
# fleetcerts.sh: issues (once, cached) the PKI the fleet simulator uses: one CA, the collector's
# certificate and N agent certificates.
#
# Usage: tests/bench/fleetcerts.sh DIR N [PREFIX]
#   DIR/ca.crt, ca.key, collector.crt/.key   (certs/epwatch-certs: SAN DNS:collector, IP:127.0.0.1)
#   DIR/agent.key                            one EC P-256 key shared by every simulated agent
#   DIR/agents/PREFIXNNNNN.crt               CN = PREFIXNNNNN, OU=agents, EKU clientAuth
# Only missing certificates are issued, so the directory works as a cache.
#
# Why one shared key: the identity the collector records is the certificate's CN, and issuing
# 20,000 certificates with epwatch-certs (a key, a CSR and a signature each, ~37 ms) takes ~12
# minutes on one core. With python3-cryptography (fleetcerts.py) 20,000 take well under a minute;
# without it, `openssl x509 -new -force_pubkey` per certificate (~21 ms alone, ~45 ms on a busy
# 2-core machine) on every core. The TLS work per connection is the same either way.
set -euo pipefail

DIR=${1:?usage: fleetcerts.sh DIR N [PREFIX]}
N=${2:?usage: fleetcerts.sh DIR N [PREFIX]}
PREFIX=${3:-fleet-}
HERE=$(cd "$(dirname "$0")" && pwd)
CERTS=$HERE/../../certs/epwatch-certs

mkdir -p "$DIR/agents"
[[ -f $DIR/ca.crt ]] || "$CERTS" init "$DIR" >/dev/null
[[ -f $DIR/collector.crt ]] || "$CERTS" collector "$DIR" collector --dns localhost --ip 127.0.0.1 >/dev/null
if [[ ! -f $DIR/agent.key ]]; then
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/agent.key")
fi
[[ -f $DIR/agent.pub ]] || openssl pkey -in "$DIR/agent.key" -pubout -out "$DIR/agent.pub"
cat >"$DIR/agent-ext.cnf" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT

missing=$(mktemp)
trap 'rm -f "$missing"' EXIT
for ((i = 0; i < N; i++)); do
    printf -v name "%s%05d" "$PREFIX" "$i"
    [[ -f $DIR/agents/$name.crt ]] || echo "$name"
done >"$missing"
todo=$(wc -l <"$missing")
((todo == 0)) && exit 0
echo "fleetcerts: issuing $todo agent certificates in $DIR (cached for later runs)" >&2
start=$(date +%s)
export DIR
if python3 -c 'import cryptography' 2>/dev/null; then
    # Fast path (~1 ms a certificate): python3-cryptography signs in-process.
    python3 "$HERE/fleetcerts.py" "$DIR" - <"$missing"
else
    # Fallback: one openssl process per certificate, batches of 200 names per shell, one per core.
    xargs -a "$missing" -n 200 -P "$(nproc)" bash -c '
for name in "$@"; do
    openssl x509 -new -subj "/O=epwatch/OU=agents/CN=$name" -force_pubkey "$DIR/agent.pub" \
        -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -extfile "$DIR/agent-ext.cnf" -days 365 \
        -out "$DIR/agents/$name.crt.tmp" 2>/dev/null &&
        mv "$DIR/agents/$name.crt.tmp" "$DIR/agents/$name.crt" || { echo "fleetcerts: $name failed" >&2; exit 1; }
done' _
fi
echo "fleetcerts: $todo certificates in $(($(date +%s) - start)) s" >&2

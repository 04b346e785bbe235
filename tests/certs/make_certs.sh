#!/bin/sh
# make_certs.sh DIR — test certificates for the TLS tests, made fresh in DIR
# (a temporary directory) so no private key ever lives in the tree.
#
#   ca.pem ca.key            a test CA (EC P-256), what clients trust
#   server.pem server.key    leaf for localhost / 127.0.0.1 / ::1, signed by
#                            the CA; server.pem is the chain: leaf then CA
#   server2.pem server2.key  another leaf, same names: the rotation target
#   rsa.pem rsa.key          an RSA-2048 leaf (the ECDHE-RSA suites)
#   other.key                a key that matches none of the certificates
#   self.pem self.key        self-signed leaf (trusted as itself)
set -eu
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
san="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"

openssl req -x509 $ec -days 2 -subj /CN=wsjobd-test-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -keyout ca.key -out ca.pem 2>/dev/null

leaf() {   # leaf NAME KEYARGS...
    name=$1; shift
    openssl req -new "$@" -subj /CN=localhost -keyout "$name.key" -out "$name.csr" 2>/dev/null
    printf '%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$name.ext" -out "$name.leaf" 2>/dev/null
    cat "$name.leaf" ca.pem > "$name.pem"
    rm -f "$name.csr" "$name.ext" "$name.leaf"
}
leaf server $ec
leaf server2 $ec
leaf rsa -newkey rsa:2048 -nodes

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null
openssl req -x509 $ec -days 2 -subj /CN=localhost -addext "$san" \
    -keyout self.key -out self.pem 2>/dev/null

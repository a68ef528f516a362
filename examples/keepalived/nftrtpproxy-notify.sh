#!/bin/sh
# keepalived notify script: logs VRRP transitions next to nftrtpproxy's own
# role changes. keepalived calls it as: $0 INSTANCE|GROUP NAME STATE PRIORITY.
# nftrtpproxy does not depend on it: it takes its role from the addresses.
logger -t nftrtpproxy-vrrp "vrrp $1 $2 is now $3 (priority $4)"

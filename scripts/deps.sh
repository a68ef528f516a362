#!/bin/sh
# Installs the Debian packages given as arguments that are not installed yet.
# As root it uses apt-get; otherwise it only says what is missing (kernel
# tests and the demo skip without root anyway).
set -eu
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: not root, so not installing:$missing (kernel tests and the demo need root)" >&2
	exit 0
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Packages such as kamailio would start their service on the host; the tests
# run their own instances inside network namespaces, so forbid service starts
# during the install (policy-rc.d exit 101), unless the machine has a policy.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod +x "$policy"
	trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null

package relay

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netns"
)

// udpTimeoutSysctl holds how long an unreplied UDP flow lives after its
// last packet. The relay's flows are one-way (a zone per direction), so
// they stay unreplied and this is their timeout. The host checks
// (internal/hostcheck) judge the other settings; the dataplane only needs
// this one to tell a dumped flow's idle time.
const udpTimeoutSysctl = "net.netfilter.nf_conntrack_udp_timeout"

// readUDPTimeout reads the UDP conntrack timeout of the namespace nsFD (0:
// the caller's).
func readUDPTimeout(nsFD int) (time.Duration, error) {
	v, err := netns.ReadSysctls(nsFD, udpTimeoutSysctl)
	if err != nil {
		return 0, err
	}
	s, ok := v[udpTimeoutSysctl]
	if !ok {
		return 0, fmt.Errorf("%s: not present (nf_conntrack not loaded)", udpTimeoutSysctl)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %q is not a number of seconds", udpTimeoutSysctl, s)
	}
	return time.Duration(n) * time.Second, nil
}

package relay

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netns"
)

// udpTimeoutPath holds how long an unreplied UDP flow lives after its last
// packet. The relay's flows are one-way (a zone per direction), so they
// stay unreplied and this is their timeout.
const udpTimeoutPath = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout"

// readUDPTimeout reads the UDP conntrack timeout of the namespace nsFD (0:
// the caller's). The net part of /proc/sys shows the namespace of the
// thread that opens it, so for another namespace the file is read from a
// thread switched into it (netns.Do).
func readUDPTimeout(nsFD int) (time.Duration, error) {
	if nsFD == 0 {
		return parseSeconds(os.ReadFile(udpTimeoutPath))
	}
	var d time.Duration
	done := make(chan error, 1)
	go func() { // a goroutine of its own: if switching back fails, its thread dies with it
		done <- netns.Do(nsFD, func() (err error) {
			d, err = parseSeconds(os.ReadFile(udpTimeoutPath))
			return err
		})
	}()
	err := <-done
	return d, err
}

func parseSeconds(b []byte, err error) (time.Duration, error) {
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: %q is not a number of seconds", udpTimeoutPath, strings.TrimSpace(string(b)))
	}
	return time.Duration(n) * time.Second, nil
}

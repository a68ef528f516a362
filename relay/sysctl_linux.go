package relay

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// udpTimeoutPath holds how long an unreplied UDP flow lives after its last
// packet. The relay's flows are one-way (a zone per direction), so they
// stay unreplied and this is their timeout.
const udpTimeoutPath = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout"

// readUDPTimeout reads the UDP conntrack timeout of the namespace netns (0:
// the caller's). The net part of /proc/sys shows the namespace of the
// thread that opens it, so for another namespace the file is read from a
// thread switched into it, in a goroutine of its own: if switching back
// fails the thread stays locked and dies with that goroutine.
func readUDPTimeout(netns int) (time.Duration, error) {
	if netns == 0 {
		return parseSeconds(os.ReadFile(udpTimeoutPath))
	}
	type result struct {
		d   time.Duration
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer home.Close()
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter namespace: %w", err)}
			return
		}
		d, err := parseSeconds(os.ReadFile(udpTimeoutPath))
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{d, err}
	}()
	r := <-done
	return r.d, r.err
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

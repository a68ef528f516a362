//go:build !linux

package relay

import (
	"errors"
	"runtime"
)

// Options select where the dataplane works.
type Options struct {
	// NetNS is a network namespace file descriptor (Linux only).
	NetNS int
}

// Open fails: the kernel data plane needs Linux nftables and conntrack.
func Open(opts Options) (Dataplane, error) {
	return nil, errors.New("relay: not implemented on " + runtime.GOOS + ": nftables and conntrack need Linux")
}

// Package netns runs code with the calling thread switched into a network
// namespace: what the lab builds its namespaces with, and how the relay
// reads the sysctls of the namespace it works in (the net part of /proc/sys
// shows the namespace of the thread that opens it).
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on the calling goroutine's OS thread switched into the
// namespace fd and switches the thread back afterwards, even when fn
// panics. Sockets fn creates stay in the namespace; goroutines fn starts do
// not run in it. If switching back fails, the thread stays locked so that
// the Go runtime discards it when the goroutine ends instead of reusing a
// thread in the wrong namespace, and Do reports the failure.
func Do(fd int, fn func() error) (err error) {
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: current namespace: %w", err)
	}
	defer home.Close()
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter namespace (fd %d): %w", fd, err)
	}
	defer func() {
		if serr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); serr != nil {
			err = errors.Join(err, fmt.Errorf("netns: leave namespace (fd %d): %w", fd, serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

package netlab

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// supported reports whether labs can work on this operating system.
func supported() error { return nil }

// Do runs fn on an OS thread switched into the namespace and switches the
// thread back afterwards, even when fn panics. Sockets fn creates stay in the
// namespace; goroutines fn starts do not run in it. If switching back fails,
// the thread stays locked so that the Go runtime discards it instead of
// reusing a thread in the wrong namespace, and Do reports the failure.
func (n *NS) Do(fn func() error) (err error) {
	target, err := os.Open(n.Path())
	if err != nil {
		return fmt.Errorf("netlab: namespace %q: %w", n.Name, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	host, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: %s: current namespace: %w", n.Name, err)
	}
	defer host.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: enter namespace %q: %w", n.Name, err)
	}
	defer func() {
		if serr := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); serr != nil {
			// Leave the thread locked: it dies with this goroutine.
			err = errors.Join(err, fmt.Errorf("netlab: leave namespace %q: %w", n.Name, serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

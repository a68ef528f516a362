//go:build !unix

package statedir

import (
	"errors"
	"fmt"
	"runtime"
)

// Name is the lock file's name in the state directory.
const Name = "lock"

// Lock is a held lock on a state directory.
type Lock struct{}

// ErrLocked is wrapped by Acquire's error when another process holds the
// lock.
var ErrLocked = errors.New("locked by another process")

// Acquire is not implemented on this GOOS.
func Acquire(dir string) (*Lock, error) {
	return nil, fmt.Errorf("state directory %q: locking is not implemented on %s", dir, runtime.GOOS)
}

// Release does nothing.
func (l *Lock) Release() error { return nil }

//go:build unix

package statedir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Name is the lock file's name in the state directory.
const Name = "lock"

// Lock is a held lock on a state directory. It is released by Release or
// when the process ends.
type Lock struct {
	f *os.File
}

// ErrLocked is wrapped by Acquire's error when another process holds the
// lock.
var ErrLocked = errors.New("locked by another process")

// Acquire creates dir if needed and locks it for this process, writing
// the pid into the lock file. If another process holds the lock the error
// wraps ErrLocked and names that process's pid.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory %q: %w", dir, err)
	}
	path := filepath.Join(dir, Name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("state directory %q: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := holderOf(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %q: %w: %s (lock file %q)", dir, ErrLocked, holder, path)
		}
		return nil, fmt.Errorf("state directory %q: lock %q: %w", dir, path, err)
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("state directory %q: lock %q: %w", dir, path, err)
	}
	return &Lock{f: f}, nil
}

// holderOf describes the process the lock file names.
func holderOf(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(f, 32))
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil || pid <= 0 {
		return "held by a process that has not written its pid yet"
	}
	return fmt.Sprintf("held by pid %d", pid)
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// Release unlocks the state directory. The lock file stays: removing it
// would let a process that opened it before the removal lock a file no
// one else sees. Release of a nil Lock does nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}

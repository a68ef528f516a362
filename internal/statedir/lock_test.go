//go:build unix

package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// flock(2) locks belong to open file descriptions, so a second Acquire in
// the same process conflicts as a second daemon's would.
func TestASecondAcquireIsRefusedAndNamesTheHolder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir)
	want := fmt.Sprintf("state directory %q: locked by another process: held by pid %d (lock file %q)", dir, os.Getpid(), filepath.Join(dir, Name))
	if err == nil || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: %v, want ErrLocked", err)
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	defer again.Release()
}

// A lock file left by a process that ended holds no lock: its pid is
// overwritten.
func TestAStaleLockFileIsTaken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, Name), []byte("999999999\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	b, err := os.ReadFile(filepath.Join(dir, Name))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), fmt.Sprintf("%d\n", os.Getpid()); got != want {
		t.Errorf("lock file holds %q, want %q", got, want)
	}
}

func TestAReleasedNilLockDoesNothing(t *testing.T) {
	t.Parallel()
	var l *Lock
	if err := l.Release(); err != nil {
		t.Error(err)
	}
}

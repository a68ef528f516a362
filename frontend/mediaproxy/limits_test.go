package mediaproxy

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// flaky is a listener whose Accept fails (out of file descriptors) a
// number of times before each connection.
type flaky struct {
	net.Listener
	mu       sync.Mutex
	failures int
	failed   int
}

func (f *flaky) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.failed < f.failures {
		f.failed++
		f.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	f.failed = 0
	f.mu.Unlock()
	return f.Listener.Accept()
}

func TestAcceptErrorsPauseTheServerButNeverStopIt(t *testing.T) {
	t.Parallel()
	h := &harness{cfg: switchboardtest.Config(t, "30000-30011", "")}
	h.m, h.mem = switchboardtest.Manager(t, h.cfg)
	h.path = filepath.Join(t.TempDir(), "dispatcher.sock")
	srv, err := NewServer(newCalls(h.m, h.cfg.Switchboards, "edge"), h.cfg.Switchboards, "edge", Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.route = labRoute
	l, err := Listen(h.path, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, &flaky{Listener: l, failures: 3}) }()
	for range 2 { // each connection is accepted after three failures
		h.connect(t)
		if got := h.ask(t, moduleInvite); !strings.HasPrefix(got, "10.0.0.1 ") {
			t.Fatalf("invite after accept errors: %q", got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestTooManyStreamsAreAnsweredError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "30000-30999")
	streams := strings.Repeat("audio:192.0.2.10:6000:sendrecv:ice=no,", switchboard.MaxStreamsPerRequest) + "audio:192.0.2.10:6000:sendrecv:ice=no"
	req := strings.Replace(moduleInvite, "media: audio:192.0.2.10:6000:sendrecv:ice=no", "media: "+streams, 1)
	if got := h.ask(t, req); got != "error" || len(h.m.List()) != 0 {
		t.Errorf("33 streams: %q with %d sessions, want error and none", got, len(h.m.List()))
	}
	if got := h.ask(t, moduleInvite); got == "error" {
		t.Errorf("an invite after it: %q", got)
	}
}

func TestTheSocketIsOpenToItsOwnerAndGroupOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "d.sock")
	l, err := Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v (%v), want 0660", fi.Mode().Perm(), err)
	}
}

package ctlsock

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFilterAdmitsOnlyItsNetworks(t *testing.T) {
	t.Parallel()
	f := NewFilter("ng", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}, nil)
	for _, tc := range []struct {
		from net.Addr
		want bool
	}{
		{&net.UDPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5060}, true},
		{&net.UDPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 5060}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 80}, true},
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5060}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80}, false},
		{&net.UnixAddr{Name: "@", Net: "unix"}, true},
	} {
		if got := f.Permit(tc.from); got != tc.want {
			t.Errorf("Permit(%v) = %v, want %v", tc.from, got, tc.want)
		}
	}
	if f.Dropped() != 2 {
		t.Errorf("%d dropped, want 2", f.Dropped())
	}
}

func TestPacketConnSkipsRefusedSources(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	allowed, refused := dial(t, pc), dial(t, pc)
	only := allowed.LocalAddr().(*net.UDPAddr).AddrPort()
	f := NewFilter("test", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, nil)
	fc := PacketConn(pc, f)
	if _, err := refused.Write([]byte("junk")); err != nil {
		t.Fatal(err)
	}
	fc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 64)
	if n, from, err := fc.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom = %q from %v, %v; want the refused datagram skipped", buf[:n], from, err)
	}
	if f.Dropped() != 1 {
		t.Errorf("%d dropped, want 1", f.Dropped())
	}
	f.allow = []netip.Prefix{netip.PrefixFrom(only.Addr(), 32)}
	if _, err := allowed.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	fc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := fc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" || from.(*net.UDPAddr).AddrPort() != only {
		t.Errorf("ReadFrom = %q from %v, %v; want ping from %v", buf[:n], from, err, only)
	}
}

func dial(t *testing.T, pc net.PacketConn) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// failing is a listener whose first failures Accept calls fail.
type failing struct {
	net.Listener
	failures int
}

func (f *failing) Accept() (net.Conn, error) {
	if f.failures > 0 {
		f.failures--
		return nil, syscall.EMFILE
	}
	return f.Listener.Accept()
}

func TestListenerPausesAndRetriesAfterAcceptErrors(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listener(&failing{Listener: inner, failures: 10}, nil, nil).(*listener)
	var pauses []time.Duration
	l.sleep = func(d time.Duration) { pauses = append(pauses, d) }
	go func() {
		if c, err := net.Dial("tcp", inner.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after 10 failures: %v", err)
	}
	c.Close()
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if diff := cmp.Diff(want, pauses); diff != "" {
		t.Errorf("pauses (-want +got):\n%s", diff)
	}
	inner.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}

func TestListenerClosesRefusedConnections(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	f := NewFilter("http", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, nil)
	l := Listener(inner, f, nil)
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go l.Accept() // refuses, then waits for the next connection until Close
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on a refused connection: %v, want it closed", err)
	}
	if f.Dropped() != 1 {
		t.Errorf("%d dropped, want 1", f.Dropped())
	}
}

func TestRestrictMakesASocket0660WithItsGroup(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := Restrict(path, strconv.Itoa(os.Getgid())); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || int(fi.Sys().(*syscall.Stat_t).Gid) != os.Getgid() {
		t.Errorf("mode %v gid %d, want 0660 and %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, os.Getgid())
	}
	if err := Restrict(path, "no-such-group-x9"); err == nil || !strings.Contains(err.Error(), `socket-group "no-such-group-x9"`) {
		t.Errorf("an unknown group: %v, want an error naming it", err)
	}
}

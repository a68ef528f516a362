package rtpproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

func TestMaxSessionsIsRefusedAsOutOfPorts(t *testing.T) {
	t.Parallel()
	r := &rig{t: t, cfg: switchboardtest.Config(t, "30000-30009", "max-sessions = 1\n"), def: "edge", mem: relaytest.NewMemory()}
	r.startManager()
	r.serve("udp:127.0.0.1:0")
	r.expect("UEI call-1 192.0.2.10 6000 alice;1", "30000 10.0.0.1")
	legs := r.legs()
	r.expect("UEI call-2 192.0.2.11 6000 carol;1", "E71")
	if len(r.mgr.List()) != 1 || len(r.legs()) != len(legs) {
		t.Errorf("the refused stream left %d sessions and %d legs, want 1 and %d", len(r.mgr.List()), len(r.legs()), len(legs))
	}
}

func TestStreamsPerCallAreCapped(t *testing.T) {
	t.Parallel()
	r := &rig{t: t, cfg: switchboardtest.Config(t, "30000-39999", ""), def: "edge", mem: relaytest.NewMemory()}
	r.startManager()
	r.serve("udp:127.0.0.1:0")
	for i := range switchboard.MaxStreamsPerCall {
		if got := r.cmd(fmt.Sprintf("UEI call-1 192.0.2.10 %d alice;%d", 6000+2*i, i+1)); strings.HasPrefix(got, "E") {
			t.Fatalf("stream %d: %s", i+1, got)
		}
	}
	r.expect(fmt.Sprintf("UEI call-1 192.0.2.10 9000 alice;%d", switchboard.MaxStreamsPerCall+1), "E71")
	if n := len(r.mgr.List()); n != switchboard.MaxStreamsPerCall {
		t.Errorf("%d sessions, want %d", n, switchboard.MaxStreamsPerCall)
	}
	r.expect("UEI call-2 192.0.2.10 9000 alice;1", "30128 10.0.0.1")
}

func TestALongCookieIsRefusedAndNotCached(t *testing.T) {
	t.Parallel()
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	cookie := strings.Repeat("c", maxCookie+1)
	if got := r.udp(cookie, "V"); got != "E5" {
		t.Errorf("a %d-byte cookie: reply %q, want E5", len(cookie), got)
	}
	if got := r.udp(strings.Repeat("c", maxCookie), "V"); got != baseVersion {
		t.Errorf("a %d-byte cookie: reply %q, want %s", maxCookie, got, baseVersion)
	}
}

func TestTheUnixSocketIsOpenToItsOwnerAndGroupOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rtpproxy.sock")
	sock, err := Listen("unix:"+path, SocketOptions{Group: fmt.Sprint(os.Getgid())})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want 0660", fi.Mode().Perm())
	}
	if _, err := Listen("unix:"+filepath.Join(t.TempDir(), "x.sock"), SocketOptions{Group: "no-such-group-x9"}); err == nil ||
		!strings.Contains(err.Error(), `socket-group "no-such-group-x9"`) {
		t.Errorf("an unknown group: %v, want an error naming it", err)
	}
}

//go:build linux && integration

package integration

import (
	"errors"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Hard case 6: an answered call without media ends at the media timeout; a
// call on hold (a=sendonly, or a hold address) does not, however long it is
// silent, and media flows again once it is taken off hold.
func TestMediaTimeoutSparesHeldCalls(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), `media-timeout = "1s"`))
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	silent, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	held, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	onHold := switchboard.Endpoint{RTP: a.addr, Hold: true}
	if _, err := d.api.Update(ctx(t), held.ID, switchboard.UpdateRequest{A: &onHold}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	var se *httpapi.StatusError
	if _, err := d.api.Show(ctx(t), silent.ID); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("silent call after its media timeout: %v, want 404", err)
	}
	if _, err := d.api.Show(ctx(t), held.ID); err != nil {
		t.Fatalf("held call after the media timeout: %v", err)
	}
	offHold := a.endpoint()
	if _, err := d.api.Update(ctx(t), held.ID, switchboard.UpdateRequest{A: &offHold}); err != nil {
		t.Fatal(err)
	}
	a.send(t, held.GateA, 10, false)
	expect(t, "callee after unhold", b.rtpR, held.GateB, 10)
	b.send(t, held.GateB, 10, false)
	expect(t, "caller after unhold", a.rtpR, held.GateA, 10)
}

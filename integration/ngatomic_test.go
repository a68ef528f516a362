//go:build linux && integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A re-INVITE whose last new stream finds no free port pair is refused
// whole: the kernel's table, the journal and the call table are exactly as
// before, and the call goes on.
func TestNGARequestWhoseLastStreamFailsChangesNothing(t *testing.T) {
	lab := newLab(t)
	dir := t.TempDir()
	// Three port pairs per gate on the IPv4 switchboard.
	config := strings.Replace(ngConfig(lab, dir), `ports = "30000-30999"`, `ports = "30000-30005"`, 2)
	startDaemon(t, lab, config)
	caller, callee := lab.CallerAddr.String(), lab.CalleeAddr.String()
	media := func(addr string, ports ...int) string {
		b := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\n", addr)
		for _, p := range ports {
			b += fmt.Sprintf("m=audio %d RTP/AVP 0\r\n", p)
		}
		return b
	}
	req := func(cmd, sdp string) map[string]any {
		r := map[string]any{"command": cmd, "call-id": "atomic-1", "from-tag": "alice", "sdp": sdp,
			"direction": []string{"external", "internal"}, "flags": []string{"trust-address"}}
		if cmd == "answer" {
			r["to-tag"] = "bob"
		}
		return r
	}
	if r := ngCall(t, lab, "a_1", req("offer", media(caller, 4000))); r["result"] != "ok" {
		t.Fatalf("offer: %v", r)
	}
	if r := ngCall(t, lab, "a_2", req("answer", media(callee, 5000))); r["result"] != "ok" {
		t.Fatalf("answer: %v", r)
	}
	journal := func() string {
		b, err := os.ReadFile(filepath.Join(dir, "sessions.journal"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	view := func(seq string) string {
		q := ngCall(t, lab, "q_"+seq, map[string]any{"command": "query", "call-id": "atomic-1"})
		l := ngCall(t, lab, "l_"+seq, map[string]any{"command": "list"})
		delete(q, "last signal")
		return fmt.Sprint(q, l)
	}
	tableBefore, journalBefore, viewBefore := nftTable(t, lab), journal(), view("1")

	// The existing stream moves and three streams are added: the third
	// new one finds both remaining pairs taken by the first two.
	r := ngCall(t, lab, "a_3", req("offer", media(caller, 4100, 4002, 4004, 4006)))
	if r["result"] != "error" || !strings.Contains(fmt.Sprint(r["error-reason"]), "Ran out of ports") {
		t.Fatalf("re-INVITE beyond the free ports: %v, want the error Ran out of ports", r)
	}
	if d := cmp.Diff(tableBefore, nftTable(t, lab)); d != "" {
		t.Errorf("the refused request changed the kernel's table (-before +after):\n%s", d)
	}
	if d := cmp.Diff(journalBefore, journal()); d != "" {
		t.Errorf("the refused request changed the journal (-before +after):\n%s", d)
	}
	if d := cmp.Diff(viewBefore, view("2")); d != "" {
		t.Errorf("the refused request changed the call (-before +after):\n%s", d)
	}
	// The same re-INVITE within the free pairs goes through.
	if r := ngCall(t, lab, "a_4", req("offer", media(caller, 4100, 4002, 4004))); r["result"] != "ok" {
		t.Fatalf("re-INVITE within the free ports: %v", r)
	}
}

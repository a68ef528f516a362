//go:build linux && integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// A state directory on a small file system fills up: offers are refused
// with ENOSPC (a record torn by the full disk is cut back), a delete that
// cannot be recorded is refused and its session stays. The disk is freed,
// the daemon SIGKILLed and restarted: it starts, its journal reads whole,
// and it knows exactly the calls it acknowledged, in the API and in the
// kernel (the nft CLI counts the legs).
func TestKernelAStateDirectoryThatFillsUpAndFreesKeepsTheAcknowledgedCalls(t *testing.T) {
	lab := newLab(t)
	state := smallTmpfs(t, "128k")
	d := startDaemon(t, lab, labConfig(lab, state, ""))
	acked := map[string]bool{}
	port := uint16(4000)
	alloc := func() error {
		port += 2
		s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge",
			A: switchboard.Endpoint{RTP: netip.AddrPortFrom(lab.CallerAddr, port)},
			B: switchboard.Endpoint{RTP: netip.AddrPortFrom(lab.CalleeAddr, port)}})
		if err == nil {
			acked[s.ID] = true
		}
		return err
	}
	for range 3 {
		if err := alloc(); err != nil {
			t.Fatal(err)
		}
	}

	filler := fillUp(t, state)
	// The journal's last page has room for a few more records; then the
	// disk is full, mid-record.
	refused := 0
	for i := 0; i < 100 && refused < 3; i++ {
		if err := alloc(); err != nil {
			if !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("alloc on a full disk: %v, want ENOSPC", err)
			}
			refused++
		}
	}
	if refused < 3 {
		t.Fatalf("the full disk refused %d of 100 allocs, want 3", refused)
	}
	var victim string
	for id := range acked {
		victim = id
		break
	}
	if err := d.api.Delete(ctx(t), victim); err == nil {
		delete(acked, victim) // its short record fitted
	} else if !strings.Contains(err.Error(), "not deleted") || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("delete on a full disk: %v", err)
	}
	checkCalls(t, d, lab, acked, "on the full disk")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := alloc(); err != nil {
		t.Fatalf("alloc after the disk was freed: %v", err)
	}
	if err := d.api.Delete(ctx(t), victim); err != nil && acked[victim] {
		t.Fatalf("delete after the disk was freed: %v", err)
	}
	delete(acked, victim)

	d.kill()
	d.start()
	checkCalls(t, d, lab, acked, "after the SIGKILL and restart")
	if log := d.logText(); strings.Contains(log, "journal: skipped") {
		t.Errorf("the restart skipped journal records:\n%s", log)
	}
}

// checkCalls checks that the daemon's sessions are exactly acked and that
// the kernel holds their legs and no others.
func checkCalls(t *testing.T, d *daemon, lab *netlab.Lab, acked map[string]bool, when string) {
	t.Helper()
	list, err := d.api.List(ctx(t))
	if err != nil {
		t.Fatalf("list %s: %v\n%s", when, err, d.logText())
	}
	var got, want []string
	for _, s := range list {
		got = append(got, s.ID)
	}
	for id := range acked {
		want = append(want, id)
	}
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sessions %s (-acknowledged +daemon):\n%s", when, diff)
	}
	out, err := lab.Router.Run(context.Background(), "nft", "list", "map", "inet", relay.TableName, "leg4")
	if err != nil {
		t.Fatalf("nft list map: %v: %s", err, out)
	}
	if n := strings.Count(string(out), " : 0x"); n != 4*len(acked) {
		t.Errorf("%s the kernel holds %d legs, want 4 for each of %d sessions:\n%s", when, n, len(acked), out)
	}
}

// smallTmpfs mounts a tmpfs of size under a directory the test creates
// and unmounts it when the test ends (after the daemon has stopped).
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("nftrtpproxy-test", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0750"); err != nil {
		t.Skipf("mounting a tmpfs for the state directory: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the test tmpfs %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// fillUp writes a file into dir until the file system is full.
func fillUp(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

// A second daemon started on the state directory of a running one exits
// with an error naming the first's pid, before it changes anything: the
// table (nft CLI), the ruleset generation, the relay's flows (conntrack
// CLI) and the first daemon's sessions are as they were.
func TestKernelASecondDaemonOnTheSameStateDirectoryRefusesAndChangesNothing(t *testing.T) {
	lab := newLab(t)
	state := t.TempDir()
	d := startDaemon(t, lab, labConfig(lab, state, ""))
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	a.send(t, s.GateA, 5, false)
	expect(t, "callee", b.rtpR, s.GateB, 5)
	table, flows, gen := nftTable(t, lab), relayFlows(t, lab), generation(t, lab)
	sessions, err := d.api.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}

	// Another HTTP address, so that only the lock can stop it.
	second := strings.Replace(labConfig(lab, state, ""), "127.0.0.1:7780", "127.0.0.1:7781", 1)
	path := filepath.Join(t.TempDir(), "second.toml")
	if err := os.WriteFile(path, []byte(second), 0o644); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := lab.Router.Command(c, filepath.Join(binDir, "nftrtpproxy"), "-config", path).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("second daemon: %v, want a non-zero exit; output:\n%s", err, out)
	}
	for _, want := range []string{fmt.Sprintf("state directory %s", strconvQuote(state)), fmt.Sprintf("held by pid %d", d.cmd.Process.Pid)} {
		if !strings.Contains(string(out), want) {
			t.Errorf("second daemon's output does not say %q:\n%s", want, out)
		}
	}

	if after := nftTable(t, lab); after != table {
		t.Errorf("the table changed:\n%s\nwas:\n%s", after, table)
	}
	if after := generation(t, lab); after != gen {
		t.Errorf("the ruleset generation moved from %d to %d: something was committed", gen.ID, after.ID)
	}
	if diff := cmp.Diff(flows, relayFlows(t, lab)); diff != "" {
		t.Errorf("relay flows (-before +after):\n%s", diff)
	}
	after, err := d.api.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sessions, after, cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})); diff != "" {
		t.Errorf("sessions (-before +after):\n%s", diff)
	}
	b.rtpR.Reset()
	a.send(t, s.GateA, 5, false)
	expect(t, "callee after the second daemon", b.rtpR, s.GateB, 5)
}

// strconvQuote quotes s as slog's text handler does a value inside a
// quoted error message.
func strconvQuote(s string) string { return strings.Trim(strconv.Quote(strconv.Quote(s)), `"`) }

// generation reads the router namespace's ruleset generation.
func generation(t *testing.T, lab *netlab.Lab) relay.Generation {
	t.Helper()
	f, err := os.Open(lab.Router.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dp, err := relay.Open(relay.Options{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	g, err := dp.Generation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

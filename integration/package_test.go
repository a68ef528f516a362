//go:build linux && integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// packageFiles are what the Debian package installs.
var packageFiles = []string{
	"/usr/sbin/nftrtpproxy",
	"/usr/bin/nftrtpctl",
	"/usr/lib/systemd/system/nftrtpproxy.service",
	"/etc/nftrtpproxy/nftrtpproxy.toml",
	"/usr/lib/sysctl.d/60-nftrtpproxy.conf",
	"/etc/sysctl.d/61-nftrtpproxy-reserved-ports.conf",
	"/usr/lib/modules-load.d/nftrtpproxy.conf",
}

// hostState is what the package must leave alone on the test's host when
// NFTRTPPROXY_SKIP_HOST_SETUP=1: its forwarding, conntrack settings,
// reserved ports and ruleset.
var hostState = []string{
	"/proc/sys/net/ipv4/ip_forward",
	"/proc/sys/net/ipv6/conf/all/forwarding",
	"/proc/sys/net/netfilter/nf_conntrack_acct",
	"/proc/sys/net/netfilter/nf_conntrack_events",
	"/proc/sys/net/ipv4/ip_local_reserved_ports",
}

func readHostState(t *testing.T) map[string]string {
	t.Helper()
	st := map[string]string{}
	for _, p := range hostState {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		st[p] = string(b)
	}
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	st["nft list tables"] = string(out)
	return st
}

func checkHostUnchanged(t *testing.T, when string, before map[string]string) {
	t.Helper()
	for k, v := range readHostState(t) {
		if v != before[k] {
			t.Errorf("%s the host's %s changed from %q to %q", when, k, before[k], v)
		}
	}
}

// dpkg runs dpkg with the package's host setup skipped, waiting while
// another dpkg or apt holds the lock.
func dpkg(t *testing.T, args ...string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(3 * time.Second) {
		cmd := exec.Command("dpkg", args...)
		cmd.Env = append(os.Environ(), "NFTRTPPROXY_SKIP_HOST_SETUP=1")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Logf("dpkg %s:\n%s", strings.Join(args, " "), out)
			return
		}
		if !strings.Contains(string(out), "lock") || time.Now().After(deadline) {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func installed() bool { return exec.Command("dpkg-query", "-W", "nftrtpproxy").Run() == nil }

// buildDeb returns $NFTRTPPROXY_DEB, or builds the package with make deb.
func buildDeb(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NFTRTPPROXY_DEB"); p != "" {
		return p
	}
	dir := t.TempDir()
	deb := filepath.Join(dir, "nftrtpproxy.deb")
	// The binaries go to the repository's bin/static, which
	// packaging/nfpm.yaml names (nfpm expands no variables in its paths).
	out, err := exec.Command("make", "-C", "..", "deb", "DEB="+deb).CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	return deb
}

// TestDebianPackage installs the package with dpkg -i, runs the installed
// daemon with the installed configuration (its addresses the lab's) in the
// lab's router namespace, relays a call set up with the installed
// nftrtpctl, and purges the package: every file goes, and the host's
// sysctls and ruleset never change.
func TestDebianPackage(t *testing.T) {
	lab := newLab(t)
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("needs dpkg")
	}
	if installed() {
		t.Skip("nftrtpproxy is installed on this host; the test would replace it")
	}
	for _, p := range []string{"/etc/nftrtpproxy", "/var/lib/nftrtpproxy"} {
		if _, err := os.Stat(p); err == nil {
			t.Skipf("%s exists on this host; purging the test's package would remove it", p)
		}
	}
	deb := buildDeb(t)
	before := readHostState(t)
	t.Cleanup(func() {
		if installed() {
			dpkg(t, "--purge", "nftrtpproxy")
		}
	})
	dpkg(t, "-i", deb)
	for _, p := range packageFiles {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	checkHostUnchanged(t, "after dpkg -i", before)
	// -check runs the host checks too, which refuse gate addresses the
	// host lacks: the lab's router has the installed config's addresses.
	if out, err := lab.Router.Run(context.Background(), "/usr/sbin/nftrtpproxy", "-check"); err != nil ||
		!strings.Contains(string(out), "/etc/nftrtpproxy/nftrtpproxy.toml: configuration valid") {
		t.Errorf("nftrtpproxy -check of the installed config: %v\n%s", err, out)
	}

	relayWithInstalled(t, lab)

	dpkg(t, "--purge", "nftrtpproxy")
	for _, p := range append(packageFiles, "/etc/nftrtpproxy", "/var/lib/nftrtpproxy") {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after purge %s: %v, want it gone", p, err)
		}
	}
	if installed() {
		t.Error("dpkg still knows nftrtpproxy after purge")
	}
	checkHostUnchanged(t, "after dpkg --purge", before)
}

// installedConfig is /etc/nftrtpproxy/nftrtpproxy.toml with the gates on
// the lab's router addresses and the journal in stateDir.
func installedConfig(t *testing.T, lab *netlab.Lab, stateDir string) string {
	t.Helper()
	b, err := os.ReadFile("/etc/nftrtpproxy/nftrtpproxy.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for old, new := range map[string]string{
		`address = "192.0.2.1"`:              fmt.Sprintf("address = %q", lab.RouterExtAddr),
		`address = "10.0.0.1"`:               fmt.Sprintf("address = %q", lab.RouterIntAddr),
		`state-dir = "/var/lib/nftrtpproxy"`: fmt.Sprintf("state-dir = %q", stateDir),
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("the installed config has no %s:\n%s", old, cfg)
		}
		cfg = strings.Replace(cfg, old, new, 1)
	}
	path := filepath.Join(t.TempDir(), "nftrtpproxy.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func relayWithInstalled(t *testing.T, lab *netlab.Lab) {
	t.Helper()
	config := installedConfig(t, lab, t.TempDir())
	d := launch(t, lab.Router, t.TempDir(), "/usr/sbin/nftrtpproxy", "-config", config)
	defer d.stop()
	ctl := func(args ...string) []byte {
		t.Helper()
		out, err := lab.Router.Run(ctx(t), "/usr/bin/nftrtpctl", args...)
		if err != nil {
			t.Fatalf("nftrtpctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := lab.Router.Run(ctx(t), "/usr/bin/nftrtpctl", "switchboards"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the installed daemon did not answer within 10s")
		}
	}
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	callID := "pkg-" + netlab.RandomSuffix()
	var s switchboard.Session
	out := ctl("-o", "json", "alloc", "--switchboard", "edge", "-a", a.addr.String(), "-b", b.addr.String(), "--label", "call-id="+callID)
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("alloc printed %s: %v", out, err)
	}
	if p := s.GateA.Port(); p < 20000 || p > 29999 {
		t.Errorf("gate a %s: not in the installed config's 20000-29999", s.GateA)
	}
	a.send(t, s.GateA, 20, true)
	expect(t, "callee RTP", b.rtpR, s.GateB, 20)
	b.send(t, s.GateB, 20, false)
	expect(t, "caller RTP", a.rtpR, s.GateA, 20)

	ctl("terminate", callID)
	if n := ctl("-o", "json", "count"); !strings.Contains(string(n), `"sessions": 0`) {
		t.Errorf("count after terminate: %s", n)
	}
	b.rtpR.Reset()
	a.send(t, s.GateA, 5, false)
	expectNothing(t, "callee RTP after terminate", b.rtpR)
}

// TestMakeInstallAndUninstall installs into a DESTDIR the way a host
// without dpkg gets the files, and uninstalls: the unit runs the binary
// under PREFIX, and only the operator's files in SYSCONFDIR stay.
func TestMakeInstallAndUninstall(t *testing.T) {
	dest := t.TempDir()
	bin := t.TempDir()
	runMake := func(target string) {
		t.Helper()
		out, err := exec.Command("make", "-C", "..", target, "DESTDIR="+dest, "PREFIX=/opt/nrp", "BIN="+bin).CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	runMake("install")
	want := []string{"/etc/nftrtpproxy/nftrtpproxy.toml", "/etc/sysctl.d/61-nftrtpproxy-reserved-ports.conf",
		"/opt/nrp/bin/nftrtpctl", "/opt/nrp/lib/modules-load.d/nftrtpproxy.conf", "/opt/nrp/lib/sysctl.d/60-nftrtpproxy.conf",
		"/opt/nrp/lib/systemd/system/nftrtpproxy.service", "/opt/nrp/sbin/nftrtpproxy"}
	if diff := cmp.Diff(want, files(t, dest)); diff != "" {
		t.Errorf("installed (-want +got):\n%s", diff)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "/opt/nrp/lib/systemd/system/nftrtpproxy.service"))
	if err != nil || !strings.Contains(string(unit), "\nExecStart=/opt/nrp/sbin/nftrtpproxy -config /etc/nftrtpproxy/nftrtpproxy.toml\n") {
		t.Errorf("unit (%v):\n%s", err, unit)
	}
	runMake("uninstall")
	if diff := cmp.Diff(want[:2], files(t, dest)); diff != "" {
		t.Errorf("left after uninstall (-want +got):\n%s", diff)
	}
}

// files lists the regular files under root, as absolute paths below it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var l []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			l = append(l, strings.TrimPrefix(p, root))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

package netlab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// netnsDir is where `ip netns` bind-mounts named namespaces.
const netnsDir = "/run/netns"

// Available reports nil when labs can be built here: on Linux, as root, with
// the ip command, and `ip netns add` works (it does not inside some
// containers). Otherwise it says why, for tests to skip with. It creates and
// deletes a probe namespace.
func Available() error {
	if err := preflight(); err != nil {
		return err
	}
	probe := "nrp-probe-" + RandomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addErr := ipCmd(ctx, "netns", "add", probe)
	// Deleted with a context of its own: an add killed by the timeout on a
	// loaded machine may still have created the namespace.
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	delErr := ipCmd(dctx, "netns", "del", probe)
	switch {
	case addErr != nil:
		return fmt.Errorf("netlab: cannot create network namespaces: %w", addErr)
	case delErr != nil:
		return fmt.Errorf("netlab: cannot delete probe namespace %q: %w", probe, delErr)
	}
	return nil
}

// preflight checks what can be checked without creating anything.
func preflight() error {
	if err := supported(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("netlab: not root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netlab: the ip command of iproute2 is needed (apt-get install iproute2): %w", err)
	}
	return nil
}

// ipCmd runs the host's ip command; the error carries its output.
func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w", strings.Join(args, " "), withOutput(err, out))
	}
	return nil
}

// withOutput appends a failed command's output, if any, to its error.
func withOutput(err error, out []byte) error {
	if s := strings.TrimSpace(string(out)); s != "" {
		return fmt.Errorf("%w: %s", err, s)
	}
	return err
}

// sysctl is one setting under /proc/sys, named by its path there.
type sysctl struct{ path, value string }

// nsSysctls apply to every namespace of a lab before its interfaces exist.
// Without DAD on link-local addresses (the lab's global ones are added
// nodad), the router cannot send a neighbour solicitation on a new link for
// about two seconds, since it sources them from its link-local address, so
// the first forwarded IPv6 packets waited that long.
var nsSysctls = [...]sysctl{
	{"net/ipv6/conf/all/accept_dad", "0"},
	{"net/ipv6/conf/default/accept_dad", "0"},
}

// routerSysctls make the router forward both families and give the relay
// per-flow counters and events. With the default nf_conntrack_events=2,
// flows created before a listener subscribed never report DESTROY.
var routerSysctls = [...]sysctl{
	{"net/ipv4/ip_forward", "1"},
	{"net/ipv6/conf/all/forwarding", "1"},
	{"net/netfilter/nf_conntrack_acct", "1"},
	{"net/netfilter/nf_conntrack_events", "1"},
}

// setupRouter loads conntrack if need be and sets the router's sysctls.
func (n *NS) setupRouter(ctx context.Context) error {
	if err := n.ensureConntrack(ctx); err != nil {
		return err
	}
	return n.setSysctls(routerSysctls[:])
}

// setSysctls writes settings under /proc/sys from a thread inside the
// namespace: the net part of /proc/sys shows the writing thread's namespace.
func (n *NS) setSysctls(settings []sysctl) error {
	return n.Do(func() error {
		for _, s := range settings {
			if err := os.WriteFile(filepath.Join("/proc/sys", s.path), []byte(s.value), 0); err != nil {
				return fmt.Errorf("netlab: %s: sysctl %s=%s: %w", n.Name, strings.ReplaceAll(s.path, "/", "."), s.value, err)
			}
		}
		return nil
	})
}

// ensureConntrack makes the per-namespace nf_conntrack sysctls exist. Where
// nf_conntrack is built in (as on the kernel these labs were written on) or
// already loaded they do from the start. Otherwise it tries modprobe, then an
// nftables rule with a ct expression in the namespace, which makes the
// kernel load nf_conntrack on its own.
func (n *NS) ensureConntrack(ctx context.Context) error {
	if n.hasConntrack() {
		return nil
	}
	_ = exec.CommandContext(ctx, "modprobe", "nf_conntrack").Run()
	if n.hasConntrack() {
		return nil
	}
	const probe = "table inet netlab_ct_probe { chain c { ct state new } }\ndelete table inet netlab_ct_probe\n"
	cmd := n.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(probe)
	out, err := cmd.CombinedOutput()
	if n.hasConntrack() {
		return nil
	}
	return fmt.Errorf("netlab: %s: no nf_conntrack sysctls even after modprobe nf_conntrack and an nft ct rule (nft: %v): the kernel lacks conntrack",
		n.Name, withOutput(err, out))
}

// hasConntrack reports whether the namespace has the conntrack sysctls.
func (n *NS) hasConntrack() bool {
	err := n.Do(func() error {
		_, err := os.Stat("/proc/sys/net/netfilter/nf_conntrack_events")
		return err
	})
	return err == nil
}

// remove kills the processes inside the namespace, waits for them to die and
// deletes the namespace. A namespace already gone is not an error.
func (n *NS) remove(ctx context.Context) error {
	if _, err := os.Stat(n.Path()); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := n.killAll(ctx); err != nil {
		return err
	}
	if err := ipCmd(ctx, "netns", "del", n.Name); err != nil {
		if _, serr := os.Stat(n.Path()); errors.Is(serr, fs.ErrNotExist) {
			return nil // deleted by someone else meanwhile
		}
		return fmt.Errorf("netlab: delete namespace %q: %w", n.Name, err)
	}
	return nil
}

// killAll sends SIGKILL to every process in the namespace but this one and
// waits until none is left.
func (n *NS) killAll(ctx context.Context) error {
	n.killCommands()
	for {
		pids, err := n.pids(ctx)
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netlab: %s: processes %v still running: %w", n.Name, pids, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pids lists the processes inside the namespace, this one excluded (it is
// there only through sockets, which `ip netns pids` does not see, or a thread
// inside Do).
func (n *NS) pids(ctx context.Context) ([]int, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", n.Name).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: ip netns pids: %w", n.Name, withOutput(err, out))
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("netlab: %s: ip netns pids: unexpected %q", n.Name, f)
		}
		if pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// Command nftrtpdemo is `make demo`: it builds a caller–router–callee lab of
// network namespaces, starts nftrtpproxy in the router with
// examples/demo.toml, allocates a session with nftrtpctl, sends RTP and RTCP
// both ways, prints what arrived and from which address and the session's
// kernel counters, and tears everything down. It needs root.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

const packets = 50

func main() {
	bin := flag.String("bin", "bin", "directory with nftrtpproxy and nftrtpctl")
	config := flag.String("config", "examples/demo.toml", "daemon configuration; its state-dir is replaced by a temporary one")
	flag.Parse()
	if err := run(*bin, *config); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(bin, configPath string) error {
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("the demo needs root and network namespaces: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	step("building the lab: caller <-> router <-> callee (network namespaces)")
	lab, err := netlab.New(ctx, netlab.Options{})
	if err != nil {
		return err
	}
	defer func() {
		step("tearing down the lab")
		if err := lab.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
		}
	}()
	fmt.Printf("   caller %s  --  %s router %s  --  callee %s\n", lab.CallerAddr, lab.RouterExtAddr, lab.RouterIntAddr, lab.CalleeAddr)
	stop, logPath, err := startDaemon(ctx, lab, bin, configPath)
	if err != nil {
		return err
	}
	defer stop()
	return call(ctx, lab, bin, logPath)
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

// startDaemon runs nftrtpproxy in the router with a private state dir and
// waits until its API answers.
func startDaemon(ctx context.Context, lab *netlab.Lab, bin, configPath string) (func(), string, error) {
	b, err := os.ReadFile(configPath)
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "nftrtpproxy-demo-")
	if err != nil {
		return nil, "", err
	}
	cfg := regexp.MustCompile(`(?m)^state-dir\s*=.*$`).ReplaceAllString(string(b), fmt.Sprintf("state-dir = %q", filepath.Join(dir, "state")))
	cfgPath := filepath.Join(dir, "demo.toml")
	logPath := filepath.Join(dir, "nftrtpproxy.log")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, "", err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	step("starting nftrtpproxy in the router: " + configPath)
	cmd := lab.Router.Command(context.Background(), filepath.Join(bin, "nftrtpproxy"), "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		os.RemoveAll(dir)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := ctl(ctx, lab, bin, "switchboards"); err == nil {
			return stop, logPath, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			stop()
			return nil, "", fmt.Errorf("daemon did not answer within 10s:\n%s", log)
		}
	}
}

// ctl runs nftrtpctl in the router namespace and echoes the command.
func ctl(ctx context.Context, lab *netlab.Lab, bin string, args ...string) ([]byte, error) {
	out, err := lab.Router.Run(ctx, filepath.Join(bin, "nftrtpctl"), args...)
	if err != nil {
		return out, fmt.Errorf("nftrtpctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

type side struct {
	name        string
	rtp, rtcp   *net.UDPConn
	rtpR, rtcpR *netlab.Receiver
}

func open(ns *netlab.NS, name string, ap netip.AddrPort) (*side, error) {
	s := &side{name: name}
	var err error
	if s.rtp, err = ns.ListenUDP(ap); err != nil {
		return nil, err
	}
	if s.rtcp, err = ns.ListenUDP(netip.AddrPortFrom(ap.Addr(), ap.Port()+1)); err != nil {
		return nil, err
	}
	s.rtpR, s.rtcpR = netlab.Receive(s.rtp), netlab.Receive(s.rtcp)
	return s, nil
}

func (s *side) close() { s.rtpR.Close(); s.rtcpR.Close() }

func call(ctx context.Context, lab *netlab.Lab, bin, logPath string) error {
	callerAP := netip.AddrPortFrom(lab.CallerAddr, 4000)
	calleeAP := netip.AddrPortFrom(lab.CalleeAddr, 5000)
	args := []string{"-o", "json", "alloc", "--switchboard", "edge", "-a", callerAP.String(), "-b", calleeAP.String()}
	step("nftrtpctl " + strings.Join(args, " "))
	out, err := ctl(ctx, lab, bin, args...)
	if err != nil {
		return err
	}
	fmt.Print(string(out))
	var sess switchboard.Session
	if err := json.Unmarshal(out, &sess); err != nil {
		return fmt.Errorf("alloc answer: %w", err)
	}
	caller, err := open(lab.Caller, "caller", callerAP)
	if err != nil {
		return err
	}
	defer caller.close()
	callee, err := open(lab.Callee, "callee", calleeAP)
	if err != nil {
		return err
	}
	defer callee.close()

	step(fmt.Sprintf("sending %d RTP + %d RTCP packets each way (20 ms apart)", packets, packets/5))
	errs := make(chan error, 2)
	go func() { errs <- sendBoth(caller, sess.GateA) }()
	go func() { errs <- sendBoth(callee, sess.GateB) }()
	if err := errors.Join(<-errs, <-errs); err != nil {
		return err
	}
	wait, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = caller.rtpR.WaitCount(wait, packets)
	_ = callee.rtpR.WaitCount(wait, packets)
	cancel()

	step("what arrived")
	ok := report(callee, sess.GateB, "caller's") && report(caller, sess.GateA, "callee's")

	step("nftrtpctl show " + sess.ID + "  (counters from conntrack)")
	if out, err := ctl(ctx, lab, bin, "-o", "json", "show", sess.ID); err == nil {
		printLegs(out)
	} else {
		return err
	}
	step("nft list table inet nftrtpproxy  (the session is map elements, not rules)")
	if out, err := lab.Router.Run(ctx, "nft", "list", "table", "inet", "nftrtpproxy"); err == nil {
		fmt.Print(string(out))
	}
	step("nftrtpctl delete " + sess.ID)
	if _, err := ctl(ctx, lab, bin, "delete", sess.ID); err != nil {
		return err
	}
	if !ok {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("media did not cross the relay both ways; daemon log:\n%s", log)
	}
	fmt.Println("\nRTP and RTCP crossed the relay both ways inside the kernel; no packet reached user space.")
	return nil
}

func sendBoth(s *side, gate netip.AddrPort) error {
	rtcp := netip.AddrPortFrom(gate.Addr(), gate.Port()+1)
	if err := netlab.SendRTP(s.rtcp, rtcp, 0xfeed, packets/5, time.Millisecond); err != nil {
		return err
	}
	return netlab.SendRTP(s.rtp, gate, 0xbeef, packets, 20*time.Millisecond)
}

// report prints what s received and says whether it is complete and came
// from the relay's gate only.
func report(s *side, gate netip.AddrPort, from string) bool {
	rtcpGate := netip.AddrPortFrom(gate.Addr(), gate.Port()+1)
	rtp, rtcp := s.rtpR.Sources(), s.rtcpR.Sources()
	fmt.Printf("   %s got %d/%d of the %s RTP, from %v\n", s.name, s.rtpR.Count(), packets, from, keys(rtp))
	fmt.Printf("   %s got %d/%d of the %s RTCP, from %v\n", s.name, s.rtcpR.Count(), packets/5, from, keys(rtcp))
	return rtp[gate] == packets && len(rtp) == 1 && rtcp[rtcpGate] == packets/5 && len(rtcp) == 1
}

func keys(m map[netip.AddrPort]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s (%d)", k, v))
	}
	return out
}

func printLegs(out []byte) {
	var d switchboard.Details
	if err := json.Unmarshal(out, &d); err != nil {
		fmt.Print(string(out))
		return
	}
	fmt.Printf("   %-7s %-22s %-22s %-22s %8s %8s\n", "leg", "enters at", "sent to", "sent from", "packets", "bytes")
	for _, l := range d.Legs {
		fmt.Printf("   %-7s %-22s %-22s %-22s %8d %8d\n", l.Name, l.Gate, l.Peer, l.Source, l.Packets, l.Bytes)
	}
}

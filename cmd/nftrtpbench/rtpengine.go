package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// rtpengineNG is rtpengine's ng socket inside the router namespace.
var rtpengineNG = netip.MustParseAddrPort("127.0.0.1:2223")

// rtpengine is Debian's rtpengine daemon in user space (--table=-1: no
// kernel module) in a lab's router namespace.
type rtpengine struct {
	cmd  *exec.Cmd
	done chan error
	log  *os.File
	dir  string
}

// startRTPEngine runs path in the router with the given --interface values
// and port range, and waits until it answers an ng ping. Deleted calls are
// freed at once (--delete-delay=0, as nftrtpproxy does) and idle calls live
// an hour (the control-plane test holds calls without media).
func startRTPEngine(ctx context.Context, lab *netlab.Lab, path string, ifaces []string, portMin, portMax int) (*rtpengine, error) {
	dir, err := os.MkdirTemp("", "rtpengine-bench-")
	if err != nil {
		return nil, err
	}
	r := &rtpengine{dir: dir}
	if r.log, err = os.Create(filepath.Join(dir, "rtpengine.log")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{"--config-file=none", "--table=-1", "--foreground", "--log-stderr",
		"--listen-ng=" + rtpengineNG.String(), "--port-min=" + strconv.Itoa(portMin), "--port-max=" + strconv.Itoa(portMax),
		"--delete-delay=0", "--timeout=3600", "--silent-timeout=3600", "--final-timeout=0"}
	for _, i := range ifaces {
		args = append(args, "--interface="+i)
	}
	r.cmd = lab.Router.Command(context.Background(), path, args...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.cmd = nil
		r.close()
		return nil, fmt.Errorf("rtpengine: %w (make bench installs Debian's rtpengine-daemon)", err)
	}
	r.done = make(chan error, 1)
	go func() { r.done <- r.cmd.Wait() }()
	if err := r.waitPing(ctx, lab); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *rtpengine) waitPing(ctx context.Context, lab *netlab.Lab) error {
	c, err := dialNG(lab.Router, rtpengineNG)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-r.done:
			r.cmd = nil
			return fmt.Errorf("rtpengine exited (%v); log:\n%s", err, tail(r.log.Name()))
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := c.do(pctx, map[string]any{"command": "ping"})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("rtpengine did not answer ng ping within 20s (%v); log:\n%s", err, tail(r.log.Name()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pid is rtpengine's process id, or 0 when it is not running.
func (r *rtpengine) pid() int {
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

func (r *rtpengine) close() {
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		r.cmd = nil
	}
	r.log.Close()
	os.RemoveAll(r.dir)
}

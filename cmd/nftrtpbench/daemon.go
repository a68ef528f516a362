package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
)

// The daemon's control addresses inside the router namespace.
const (
	daemonHTTP = "127.0.0.1:7780"
	daemonNG   = "127.0.0.1:22222"
)

// gateSpec is one switchboard of a benchmark configuration.
type gateSpec struct {
	name         string
	aName, aAddr string
	bName, bAddr string
	ports        string
	extra        string // TOML keys of the switchboard table, e.g. its timeouts
}

// daemonConfig renders a configuration with the given switchboards;
// defaults is TOML for the [defaults] table (may be empty) and the state
// directory is left as @STATE@ for stateConfig.
func daemonConfig(defaults string, sbs []gateSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state-dir = \"@STATE@\"\n[control]\nhttp = %q\nng = %q\n", daemonHTTP, daemonNG)
	if defaults != "" {
		fmt.Fprintf(&b, "[defaults]\n%s\n", defaults)
	}
	for _, s := range sbs {
		fmt.Fprintf(&b, "[[switchboard]]\nname = %q\n", s.name)
		fmt.Fprintf(&b, "gate-a = { name = %q, address = %q, ports = %q }\n", s.aName, s.aAddr, s.ports)
		fmt.Fprintf(&b, "gate-b = { name = %q, address = %q, ports = %q }\n", s.bName, s.bAddr, s.ports)
		if s.extra != "" {
			fmt.Fprintf(&b, "%s\n", s.extra)
		}
	}
	return b.String()
}

// stateConfig puts dir in place of the configuration's @STATE@.
func stateConfig(config, dir string) string { return strings.ReplaceAll(config, "@STATE@", dir) }

// daemon is nftrtpproxy running in a lab's router namespace, with a
// private state directory.
type daemon struct {
	lab    *netlab.Lab
	bin    string
	dir    string
	config string
	args   []string // flags besides -config
	cmd    *exec.Cmd
	done   chan error
	log    *os.File
	api    *httpapi.Client
}

// startDaemon writes config and starts the daemon with args besides
// -config; it returns once the API answers, with the time from start to
// serving.
func startDaemon(ctx context.Context, lab *netlab.Lab, bin, config string, args ...string) (*daemon, time.Duration, error) {
	dir, err := os.MkdirTemp("", "nftrtpproxy-bench-")
	if err != nil {
		return nil, 0, err
	}
	d := &daemon{lab: lab, bin: bin, dir: dir, config: filepath.Join(dir, "nftrtpproxy.toml"), args: args,
		api: &httpapi.Client{Base: "http://" + daemonHTTP, HTTP: nsHTTPClient(lab.Router, 16)}}
	if err := os.WriteFile(d.config, []byte(stateConfig(config, filepath.Join(dir, "state"))), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, 0, err
	}
	if d.log, err = os.Create(filepath.Join(dir, "daemon.log")); err != nil {
		os.RemoveAll(dir)
		return nil, 0, err
	}
	took, err := d.start(ctx, time.Minute)
	if err != nil {
		d.close()
		return nil, 0, err
	}
	return d, took, nil
}

// errNotServing is a daemon that did not answer within the time allowed.
var errNotServing = errors.New("nftrtpproxy did not serve in time")

// start runs the daemon and waits up to limit for its API to answer.
func (d *daemon) start(ctx context.Context, limit time.Duration) (time.Duration, error) {
	d.cmd = d.lab.Router.Command(context.Background(), filepath.Join(d.bin, "nftrtpproxy"), append([]string{"-config", d.config}, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	begin := time.Now()
	if err := d.cmd.Start(); err != nil {
		d.cmd = nil
		return 0, err
	}
	d.done = make(chan error, 1)
	go func() { d.done <- d.cmd.Wait() }()
	deadline := begin.Add(limit)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, err := d.api.Switchboards(c)
		cancel()
		if err == nil {
			return time.Since(begin), nil
		}
		select {
		case werr := <-d.done:
			d.cmd = nil
			return 0, fmt.Errorf("nftrtpproxy exited (%v) before serving; log:\n%s", werr, tail(d.log.Name()))
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return time.Since(begin), fmt.Errorf("%w (%s); log:\n%s", errNotServing, limit, tail(d.log.Name()))
		}
	}
}

// restart kills the daemon with SIGKILL, as a crash would, starts it again
// on the same state and returns the time from the new start to serving,
// waiting up to limit.
func (d *daemon) restart(ctx context.Context, limit time.Duration) (time.Duration, error) {
	d.signal(syscall.SIGKILL)
	return d.start(ctx, limit)
}

// signal sends sig and waits up to 10 s for the process to end.
func (d *daemon) signal(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
}

// pid is the daemon's process id, or 0 when it is not running.
func (d *daemon) pid() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// rss returns the daemon's resident set (VmRSS) in bytes.
func (d *daemon) rss() (int64, error) {
	if d.cmd == nil {
		return 0, errors.New("daemon not running")
	}
	return rssOf(d.cmd.Process.Pid)
}

// rssOf returns the resident set (VmRSS) of process pid in bytes.
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// parseVmRSS reads the "VmRSS:  1234 kB" line of /proc/<pid>/status.
func parseVmRSS(status []byte) (int64, error) {
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("status: no VmRSS line")
}

// close stops the daemon (SIGTERM) and removes its state directory.
func (d *daemon) close() {
	d.signal(syscall.SIGTERM)
	if d.log != nil {
		d.log.Close()
	}
	os.RemoveAll(d.dir)
}

// nsHTTPClient returns an HTTP client whose connections are dialled inside
// ns and kept alive (netlab's client dials anew for every request, which a
// load test would measure instead of the daemon).
func nsHTTPClient(ns *netlab.NS, conns int) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial,
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}}
}

// tail returns the end of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

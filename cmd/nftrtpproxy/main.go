// Command nftrtpproxy is the media relay daemon: it reads a TOML
// configuration of switchboards, installs its nftables table, restores its
// sessions from the journal in the state directory, and serves the control
// APIs until SIGTERM or SIGINT. Media is relayed by the kernel; the daemon
// only installs and removes state, so stopping it (even with SIGKILL) does
// not interrupt calls.
//
// Usage:
//
//	nftrtpproxy -config /etc/nftrtpproxy/nftrtpproxy.toml [-log-level debug]
//	nftrtpproxy -check [-config FILE]   validate the config and the host; exit 0 or 1
//	nftrtpproxy -version
//
// -cpuprofile FILE writes a Go CPU profile of the whole run to FILE, flushed
// when the daemon stops on SIGTERM or SIGINT (not on SIGKILL): a debugging
// aid, off by default (make bench-profile uses it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/lrkproxy"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/mediaproxy"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngcalls"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/rtpproxy"
	"github.com/nftrtpproxy/nftrtpproxy/internal/ctlsock"
	"github.com/nftrtpproxy/nftrtpproxy/internal/daemonconfig"
	"github.com/nftrtpproxy/nftrtpproxy/internal/statedir"
	"github.com/nftrtpproxy/nftrtpproxy/metrics"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/replication"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"golang.org/x/sync/errgroup"
)

// gcPercent is the daemon's GOGC unless the environment sets one. With Go's
// 100 the heap grows to twice the live sessions between collections: VmRSS
// at 100k sessions measured 164–213 MiB depending on when it was read;
// with 75, 136 MiB. Alloc+delete at 50k live sessions measured the same
// within 2% (BenchmarkKernelAllocDelete, alternating runs).
const gcPercent = 75

// version is set at build time with -ldflags "-X main.version=..."; empty
// means the build info's (versionString).
var version = ""

func main() {
	configPath := flag.String("config", "/etc/nftrtpproxy/nftrtpproxy.toml", "configuration file (TOML)")
	level := flag.String("log-level", "info", "log level: debug, info, warn or error")
	showVersion := flag.Bool("version", false, "print the version and exit")
	checkOnly := flag.Bool("check", false, "validate the configuration and the host, touching no kernel state, and exit 0 (valid) or 1")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file, flushed at SIGTERM or SIGINT (debugging aid)")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if *showVersion {
		fmt.Println("nftrtpproxy", versionString())
		return
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "nftrtpproxy: -log-level %q: %v\n", *level, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	if *checkOnly {
		if err := check(*configPath, os.Stdout, log); err != nil {
			fmt.Fprintln(os.Stderr, "nftrtpproxy:", err)
			os.Exit(1)
		}
		return
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nftrtpproxy:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = run(ctx, *configPath, log)
	if perr := stopProfile(); perr != nil {
		log.Warn("cpu profile not written", "err", perr)
	}
	if err != nil {
		log.Error("nftrtpproxy stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, configPath string, log *slog.Logger) error {
	cfg, err := daemonconfig.Load(configPath)
	if err != nil {
		return err
	}
	// One daemon per state directory, locked before any kernel change.
	lock, err := statedir.Acquire(cfg.StateDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	if err := checkHost(ctx, cfg.Config, log); err != nil {
		return err
	}
	dp, err := relay.Open(relay.Options{})
	if err != nil {
		return err
	}
	defer dp.Close()
	met := metrics.New(cfg.Config)
	opts := switchboard.Options{Logger: log, Observer: met}
	var node *replication.Node
	if cfg.Replication.Enabled() {
		// A router of a pair starts as a standby; the node promotes it
		// once it sees the role addresses (replication.Node.Run).
		node = replication.NewNode(cfg.Replication, log)
		defer node.Close()
		opts.Replica, opts.Standby = node.Replica(), true
	}
	mgr := switchboard.NewManager(cfg.Config, met.Dataplane(dp), opts)
	defer mgr.Close()
	watchEnds := mgr.Subscribe() // metrics, end log, notifications (observe.go)
	defer watchEnds.Close()
	// The call table (of every protocol) hears of every session end; it
	// subscribes before the restore so that no end falls between its
	// restore and its reading.
	callEnds := mgr.Subscribe()
	if err := mgr.Start(ctx); err != nil {
		callEnds.Close()
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return watchdog(ctx, log) })
	// The table watcher keeps the kernel's table in both roles of a pair.
	g.Go(func() error { return watchTable(ctx, dp, mgr, log) })
	deps := &frontendDeps{cfg: cfg, mgr: mgr, sdp: sdprelay.New(mgr, cfg.Switchboards...), log: log, met: met}
	if err := observe(ctx, g, deps, watchEnds); err != nil {
		callEnds.Close()
		return err
	}
	if err := startHTTP(ctx, g, deps, node); err != nil {
		callEnds.Close()
		return err
	}
	if node == nil {
		if err := startActive(ctx, g, deps, callEnds); err != nil {
			return err
		}
	} else {
		callEnds.Close() // each term as the active router subscribes anew
		g.Go(func() error { return node.Run(ctx, mgr, deps.runActive) })
	}
	log.Info("nftrtpproxy ready", "version", versionString(), "switchboards", len(cfg.Switchboards))
	// Restoring 100k sessions leaves a few hundred MiB of decoded journal
	// garbage that the runtime would hand back to the kernel only slowly:
	// collect and return it now, beside serving rather than before it.
	go debug.FreeOSMemory()
	// Tell systemd (Type=notify) that sessions are restored and the front
	// ends listen; outside systemd NOTIFY_SOCKET is unset and this is a no-op.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("systemd notify failed", "err", err)
	}
	err = g.Wait()
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	log.Info("nftrtpproxy shutting down; kernel state stays so calls keep flowing")
	return err
}

// frontendDeps is what the control front ends are built from.
type frontendDeps struct {
	cfg   *daemonconfig.Config
	mgr   *switchboard.Manager
	sdp   *sdprelay.Engine
	calls *calls.Calls
	log   *slog.Logger
	met   *metrics.Metrics
}

// startActive runs in g what only an active router runs: the Manager's
// timers and learning, and the control front ends (their call tables
// restored from the sessions' labels). It owns ends, a subscription taken
// before the restore, and closes it.
func startActive(ctx context.Context, g *errgroup.Group, d *frontendDeps, ends *switchboard.Subscription) error {
	g.Go(func() error { return d.mgr.Run(ctx) })
	d.calls = calls.New(d.mgr, d.sdp, d.cfg.Switchboards, d.cfg.Control.DefaultSwitchboard)
	d.calls.Restore()
	g.Go(func() error { defer ends.Close(); return ends.Each(ctx, d.calls.SessionEnded) })
	return startFrontends(ctx, g, d)
}

// runActive is startActive for one term as the active router of a pair:
// the control sockets are bound only now, when the router holds the
// addresses keepalived moves, and closed when ctx ends.
func (d *frontendDeps) runActive(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	term := *d
	if err := startActive(ctx, g, &term, d.mgr.Subscribe()); err != nil {
		cancel()
		return errors.Join(err, g.Wait())
	}
	return g.Wait()
}

// startHTTP serves the native API in g, and a pair's replication status at
// GET /v1/replication. It runs in both roles of a pair (a standby's
// Manager refuses changes), so its address should be the router's own.
func startHTTP(ctx context.Context, g *errgroup.Group, d *frontendDeps, node *replication.Node) error {
	addr := d.cfg.Control.HTTP
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("control http: %w", err)
	}
	l = ctlsock.Listener(l, ctlsock.NewFilter("http", d.cfg.Control.Allow.HTTP, d.log), d.log)
	api := httpapi.NewServer(d.mgr, d.sdp, d.log.With("frontend", "http"))
	api.Observe = d.met.Observe("http")
	if node == nil {
		g.Go(func() error { return api.Run(ctx, l) })
	} else {
		mux := http.NewServeMux()
		mux.Handle("GET /v1/replication", node)
		mux.Handle("/", api)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		context.AfterFunc(ctx, func() { _ = hs.Close() })
		g.Go(func() error {
			if err := hs.Serve(l); ctx.Err() == nil {
				return fmt.Errorf("http api: %w", err)
			}
			return nil
		})
	}
	d.log.Info("serving native API", "http", l.Addr().String())
	return nil
}

// ngSockets is how many sockets share the ng address, each read by one
// worker: Kamailio's processes each have a socket of their own, which the
// kernel keeps on one of them.
const ngSockets = 16

// startFrontends opens the listener of every configured control protocol
// but HTTP and runs its server in g. A listener that cannot be opened stops
// the start.
func startFrontends(ctx context.Context, g *errgroup.Group, d *frontendDeps) error {
	ctl := d.cfg.Control
	if addr := d.cfg.Control.NG; addr != "" {
		conns, err := ctlsock.ListenUDPGroup(ctx, addr, ngSockets)
		if err != nil {
			return fmt.Errorf("control ng: %w", err)
		}
		filter := ctlsock.NewFilter("ng", ctl.Allow.NG, d.log)
		for i := range conns {
			conns[i] = ctlsock.PacketConn(conns[i], filter)
		}
		backend := ngcalls.New(d.calls)
		backend.Traffic = d.met
		srv := ng.NewServer(conns, backend, ng.Options{Logger: d.log.With("frontend", "ng"),
			CacheBytes: ctl.ReplyCacheBytes, Observe: d.met.Observe("ng"), Concurrency: ngSockets})
		g.Go(func() error { return srv.Run(ctx) })
		d.log.Info("serving rtpengine ng protocol", "ng", conns[0].LocalAddr().String(), "sockets", len(conns))
	}
	if spec := d.cfg.Control.RTPProxy; spec != "" {
		sock, err := rtpproxy.Listen(spec, rtpproxy.SocketOptions{Group: ctl.SocketGroup,
			Filter: ctlsock.NewFilter("rtpproxy", ctl.Allow.RTPProxy, d.log), CacheBytes: ctl.ReplyCacheBytes})
		if err != nil {
			return fmt.Errorf("control %w", err)
		}
		srv := rtpproxy.New(d.calls, d.cfg.Switchboards, d.log.With("frontend", "rtpproxy"))
		srv.Observe = d.met.Observe("rtpproxy")
		g.Go(func() error { return srv.Run(ctx, sock) })
		d.log.Info("serving rtpproxy protocol", "rtpproxy", sock.Addr().String())
	}
	if addr := d.cfg.Control.LRKProxy; addr != "" {
		conn, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("control lrkproxy: %w", err)
		}
		conn = ctlsock.PacketConn(conn, ctlsock.NewFilter("lrkproxy", ctl.Allow.LRKProxy, d.log))
		srv, err := lrkproxy.NewServer(conn, d.calls, d.mgr, d.cfg.Switchboards, d.cfg.Control.DefaultSwitchboard,
			lrkproxy.Options{Logger: d.log.With("frontend", "lrkproxy"), CacheBytes: ctl.ReplyCacheBytes,
				Observe: d.met.Observe("lrkproxy")})
		if err != nil {
			conn.Close()
			return fmt.Errorf("control %w", err)
		}
		g.Go(func() error { return srv.Run(ctx) })
		d.log.Info("serving lrkproxy protocol", "lrkproxy", conn.LocalAddr().String())
	}
	if path := d.cfg.Control.MediaProxy; path != "" {
		srv, err := mediaproxy.NewServer(d.calls, d.cfg.Switchboards, d.cfg.Control.DefaultSwitchboard,
			mediaproxy.Options{Logger: d.log.With("frontend", "mediaproxy"), Observe: d.met.Observe("mediaproxy")})
		if err != nil {
			return fmt.Errorf("control %w", err)
		}
		l, err := mediaproxy.Listen(path, ctl.SocketGroup)
		if err != nil {
			return fmt.Errorf("control %w", err)
		}
		g.Go(func() error { return srv.Run(ctx, l) })
		d.log.Info("serving mediaproxy dispatcher protocol", "mediaproxy", path)
	}
	return nil
}

// elementSample is how many sessions' elements the table watch looks up
// after a foreign commit: enough that every set some session uses is
// likely among them, few enough that the look-ups (a handful of netlink
// requests under the Manager's lock) cost well under a millisecond.
const elementSample = 64

// watchTable puts the relay's table and sessions back whenever someone
// else removes or changes it (relay.TableWatch), or flushes a set the
// sessions need: after a foreign commit it looks up the elements of a
// sample of sessions.
func watchTable(ctx context.Context, dp relay.Dataplane, mgr *switchboard.Manager, log *slog.Logger) error {
	w := relay.NewTableWatch(dp, 0)
	if ec, ok := dp.(relay.ElementChecker); ok {
		w.Elements = func(ctx context.Context) error { return mgr.CheckSample(ctx, elementSample, ec.ElementsPresent) }
	}
	return w.Run(ctx, func(ctx context.Context, why error) {
		if _, err := mgr.Reinstall(ctx, why); err != nil {
			log.Error("reinstalling the relay table failed; retrying", "why", why, "err", err)
		}
	})
}

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
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/internal/ctlsock"
	"github.com/nftrtpproxy/nftrtpproxy/internal/statedir"
	"github.com/nftrtpproxy/nftrtpproxy/lrkproxy"
	"github.com/nftrtpproxy/nftrtpproxy/mediaproxy"
	"github.com/nftrtpproxy/nftrtpproxy/ng"
	"github.com/nftrtpproxy/nftrtpproxy/ng/ngcalls"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/rtpproxy"
	"github.com/nftrtpproxy/nftrtpproxy/sdprelay"
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *configPath, log); err != nil {
		log.Error("nftrtpproxy stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, configPath string, log *slog.Logger) error {
	cfg, err := switchboard.LoadConfig(configPath)
	if err != nil {
		return err
	}
	// One daemon per state directory, locked before any kernel change.
	lock, err := statedir.Acquire(cfg.StateDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	if err := checkHost(ctx, cfg, log); err != nil {
		return err
	}
	dp, err := relay.Open(relay.Options{})
	if err != nil {
		return err
	}
	defer dp.Close()
	mgr := switchboard.NewManager(cfg, dp, switchboard.Options{Logger: log})
	defer mgr.Close()
	// The call tables hear of every session end; they subscribe before the
	// restore so that no end falls between their restore and their reading.
	callEnds := mgr.Subscribe()
	defer callEnds.Close()
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mgr.Run(ctx) })
	g.Go(func() error { return watchdog(ctx, log) })
	g.Go(func() error { return watchTable(ctx, dp, mgr, log) })
	deps := &frontendDeps{cfg: cfg, mgr: mgr, sdp: sdprelay.New(mgr, cfg.Switchboards...), log: log}
	deps.calls = calls.New(mgr, deps.sdp, cfg.Switchboards, cfg.Control.DefaultSwitchboard)
	deps.calls.Restore()
	g.Go(func() error { return callEnds.Each(ctx, deps.calls.SessionEnded) })
	if err := startFrontends(ctx, g, deps); err != nil {
		return err
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
	cfg   *switchboard.Config
	mgr   *switchboard.Manager
	sdp   *sdprelay.Engine
	calls *calls.Calls
	log   *slog.Logger
}

// startFrontends opens the listener of every configured control protocol
// and runs its server in g. A listener that cannot be opened stops the start.
func startFrontends(ctx context.Context, g *errgroup.Group, d *frontendDeps) error {
	ctl := d.cfg.Control
	if addr := d.cfg.Control.HTTP; addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("control http: %w", err)
		}
		api := httpapi.NewServer(d.mgr, d.sdp, d.log.With("frontend", "http"))
		l = ctlsock.Listener(l, ctlsock.NewFilter("http", ctl.Allow.HTTP, d.log), d.log)
		g.Go(func() error { return api.Run(ctx, l) })
		d.log.Info("serving native API", "http", l.Addr().String())
	}
	if addr := d.cfg.Control.NG; addr != "" {
		conn, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("control ng: %w", err)
		}
		conn = ctlsock.PacketConn(conn, ctlsock.NewFilter("ng", ctl.Allow.NG, d.log))
		srv := ng.NewServer(conn, ngcalls.New(d.calls), ng.Options{Logger: d.log.With("frontend", "ng"),
			CacheBytes: ctl.ReplyCacheBytes})
		g.Go(func() error { return srv.Run(ctx) })
		d.log.Info("serving rtpengine ng protocol", "ng", conn.LocalAddr().String())
	}
	if spec := d.cfg.Control.RTPProxy; spec != "" {
		sock, err := rtpproxy.Listen(spec, rtpproxy.SocketOptions{Group: ctl.SocketGroup,
			Filter: ctlsock.NewFilter("rtpproxy", ctl.Allow.RTPProxy, d.log), CacheBytes: ctl.ReplyCacheBytes})
		if err != nil {
			return fmt.Errorf("control %w", err)
		}
		srv := rtpproxy.New(d.mgr, d.cfg.Switchboards, d.cfg.Control.DefaultSwitchboard, d.log.With("frontend", "rtpproxy"))
		ends := d.mgr.Subscribe()
		srv.Restore()
		g.Go(func() error { defer ends.Close(); return ends.Each(ctx, srv.SessionEnded) })
		g.Go(func() error { return srv.Run(ctx, sock) })
		d.log.Info("serving rtpproxy protocol", "rtpproxy", sock.Addr().String())
	}
	if addr := d.cfg.Control.LRKProxy; addr != "" {
		conn, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("control lrkproxy: %w", err)
		}
		ends := d.mgr.Subscribe() // before NewServer restores its table
		conn = ctlsock.PacketConn(conn, ctlsock.NewFilter("lrkproxy", ctl.Allow.LRKProxy, d.log))
		srv, err := lrkproxy.NewServer(conn, d.mgr, d.cfg.Switchboards, d.cfg.Control.DefaultSwitchboard,
			lrkproxy.Options{Logger: d.log.With("frontend", "lrkproxy"), CacheBytes: ctl.ReplyCacheBytes})
		if err != nil {
			ends.Close()
			conn.Close()
			return fmt.Errorf("control %w", err)
		}
		g.Go(func() error { defer ends.Close(); return ends.Each(ctx, srv.SessionEnded) })
		g.Go(func() error { return srv.Run(ctx) })
		d.log.Info("serving lrkproxy protocol", "lrkproxy", conn.LocalAddr().String())
	}
	if path := d.cfg.Control.MediaProxy; path != "" {
		ends := d.mgr.Subscribe() // before NewServer restores its table
		srv, err := mediaproxy.NewServer(d.mgr, d.cfg.Switchboards, d.cfg.Control.DefaultSwitchboard,
			mediaproxy.Options{Logger: d.log.With("frontend", "mediaproxy")})
		if err != nil {
			ends.Close()
			return fmt.Errorf("control %w", err)
		}
		g.Go(func() error { defer ends.Close(); return ends.Each(ctx, srv.SessionEnded) })
		l, err := mediaproxy.Listen(path, ctl.SocketGroup)
		if err != nil {
			return fmt.Errorf("control %w", err)
		}
		g.Go(func() error { return srv.Run(ctx, l) })
		d.log.Info("serving mediaproxy dispatcher protocol", "mediaproxy", path)
	}
	return nil
}

// watchTable puts the relay's table and sessions back whenever someone
// else removes or changes it (relay.TableWatch).
func watchTable(ctx context.Context, dp relay.Dataplane, mgr *switchboard.Manager, log *slog.Logger) error {
	return relay.NewTableWatch(dp, 0).Run(ctx, func(ctx context.Context, why error) {
		if _, err := mgr.Reinstall(ctx, why); err != nil {
			log.Error("reinstalling the relay table failed; retrying", "why", why, "err", err)
		}
	})
}

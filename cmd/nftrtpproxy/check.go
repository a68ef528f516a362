package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/nftrtpproxy/nftrtpproxy/internal/daemonconfig"
	"github.com/nftrtpproxy/nftrtpproxy/internal/hostcheck"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// versionString is the version set with -ldflags "-X main.version=...",
// else the module version the binary was built from (go install ...@v1.2.3),
// else "(devel)".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// check validates the configuration at path and runs the host checks
// without changing any kernel state: it installs no table and touches no
// journal (the host checks only read; they may load nf_conntrack). It
// prints one line saying what was checked and returns the first error:
// errRefused when the host checks refuse to serve, as the daemon would.
func check(path string, out io.Writer, log *slog.Logger) error {
	cfg, err := daemonconfig.Load(path)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "nftrtpproxy: %s: configuration valid (%d switchboards)\n", path, len(cfg.Switchboards)); err != nil {
		return err
	}
	return checkHost(context.Background(), cfg.Config, log)
}

// errRefused is a start the host checks refuse.
var errRefused = errors.New("host checks refuse to serve (see the errors above)")

// checkHost runs the host checks (internal/hostcheck) and logs each
// finding with its fix; a refusal is errRefused. It is the one call point
// both the daemon's start and -check use.
func checkHost(ctx context.Context, cfg *switchboard.Config, log *slog.Logger) error {
	findings := hostcheck.Run(ctx, cfg, hostcheck.Options{})
	for _, f := range findings {
		lv := slog.LevelWarn
		if f.Severity == hostcheck.Refuse {
			lv = slog.LevelError
		}
		log.Log(ctx, lv, "host check: "+f.What, "check", f.Check, "fix", f.Fix)
	}
	if hostcheck.Refused(findings) {
		return errRefused
	}
	return nil
}

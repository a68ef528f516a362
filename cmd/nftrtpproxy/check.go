package main

import (
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

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
// without changing any kernel state: it opens no netlink socket, installs no
// table and touches no journal. It prints one line saying what was checked
// and returns the first error.
func check(path string, out io.Writer, log *slog.Logger) error {
	cfg, err := switchboard.LoadConfig(path)
	if err != nil {
		return err
	}
	checkHost(cfg, log)
	_, err = fmt.Fprintf(out, "nftrtpproxy: %s: configuration valid (%d switchboards)\n", path, len(cfg.Switchboards))
	return err
}

// checkHost runs the host checks that need no kernel changes, warning on
// log. It is the one call point both the daemon's start and -check use.
func checkHost(_ *switchboard.Config, log *slog.Logger) {
	checkSysctls(log)
}

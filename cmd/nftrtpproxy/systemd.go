package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// watchdog sends WATCHDOG=1 to systemd at half the unit's WatchdogSec until
// ctx ends. Outside systemd, or without WatchdogSec, it returns at once.
// A daemon whose goroutines no longer run (a hung runtime, a stopped
// process) misses the pings and systemd restarts it; calls keep flowing
// meanwhile since the kernel relays them.
func watchdog(ctx context.Context, log *slog.Logger) error {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog: ignoring the environment", "err", err)
		return nil
	}
	if every <= 0 {
		return nil
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		if _, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog); err != nil {
			log.Warn("systemd watchdog notify failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

package main

import (
	"context"
	"fmt"
	"net"

	"github.com/nftrtpproxy/nftrtpproxy/metrics"
	"github.com/nftrtpproxy/nftrtpproxy/notify"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"golang.org/x/sync/errgroup"
)

// observe runs in g what follows the session ends besides the call tables
// — the metrics' count, the end log and the proxy's timeout notifications,
// from ends (none of them blocks the Manager: the notifier queues, bounded)
// — and serves the metrics when [control] metrics names an address.
func observe(ctx context.Context, g *errgroup.Group, d *frontendDeps, ends *switchboard.Subscription) error {
	notifier := notify.New(d.cfg.Notify, notify.Options{Logger: d.log.With("part", "notify")})
	endLog := metrics.NewEndLog(d.log, d.met)
	g.Go(func() error {
		return ends.Each(ctx, func(e switchboard.Ended) {
			d.met.SessionEnded(e)
			endLog.SessionEnded(e)
			notifier.SessionEnded(e)
		})
	})
	g.Go(func() error { return notifier.Run(ctx) })
	if err := d.met.Watch(d.mgr); err != nil {
		return err
	}
	addr := d.cfg.Control.Metrics
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("control metrics: %w", err)
	}
	g.Go(func() error { return d.met.Run(ctx, l) })
	d.log.Info("serving metrics", "metrics", "http://"+l.Addr().String()+"/metrics")
	return nil
}

//go:build !linux

package hostcheck

import (
	"context"
	"runtime"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Options select where the checks look.
type Options struct {
	NetNS      int
	NoModprobe bool
}

// Run reports that the host checks need Linux.
func Run(ctx context.Context, cfg *switchboard.Config, opts Options) []Finding {
	return Evaluate(cfg, Read(ctx, opts))
}

// Read reports that nothing can be read off Linux.
func Read(context.Context, Options) Readings {
	return Readings{Problems: []string{"host checks are not implemented on " + runtime.GOOS}}
}

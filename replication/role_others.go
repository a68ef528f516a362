//go:build !linux

package replication

import "context"

// addressEvents has no events off Linux: the poll finds changes.
func addressEvents(context.Context) <-chan struct{} { return nil }

//go:build !linux

package netlab

import (
	"fmt"
	"runtime"
)

// supported reports whether labs can work on this operating system.
func supported() error {
	return fmt.Errorf("netlab: network namespaces are not implemented on %s", runtime.GOOS)
}

// Do would run fn inside the namespace; network namespaces exist only on
// Linux, so it returns an error without calling fn.
func (n *NS) Do(fn func() error) error { return supported() }

package netlab

import (
	"fmt"
	"os"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netns"
)

// supported reports whether labs can work on this operating system.
func supported() error { return nil }

// Do runs fn on the calling goroutine's thread switched into the namespace
// (netns.Do).
func (n *NS) Do(fn func() error) error {
	target, err := os.Open(n.Path())
	if err != nil {
		return fmt.Errorf("netlab: namespace %q: %w", n.Name, err)
	}
	defer target.Close()
	return netns.Do(int(target.Fd()), fn)
}

package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ReadSysctls reads the named settings (dotted, as sysctl(8) names them:
// "net.ipv4.ip_forward") of the namespace fd, or of the calling thread's
// namespace when fd is 0. The net part of /proc/sys shows the namespace of
// the thread that opens it, so for another namespace the files are read
// from a thread switched into it. A setting the kernel does not have (a
// module not loaded) is absent from the map, not an error.
func ReadSysctls(fd int, names ...string) (map[string]string, error) {
	read := func() (map[string]string, error) {
		out := make(map[string]string, len(names))
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(n, ".", "/")))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("sysctl %s: %w", n, err)
			}
			out[n] = strings.TrimSpace(string(b))
		}
		return out, nil
	}
	if fd == 0 {
		return read()
	}
	var out map[string]string
	done := make(chan error, 1)
	go func() { // a goroutine of its own: if switching back fails, its thread dies with it
		done <- Do(fd, func() (err error) {
			out, err = read()
			return err
		})
	}()
	return out, <-done
}

package ctlsock

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// SocketMode is the mode of the unix control sockets: the daemon's user
// and its group may connect, nobody else.
const SocketMode = 0o660

// Restrict gives the unix socket at path SocketMode and, when group is not
// empty, that group (a name or a numeric id).
func Restrict(path, group string) error {
	if group != "" {
		gid, err := lookupGroup(group)
		if err != nil {
			return err
		}
		if err := os.Chown(path, -1, gid); err != nil {
			return fmt.Errorf("socket-group %q: %w", group, err)
		}
	}
	if err := os.Chmod(path, SocketMode); err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	return nil
}

func lookupGroup(group string) (int, error) {
	if gid, err := strconv.Atoi(group); err == nil && gid >= 0 {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("socket-group %q: %w", group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("socket-group %q: gid %q: %w", group, g.Gid, err)
	}
	return gid, nil
}

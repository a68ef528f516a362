package relay

import "golang.org/x/sys/unix"

// errNoEntry is what the kernel answers for a table or set that is missing.
var errNoEntry = unix.ENOENT

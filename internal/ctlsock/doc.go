// Package ctlsock guards the sockets of the control front ends: it drops
// datagrams and connections from sources outside an allow list (counted,
// and logged at most once a second), keeps accepting after Accept errors
// (as net/http does: a pause of 5 ms doubling to 1 s) instead of stopping
// the daemon, and restricts unix sockets to their owner and a group.
package ctlsock

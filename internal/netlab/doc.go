// Package netlab builds throw-away network labs for nftrtpproxy's kernel
// tests and demo: a caller, a router and a callee, each a network namespace,
// joined by veth pairs, with IPv4 and IPv6 addresses. Names carry a random
// suffix so labs of tests running side by side never collide, and Close
// deletes the namespaces (and with them the veths, tables and conntrack
// entries inside). Nothing here touches the host's own network.
//
// Sockets for test traffic are created inside a namespace (NS.ListenUDP)
// and stay there after the creating thread returns to the host namespace,
// so one test process can play caller and callee at once.
package netlab

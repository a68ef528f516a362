// Package netlab builds throw-away network labs for nftrtpproxy's kernel
// integration tests and its demo: a caller, a router and a callee, each a
// network namespace, joined by two veth pairs and addressed over IPv4 and
// IPv6.
//
//	caller ──veth── router ──veth── callee
//	192.0.2.10      192.0.2.1
//	2001:db8:a::10  2001:db8:a::1
//	                10.0.0.1        10.0.0.10
//	                2001:db8:b::1   2001:db8:b::10
//
// The router forwards both families and has conntrack accounting and
// events switched on (net.netfilter.nf_conntrack_acct=1,
// nf_conntrack_events=1), which is what the relay expects of its host. The
// caller and callee route everything via the router, so a lab without a
// relay is plain routing. A namespace tracks no flows until a rule in it
// needs conntrack (an nft ct or nat expression): plain routing leaves
// `conntrack -L` empty. DAD is off in every namespace, so IPv6 works the
// moment New returns.
//
// Names carry a random suffix, so labs of tests running side by side never
// collide, and Close deletes the namespaces (and with them their veths,
// nftables tables and conntrack entries), after killing any process still
// running inside. Nothing here reads or changes the host's own network
// configuration; every command runs in a namespace the lab created.
//
// Sockets for test traffic are created inside a namespace (NS.ListenUDP,
// NS.Dial) and stay there once the creating thread has returned to the
// host's namespace, so one test process can play caller and callee at once.
// SendRTP and Receiver send and count RTP-shaped datagrams on such sockets.
//
// Labs need Linux, root and the ip command of iproute2; Available says why
// not when they cannot be built, and tests skip with its message.
package netlab

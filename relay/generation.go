package relay

// Generation identifies the state of the namespace's nftables ruleset. The
// kernel bumps the generation id (NFT_MSG_GETGEN, NFTA_GEN_ID) with every
// committed transaction, by anyone, on any table of the namespace; ids
// start again after a reboot or in a new namespace, so Boot and NetNS tell
// which kernel and namespace an id belongs to. Two equal Generations (Own
// aside) mean that nothing has been committed between them.
type Generation struct {
	// Boot is the kernel's boot id (/proc/sys/kernel/random/boot_id).
	Boot string
	// NetNS is the namespace's cookie (SO_NETNS_COOKIE): never reused
	// within one boot, unlike a namespace's inode number.
	NetNS uint64
	// ID is the ruleset generation id.
	ID uint32
	// Own reports that every transaction committed in the namespace since
	// the previous call to Generation was one of this dataplane's, so the
	// table holds exactly what its batches made of it. It is false on the
	// first call and after a failed transaction.
	Own bool
}

// Same reports whether g and o name the same ruleset state of the same
// namespace in the same boot.
func (g Generation) Same(o Generation) bool {
	return g.Boot != "" && g.Boot == o.Boot && g.NetNS != 0 && g.NetNS == o.NetNS && g.ID == o.ID
}

// GenerationCounter follows a dataplane's own transactions between two
// readings of the kernel's generation: from them it tells whether a
// reading is Own, and predicts the generation the kernel is at without
// asking it. Dataplanes embed one; it is not safe for concurrent use.
type GenerationCounter struct {
	last    Generation // the last reading, Own as judged then
	seen    bool
	commits uint32 // own transactions since last
	failed  bool   // one failed since last: its effect is unknown
}

// Committed records the outcome of one of the dataplane's transactions.
func (c *GenerationCounter) Committed(err error) {
	if err != nil {
		c.failed = true
		return
	}
	c.commits++
}

// Read takes a reading of the kernel (Own ignored) and returns it with Own
// set: every transaction since the previous reading was the dataplane's.
// The kernel skips id 0 when the counter wraps; a wrap is simply not
// recognised as own, which only costs a full listing.
func (c *GenerationCounter) Read(g Generation) Generation {
	next := c.last.ID + c.commits
	g.Own = c.seen && !c.failed && next >= c.last.ID && g.ID == next &&
		g.Boot == c.last.Boot && g.NetNS == c.last.NetNS
	c.last, c.seen, c.commits, c.failed = g, true, 0, false
	return g
}

// Expected returns the generation the kernel is at if nobody else has
// committed since the last reading: that reading plus the dataplane's
// transactions since. It reports false when that is not known: no reading
// yet, the reading was not own, or a transaction failed since.
func (c *GenerationCounter) Expected() (Generation, bool) {
	g := c.last
	g.ID += c.commits
	if !c.seen || !c.last.Own || c.failed || g.ID < c.last.ID {
		return Generation{}, false
	}
	return g, true
}

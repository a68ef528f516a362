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

package relay

// Set sizes. A set created with a size hint (NFTA_SET_DESC_SIZE) gets the
// kernel's fixed-size hash (nft_hash, or nft_hash_fast for 4-byte keys)
// instead of the resizable rhashtable, whose inserts cost about twice as
// much (a session's install: 31.5 → 20.3 µs of kernel time). The hint is
// also a hard limit: the kernel refuses an element beyond it with ENFILE.
// So the size is derived from what can exist: one leg per gate port, and a
// set holds at most one element per leg. The buckets are allocated up
// front: 8 bytes × the next power of two above 4/3 × size, 16 bytes per
// slot of size, about 1 MiB per set for 50,000 ports.

// minSetSize is the smallest size given, so that a family without gates
// (whose sets stay empty) costs next to nothing but the table stays valid.
const minSetSize = 256

// setSize is the size hint of a set that holds at most n elements: n plus
// a quarter, rounded up to a power of two (the kernel rounds its buckets
// so anyway), at least minSetSize.
func setSize(n int) uint32 {
	want := max(n+n/4, minSetSize)
	size := uint32(minSetSize)
	for int(size) < want && size < 1<<31 {
		size <<= 1
	}
	return size
}

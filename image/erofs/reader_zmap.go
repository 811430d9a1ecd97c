package erofs

import (
	"encoding/binary"
	"sync"
)

// zinfo is the decoded map header of a compressed inode.
type rdZinfo struct {
	advise     uint16
	algs       [2]int
	lbits      uint
	idataSize  int64 // ztailpacking: encoded size of the inline tail pcluster
	fragOff    int64 // fragments: offset of the tail (or whole file) in the packed inode
	wholeFrag  bool  // the whole file is in the packed inode
	hasTail    bool  // ztailpacking or fragment tail: tailHead is valid
	tailHead   uint64
	inlinePos  int64 // ztailpacking: byte offset of the inline pcluster
	totalIdx   uint64
	hdrPos     int64
	compactTab rdCompactLayout

	// Extent records (COMPRESSED_FULL with Z_EROFS_ADVISE_EXTENTS).
	extents uint64 // record count
	recsz   int64  // record size: 4, 8, 16 or 32
	extMu   sync.Mutex
	extMemo rdExtMemo // resume point of the sequential record walk
}

// rdExtMemo remembers where the walk over 4- or 8-byte extent records
// stopped, so that sequential reads do not rescan from the start.
type rdExtMemo struct {
	valid  bool
	lstart int64 // logical start of the record at pos
	pos    int64
	pa     int64
}

// rdCompactLayout describes where the compact index packs of an inode lie.
type rdCompactLayout struct {
	ebase    int64  // first index byte
	initial4 uint64 // leading 4B entries (to reach 32-byte alignment)
	count2   uint64 // 2B entries after them
}

// lcluster is one decoded logical cluster index.
type rdLcluster struct {
	lcn        uint64
	typ        int
	clusterOfs int64
	delta      [2]uint64
	pblk       uint64
	cblks      uint64 // big pcluster block count from a CBLKCNT NONHEAD (0 if none)
	partial    bool
	nextPack   int64 // byte offset after this index's pack (ztailpacking inline data)
}

func (rd *Reader) zinfo(in *rdInode) (*rdZinfo, error) {
	in.zOnce.Do(func() { in.z, in.zErr = rd.loadZinfo(in) })
	return in.z, in.zErr
}

func (rd *Reader) loadZinfo(in *rdInode) (*rdZinfo, error) {
	z := &rdZinfo{hdrPos: (in.dataPos() + 7) &^ 7}
	h, err := rd.metaAt(z.hdrPos, MapHeaderSize)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if h[7]>>FragmentInodeBit != 0 {
		if rd.incompat&FeatureIncompatFragments == 0 {
			return nil, corruptf("nid %d: whole-file fragment without the fragments feature", in.nid)
		}
		z.wholeFrag = true
		z.advise = AdviseFragmentPcluster
		off := le.Uint64(h) &^ (1 << 63)
		if off > 1<<62 {
			return nil, corruptf("nid %d: fragment offset %d", in.nid, off)
		}
		z.fragOff = int64(off)
		return z, nil
	}
	z.advise = le.Uint16(h[4:])
	z.lbits = rd.blkBits + uint(h[7]&15)
	if in.layout == LayoutCompressedFull && z.advise&AdviseExtents != 0 {
		z.extents = uint64(le.Uint32(h)) | uint64(le.Uint16(h[6:]))<<32
		z.recsz = 4 << ((z.advise >> 1) & 3)
		if z.lbits > 30 {
			return nil, corruptf("nid %d: lcluster size 2^%d", in.nid, z.lbits)
		}
		return z, nil
	}
	z.algs = [2]int{int(h[6] & 15), int(h[6] >> 4)}
	if z.lbits > 30 {
		return nil, corruptf("nid %d: lcluster size 2^%d", in.nid, z.lbits)
	}
	if z.advise&AdviseFragmentPcluster != 0 {
		if rd.incompat&FeatureIncompatFragments == 0 {
			return nil, corruptf("nid %d: fragment without the fragments feature", in.nid)
		}
		z.fragOff = int64(le.Uint32(h))
	} else if z.advise&AdviseInlinePcluster != 0 {
		if rd.incompat&FeatureIncompatZtailpacking == 0 {
			return nil, corruptf("nid %d: inline pcluster without the ztailpacking feature", in.nid)
		}
		z.idataSize = int64(le.Uint16(h[2:]))
	}
	z.totalIdx = uint64((in.size + int64(1)<<z.lbits - 1) >> z.lbits)
	if in.layout == LayoutCompressedCompact {
		if z.lbits != rd.blkBits {
			return nil, corruptf("nid %d: compact indexes with lcluster size 2^%d != block size", in.nid, z.lbits)
		}
		if (z.advise&AdviseBigPcluster1 == 0) != (z.advise&AdviseBigPcluster2 == 0) {
			return nil, corruptf("nid %d: big pcluster head1/head2 flags of compact indexes differ", in.nid)
		}
		c := &z.compactTab
		c.ebase = z.hdrPos + MapHeaderSize
		c.initial4 = uint64((32-c.ebase%32)/4) & 7
		if z.advise&AdviseCompacted2B != 0 && c.initial4 < z.totalIdx {
			c.count2 = (z.totalIdx - c.initial4) &^ 15
		}
	}
	if z.idataSize != 0 || z.advise&AdviseFragmentPcluster != 0 {
		if in.size == 0 {
			return nil, corruptf("nid %d: empty file with a compressed tail", in.nid)
		}
		head, first, err := rd.findHead(in, z, uint64(in.size-1))
		if err != nil {
			return nil, err
		}
		z.hasTail = true
		z.tailHead = head.lcn
		if z.idataSize != 0 {
			z.inlinePos = first.nextPack
		}
		if z.advise&AdviseFragmentPcluster != 0 && in.layout == LayoutCompressedFull {
			z.fragOff |= int64(head.pblk) << 32
		}
	}
	return z, nil
}

// loadLcluster decodes the index of logical cluster lcn.
func (rd *Reader) loadLcluster(in *rdInode, z *rdZinfo, lcn uint64, lookahead bool) (rdLcluster, error) {
	var m rdLcluster
	var err error
	if lcn >= z.totalIdx {
		return m, corruptf("nid %d: lcluster %d beyond the %d of the file", in.nid, lcn, z.totalIdx)
	}
	if in.layout == LayoutCompressedCompact {
		m, err = rd.loadCompact(in, z, lcn, lookahead)
	} else {
		m, err = rd.loadFull(in, z, lcn)
	}
	if err != nil {
		return m, err
	}
	if m.typ != LclusterNonhead && m.clusterOfs >= int64(1)<<z.lbits {
		return m, corruptf("nid %d: lcluster %d: cluster offset %d beyond the lcluster", in.nid, lcn, m.clusterOfs)
	}
	return m, nil
}

func (rd *Reader) loadFull(in *rdInode, z *rdZinfo, lcn uint64) (rdLcluster, error) {
	pos := z.hdrPos + MapHeaderSize + 8 + int64(lcn)*LclusterIndexSize
	b, err := rd.metaAt(pos, LclusterIndexSize)
	if err != nil {
		return rdLcluster{}, err
	}
	le := binary.LittleEndian
	adv := le.Uint16(b)
	m := rdLcluster{lcn: lcn, typ: int(adv & 3), nextPack: pos + LclusterIndexSize}
	if m.typ == LclusterNonhead {
		m.clusterOfs = 1 << z.lbits
		d0 := uint64(le.Uint16(b[4:]))
		if d0&LID0CblkCnt != 0 {
			if z.advise&(AdviseBigPcluster1|AdviseBigPcluster2) == 0 {
				return m, corruptf("nid %d: lcluster %d: block count without big pclusters", in.nid, lcn)
			}
			m.cblks = d0 &^ LID0CblkCnt
			d0 = 1
		}
		m.delta = [2]uint64{d0, uint64(le.Uint16(b[6:]))}
	} else {
		m.partial = adv&LIPartialRef != 0
		m.clusterOfs = int64(le.Uint16(b[2:]))
		m.pblk = uint64(le.Uint32(b[4:]))
	}
	return m, nil
}

// rdCompactBits decodes entry i of a pack: lo bits and the type.
func rdCompactBits(pack []byte, lobits, encodebits uint, i int) (lo uint64, typ int) {
	pos := encodebits * uint(i)
	var w [4]byte
	copy(w[:], pack[pos/8:])
	v := binary.LittleEndian.Uint32(w[:]) >> (pos & 7)
	return uint64(v & (1<<lobits - 1)), int(v>>lobits) & 3
}

func (rd *Reader) loadCompact(in *rdInode, z *rdZinfo, lcn uint64, lookahead bool) (rdLcluster, error) {
	c := &z.compactTab
	big := z.advise&AdviseBigPcluster1 != 0
	pos := c.ebase
	shift := uint(2) // 4B entries
	rel := lcn
	if rel >= c.initial4 {
		pos += int64(c.initial4) * 4
		rel -= c.initial4
		if rel < c.count2 {
			shift = 1
		} else {
			pos += int64(c.count2) * 2
			rel -= c.count2
		}
	}
	pos += int64(rel) << shift
	var vcnt int
	switch {
	case shift == 2 && z.lbits <= 14:
		vcnt = 2
	case shift == 1 && z.lbits <= 12:
		vcnt = 16
	default:
		return rdLcluster{}, corruptf("nid %d: compact indexes unsupported for lcluster size 2^%d", in.nid, z.lbits)
	}
	packSize := int64(vcnt) << shift
	packPos := pos &^ (packSize - 1)
	pack, err := rd.metaAt(packPos, int(packSize))
	if err != nil {
		return rdLcluster{}, err
	}
	m := rdLcluster{lcn: lcn, nextPack: packPos + packSize}
	lobits := max(z.lbits, 12)
	encodebits := uint((packSize-4)*8) / uint(vcnt)
	i := int((pos - packPos) >> shift)
	lo, typ := rdCompactBits(pack, lobits, encodebits, i)
	m.typ = typ
	if typ == LclusterNonhead {
		m.clusterOfs = 1 << z.lbits
		if lookahead {
			d1 := uint64(0)
			j := i
			var l uint64
			var t int
			for ; j < vcnt; j++ {
				l, t = rdCompactBits(pack, lobits, encodebits, j)
				if t != LclusterNonhead {
					break
				}
				d1++
			}
			if j == vcnt && l&LID0CblkCnt == 0 && l > 0 {
				d1 += l - 1
			}
			m.delta[1] = d1
		}
		if lo&LID0CblkCnt != 0 {
			if !big {
				return m, corruptf("nid %d: lcluster %d: block count without big pclusters", in.nid, lcn)
			}
			m.cblks = lo &^ LID0CblkCnt
			m.delta[0] = 1
			return m, nil
		}
		if i+1 != vcnt {
			m.delta[0] = lo
			return m, nil
		}
		// The last entry of a pack stores delta[1]; delta[0] follows
		// from the previous entry.
		lo, typ = rdCompactBits(pack, lobits, encodebits, i-1)
		switch {
		case typ != LclusterNonhead:
			lo = 0
		case lo&LID0CblkCnt != 0:
			lo = 1
		}
		m.delta[0] = lo + 1
		return m, nil
	}
	m.clusterOfs = int64(lo)
	var nblk uint64
	if !big {
		nblk = 1
		for j := i; j > 0; {
			j--
			l, t := rdCompactBits(pack, lobits, encodebits, j)
			if t == LclusterNonhead {
				j -= int(l)
			}
			if j >= 0 {
				nblk++
			}
		}
	} else {
		for j := i; j > 0; {
			j--
			l, t := rdCompactBits(pack, lobits, encodebits, j)
			if t == LclusterNonhead {
				if l&LID0CblkCnt != 0 {
					j--
					nblk += l &^ LID0CblkCnt
					continue
				}
				if l <= 1 {
					return m, corruptf("nid %d: lcluster %d: bad delta in a big pcluster pack", in.nid, lcn)
				}
				j -= int(l) - 2
				continue
			}
			nblk++
		}
	}
	m.pblk = uint64(binary.LittleEndian.Uint32(pack[packSize-4:])) + nblk
	return m, nil
}

// findHead returns the HEAD (or PLAIN) lcluster of the extent holding
// byte off, and the lcluster first loaded for off.
func (rd *Reader) findHead(in *rdInode, z *rdZinfo, off uint64) (head, first rdLcluster, err error) {
	lcn := off >> z.lbits
	endoff := int64(off & (1<<z.lbits - 1))
	m, err := rd.loadLcluster(in, z, lcn, false)
	if err != nil {
		return m, m, err
	}
	first = m
	var back uint64
	switch m.typ {
	case LclusterPlain, LclusterHead1, LclusterHead2:
		if endoff >= m.clusterOfs {
			return m, first, nil
		}
		if lcn == 0 {
			return m, first, corruptf("nid %d: logical cluster 0 starts at offset %d", in.nid, m.clusterOfs)
		}
		back = 1
	case LclusterNonhead:
		back = m.delta[0]
	default:
		return m, first, corruptf("nid %d: lcluster %d has unknown type %d", in.nid, lcn, m.typ)
	}
	// Walk back to the head; a pcluster decodes to at most
	// rdMaxExtentSize bytes, which bounds the walk.
	maxSteps := uint64(rdMaxExtentSize>>z.lbits) + 2
	for steps := uint64(0); ; steps++ {
		if back == 0 || back > m.lcn || steps > maxSteps {
			return m, first, corruptf("nid %d: bogus lookback distance %d at lcluster %d", in.nid, back, m.lcn)
		}
		if m, err = rd.loadLcluster(in, z, m.lcn-back, false); err != nil {
			return m, first, err
		}
		switch m.typ {
		case LclusterNonhead:
			back = m.delta[0]
		case LclusterPlain, LclusterHead1, LclusterHead2:
			return m, first, nil
		default:
			return m, first, corruptf("nid %d: lcluster %d has unknown type %d", in.nid, m.lcn, m.typ)
		}
	}
}

// mapCompressed maps byte off of a compressed inode to its pcluster.
func (rd *Reader) mapCompressed(in *rdInode, off int64) (rdExtent, error) {
	z, err := rd.zinfo(in)
	if err != nil {
		return rdExtent{}, err
	}
	if z.wholeFrag {
		return rdExtent{la: 0, llen: in.size, kind: extFragment, fragOff: z.fragOff}, nil
	}
	if z.recsz != 0 {
		return rd.mapExtentRecords(in, z, off)
	}
	head, _, err := rd.findHead(in, z, uint64(off))
	if err != nil {
		return rdExtent{}, err
	}
	la := int64(head.lcn)<<z.lbits | head.clusterOfs
	// The decoded length runs to the next HEAD lcluster or the file end.
	end, err := rd.extentEnd(in, z, head)
	if err != nil {
		return rdExtent{}, err
	}
	e := rdExtent{la: la, llen: end - la, kind: extPcluster, partial: head.partial}
	if e.llen <= 0 || off >= end {
		return rdExtent{}, corruptf("nid %d: extent at %d has bad length %d", in.nid, la, e.llen)
	}
	if e.llen > rdMaxExtentSize {
		return rdExtent{}, corruptf("nid %d: extent at %d decodes to %d bytes, more than %d", in.nid, la, e.llen, rdMaxExtentSize)
	}
	switch {
	case z.hasTail && head.lcn == z.tailHead && z.idataSize != 0:
		e.pa = z.inlinePos
		e.plen = z.idataSize
		if e.pa&(rd.blkSize-1)+e.plen > rd.blkSize {
			return rdExtent{}, corruptf("nid %d: inline pcluster of %d bytes crosses a block boundary", in.nid, e.plen)
		}
	case z.hasTail && head.lcn == z.tailHead && z.advise&AdviseFragmentPcluster != 0:
		return rdExtent{la: la, llen: e.llen, kind: extFragment, fragOff: z.fragOff}, nil
	default:
		cblks, err := rd.pclusterBlocks(in, z, head)
		if err != nil {
			return rdExtent{}, err
		}
		if head.pblk > uint64(rd.size>>rd.blkBits) {
			return rdExtent{}, corruptf("nid %d: pcluster at block %d beyond the image end", in.nid, head.pblk)
		}
		e.pa = int64(head.pblk) << rd.blkBits
		e.plen = int64(cblks) << rd.blkBits
	}
	if e.plen <= 0 || e.plen > rdMaxPclusterSize || e.pa+e.plen > rd.size {
		return rdExtent{}, corruptf("nid %d: pcluster [%d,+%d) out of bounds", in.nid, e.pa, e.plen)
	}
	switch head.typ {
	case LclusterPlain:
		if e.llen > e.plen {
			return rdExtent{}, corruptf("nid %d: uncompressed pcluster of %d bytes holds %d", in.nid, e.plen, e.llen)
		}
		e.alg = algShifted
		if z.advise&AdviseInterlacedPcluster != 0 {
			e.alg = algInterlaced
		}
	case LclusterHead1:
		e.alg = z.algs[0]
	case LclusterHead2:
		e.alg = z.algs[1]
	}
	if e.alg < algShifted && rd.algs&(1<<e.alg) == 0 {
		return rdExtent{}, corruptf("nid %d: pcluster uses algorithm %s, which the superblock does not list", in.nid, AlgName(e.alg))
	}
	return e, nil
}

// extentEnd returns the logical end of the extent whose head is head.
func (rd *Reader) extentEnd(in *rdInode, z *rdZinfo, head rdLcluster) (int64, error) {
	lcn := head.lcn
	maxSteps := uint64(rdMaxExtentSize>>z.lbits) + 2
	for steps := uint64(0); ; steps++ {
		if lcn >= z.totalIdx || int64(lcn)<<z.lbits >= in.size {
			return in.size, nil
		}
		if steps > maxSteps {
			return 0, corruptf("nid %d: extent at lcluster %d too long", in.nid, head.lcn)
		}
		m, err := rd.loadLcluster(in, z, lcn, true)
		if err != nil {
			return 0, err
		}
		d := uint64(1)
		if m.typ == LclusterNonhead {
			if m.delta[1] > 0 {
				d = m.delta[1]
			}
		} else if lcn != head.lcn {
			end := int64(lcn)<<z.lbits + m.clusterOfs
			return min(end, in.size), nil
		}
		if lcn+d < lcn {
			return 0, corruptf("nid %d: lookahead overflow", in.nid)
		}
		lcn += d
	}
}

// pclusterBlocks returns the size in blocks of the pcluster whose head is head.
func (rd *Reader) pclusterBlocks(in *rdInode, z *rdZinfo, head rdLcluster) (uint64, error) {
	big1 := z.advise&AdviseBigPcluster1 != 0
	big2 := z.advise&AdviseBigPcluster2 != 0
	next := head.lcn + 1
	if (head.typ == LclusterHead1 && !big1) || ((head.typ == LclusterPlain || head.typ == LclusterHead2) && !big2) ||
		int64(next)<<z.lbits >= in.size {
		return 1, nil
	}
	m, err := rd.loadLcluster(in, z, next, false)
	if err != nil {
		return 0, err
	}
	if m.typ != LclusterNonhead {
		return 1, nil
	}
	if m.delta[0] != 1 || m.cblks == 0 {
		return 0, corruptf("nid %d: big pcluster at lcluster %d lacks its block count", in.nid, head.lcn)
	}
	if m.cblks > rdMaxPclusterSize>>rd.blkBits {
		return 0, corruptf("nid %d: pcluster of %d blocks", in.nid, m.cblks)
	}
	return m.cblks, nil
}

// Extent record fields.
const (
	rdExtPlenMask    = rdMaxPclusterSize<<1 - 1
	rdExtPlenPartial = 1 << 27
	rdExtPlenFmtBit  = 28
)

// mapExtentRecords maps off through the extent records of in: 4-byte
// records hold only encoded lengths (pclusters follow each other from a
// 64-bit base), 8-byte records add the physical start, one per
// lcluster; 16- and 32-byte records carry their logical start and are
// searched by bisection.
func (rd *Reader) mapExtentRecords(in *rdInode, z *rdZinfo, off int64) (rdExtent, error) {
	le := binary.LittleEndian
	pos0 := ((z.hdrPos + MapHeaderSize) + z.recsz - 1) &^ (z.recsz - 1)
	lsize := int64(1) << z.lbits
	var plen uint32
	var pa, lstart int64 = -1, 0
	lend := in.size
	last := false
	if z.recsz <= 8 {
		target := off &^ (lsize - 1)
		var pos, base int64
		if z.recsz == 4 {
			b, err := rd.metaAt(pos0, 8)
			if err != nil {
				return rdExtent{}, err
			}
			u := le.Uint64(b)
			if u > uint64(rd.size) {
				return rdExtent{}, corruptf("nid %d: extent base %d beyond the image", in.nid, u)
			}
			base, pos, lstart = int64(u), pos0+8, 0
			z.extMu.Lock()
			if m := z.extMemo; m.valid && m.lstart <= target {
				lstart, pos, base = m.lstart, m.pos, m.pa
			}
			z.extMu.Unlock()
		} else {
			lstart = target
			pos = pos0 + (lstart>>z.lbits)*z.recsz
		}
		var rpos int64
		for ; lstart <= off; lstart += lsize {
			b, err := rd.metaAt(pos, int(z.recsz))
			if err != nil {
				return rdExtent{}, err
			}
			plen = le.Uint32(b)
			if z.recsz == 4 {
				pa = base
				base += int64(plen & rdExtPlenMask)
			} else {
				pa = int64(le.Uint32(b[4:]))
			}
			rpos = pos
			pos += z.recsz
		}
		if z.recsz == 4 {
			z.extMu.Lock()
			z.extMemo = rdExtMemo{valid: true, lstart: lstart - lsize, pos: rpos, pa: pa}
			z.extMu.Unlock()
		}
		last = lstart >= (in.size+lsize-1)&^(lsize-1)
		lend = min(lstart, lend)
		lstart -= lsize
	} else {
		lstart = lend
		found := false
		l, r := uint64(0), z.extents
		for l < r {
			mid := l + (r-l)/2
			b, err := rd.metaAt(pos0+int64(mid)*z.recsz, int(z.recsz))
			if err != nil {
				return rdExtent{}, err
			}
			la := int64(le.Uint32(b[12:]))
			if z.recsz > 16 {
				la |= int64(le.Uint32(b[16:])) << 32
			}
			p := int64(le.Uint32(b[4:])) | int64(le.Uint32(b[8:])&0xffff)<<32
			if la < 0 {
				return rdExtent{}, corruptf("nid %d: extent record %d starts at %d", in.nid, mid, la)
			}
			if la > off {
				r = mid
				if la > lend {
					return rdExtent{}, corruptf("nid %d: extent records out of order", in.nid)
				}
				lend = la
			} else {
				l = mid + 1
				if off == la {
					r = min(l+1, r)
				}
				lstart, plen, pa, found = la, le.Uint32(b), p, true
			}
		}
		if !found {
			return rdExtent{}, corruptf("nid %d: no extent record covers offset %d", in.nid, off)
		}
		last = l >= z.extents
	}
	if lstart >= lend || off < lstart || off >= lend {
		return rdExtent{}, corruptf("nid %d: extent records do not cover offset %d", in.nid, off)
	}
	e := rdExtent{la: lstart, llen: lend - lstart, kind: extHole}
	if last && z.advise&AdviseFragmentPcluster != 0 {
		frag := int64(plen)
		if z.recsz > 4 {
			frag |= pa << 32
		}
		if frag < 0 {
			return rdExtent{}, corruptf("nid %d: fragment offset", in.nid)
		}
		e.kind, e.fragOff = extFragment, frag
		return e, nil
	}
	if plen&rdExtPlenMask == 0 {
		return e, nil
	}
	if e.llen > rdMaxExtentSize {
		return rdExtent{}, corruptf("nid %d: extent at %d decodes to %d bytes, more than %d", in.nid, lstart, e.llen, rdMaxExtentSize)
	}
	e.kind = extPcluster
	e.pa = pa
	e.plen = int64(plen & rdExtPlenMask)
	e.partial = plen&rdExtPlenPartial != 0
	if e.pa < 0 || e.plen > rdMaxPclusterSize || e.pa > rd.size-e.plen {
		return rdExtent{}, corruptf("nid %d: pcluster [%d,+%d) out of bounds", in.nid, e.pa, e.plen)
	}
	if fmt := plen >> rdExtPlenFmtBit; fmt != 0 {
		e.alg = int(fmt) - 1
		if e.alg >= algMax || rd.algs&(1<<e.alg) == 0 {
			return rdExtent{}, corruptf("nid %d: pcluster uses algorithm %d, which the superblock does not list", in.nid, e.alg)
		}
	} else {
		if e.llen > e.plen {
			return rdExtent{}, corruptf("nid %d: uncompressed pcluster of %d bytes holds %d", in.nid, e.plen, e.llen)
		}
		e.alg = algShifted
		if z.advise&AdviseInterlacedPcluster != 0 && (e.pa|e.plen)&(rd.blkSize-1) == 0 {
			e.alg = algInterlaced
		}
	}
	return e, nil
}

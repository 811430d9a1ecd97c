package erofs

import (
	"encoding/binary"
	"io"
)

// Kinds of extents a file offset maps to.
const (
	extHole     = iota // zeros
	extRaw             // uncompressed bytes at pa
	extPcluster        // a (possibly compressed) pcluster
	extFragment        // bytes in the packed inode at fragOff
)

// extent maps the logical range [la, la+llen) of a file.
type rdExtent struct {
	la, llen int64
	kind     int
	pa       int64 // extRaw, extPcluster: byte offset in the image
	plen     int64 // extPcluster: encoded bytes
	alg      int   // extPcluster: algorithm or algShifted/algInterlaced
	partial  bool  // extPcluster: only a prefix of the decoded data is referenced
	fragOff  int64 // extFragment: offset of la in the packed inode
}

// Pseudo algorithms for uncompressed pclusters.
const (
	algShifted    = 0x100 + iota // plain data from the pcluster start
	algInterlaced                // plain data rotated by the block offset of la
)

// readAt reads file data of in at off into p, like io.ReaderAt.
func (rd *Reader) readAt(in *rdInode, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, corruptf("negative offset")
	}
	n := 0
	for n < len(p) {
		if off >= in.size {
			return n, io.EOF
		}
		e, err := rd.mapExtent(in, off)
		if err != nil {
			return n, err
		}
		if off < e.la || off >= e.la+e.llen {
			return n, corruptf("nid %d: extent [%d,%d) does not cover offset %d", in.nid, e.la, e.la+e.llen, off)
		}
		k := int(min(int64(len(p)-n), e.la+e.llen-off, in.size-off))
		dst := p[n : n+k]
		switch e.kind {
		case extHole:
			clear(dst)
		case extRaw:
			if err := rd.readFull(dst, e.pa+(off-e.la)); err != nil {
				return n, err
			}
		case extFragment:
			if err := rd.readFragment(in, dst, e.fragOff+(off-e.la)); err != nil {
				return n, err
			}
		case extPcluster:
			buf, err := rd.pcluster(in, &e)
			if err != nil {
				return n, err
			}
			copy(dst, buf[off-e.la:])
		}
		n += k
		off += int64(k)
	}
	return n, nil
}

// mapExtent returns the extent holding byte off (< in.size) of in.
func (rd *Reader) mapExtent(in *rdInode, off int64) (rdExtent, error) {
	in.lastMu.Lock()
	e := in.last
	in.lastMu.Unlock()
	if e.llen > 0 && off >= e.la && off < e.la+e.llen {
		return e, nil
	}
	e, err := rd.mapExtentUncached(in, off)
	if err == nil {
		in.lastMu.Lock()
		in.last = e
		in.lastMu.Unlock()
	}
	return e, err
}

func (rd *Reader) mapExtentUncached(in *rdInode, off int64) (rdExtent, error) {
	switch in.layout {
	case LayoutFlatPlain, LayoutFlatInline:
		return rd.mapFlat(in, off)
	case LayoutChunkBased:
		return rd.mapChunk(in, off)
	case LayoutCompressedFull, LayoutCompressedCompact:
		return rd.mapCompressed(in, off)
	}
	return rdExtent{}, corruptf("nid %d: unsupported layout %d", in.nid, in.layout)
}

func (rd *Reader) mapFlat(in *rdInode, off int64) (rdExtent, error) {
	nblocks := (in.size + rd.blkSize - 1) >> rd.blkBits
	plainEnd := in.size
	if in.layout == LayoutFlatInline {
		plainEnd = (nblocks - 1) << rd.blkBits
	}
	if off < plainEnd {
		if in.startBlk == rdNullAddr {
			if in.layout == LayoutFlatInline {
				return rdExtent{}, corruptf("nid %d: no data block address", in.nid)
			}
			return rdExtent{la: 0, llen: plainEnd, kind: extHole}, nil
		}
		if in.startBlk > uint64(rd.size>>rd.blkBits) || int64(in.startBlk)<<rd.blkBits > rd.size-plainEnd {
			return rdExtent{}, corruptf("nid %d: data blocks %d+%d beyond the image end", in.nid, in.startBlk, nblocks)
		}
		return rdExtent{la: 0, llen: plainEnd, kind: extRaw, pa: int64(in.startBlk) << rd.blkBits}, nil
	}
	tail := in.size - plainEnd
	pos := in.dataPos()
	if pos&(rd.blkSize-1)+tail > rd.blkSize {
		return rdExtent{}, corruptf("nid %d: inline data of %d bytes crosses a block boundary", in.nid, tail)
	}
	if pos+tail > rd.size {
		return rdExtent{}, corruptf("nid %d: inline data beyond the image end", in.nid)
	}
	return rdExtent{la: plainEnd, llen: tail, kind: extRaw, pa: pos}, nil
}

func (rd *Reader) mapChunk(in *rdInode, off int64) (rdExtent, error) {
	bits := rd.blkBits + uint(in.chunkFmt&ChunkFormatBlkBits)
	if bits > 48 {
		return rdExtent{}, corruptf("nid %d: chunk size 2^%d", in.nid, bits)
	}
	unit := int64(4)
	if in.chunkFmt&ChunkFormatIndexes != 0 {
		unit = ChunkIndexSize
	}
	nr := off >> bits
	pos := (in.dataPos()+unit-1)&^(unit-1) + unit*nr
	b, err := rd.metaAt(pos, int(unit))
	if err != nil {
		return rdExtent{}, err
	}
	la := nr << bits
	e := rdExtent{la: la, llen: min(int64(1)<<bits, in.size-la), kind: extHole}
	var blk uint64
	le := binary.LittleEndian
	if unit == 4 {
		blk = uint64(le.Uint32(b))
		if blk == NullAddr {
			return e, nil
		}
	} else {
		mask := uint64(1)<<32 - 1
		if in.chunkFmt&rdChunk48Bit != 0 {
			mask = 1<<48 - 1
		}
		blk = (uint64(le.Uint16(b[0:]))<<32 | uint64(le.Uint32(b[4:]))) & mask
		if (blk^rdNullAddr)&mask == 0 {
			return e, nil
		}
		if dev := le.Uint16(b[2:]); dev != 0 {
			return rdExtent{}, corruptf("nid %d: chunk %d on extra device %d, which this image does not have", in.nid, nr, dev)
		}
	}
	if blk > uint64(rd.size>>rd.blkBits) || int64(blk)<<rd.blkBits > rd.size-e.llen {
		return rdExtent{}, corruptf("nid %d: chunk %d at block %d beyond the image end", in.nid, nr, blk)
	}
	e.kind = extRaw
	e.pa = int64(blk) << rd.blkBits
	return e, nil
}

// readFragment reads bytes of in's fragment from the packed inode.
func (rd *Reader) readFragment(in *rdInode, p []byte, off int64) error {
	pk, err := rd.packedInode()
	if err != nil {
		return err
	}
	if in.nid == pk.nid {
		return corruptf("packed inode %d refers to a fragment of itself", in.nid)
	}
	if off < 0 || off > pk.size || int64(len(p)) > pk.size-off {
		return corruptf("nid %d: fragment [%d,+%d) beyond the packed inode's %d bytes", in.nid, off, len(p), pk.size)
	}
	n, err := rd.readAt(pk, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (rd *Reader) packedInode() (*rdInode, error) {
	rd.packedMu.Lock()
	defer rd.packedMu.Unlock()
	if rd.packed != nil {
		return rd.packed, nil
	}
	if rd.incompat&FeatureIncompatFragments == 0 {
		return nil, corruptf("fragment without the fragments feature")
	}
	pk, err := rd.readInode(rd.sb.PackedNid)
	if err != nil {
		return nil, err
	}
	if !pk.isReg() {
		return nil, corruptf("packed inode %d is not a regular file", pk.nid)
	}
	rd.packed = pk
	return pk, nil
}

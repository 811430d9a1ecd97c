package erofs

import (
	"encoding/binary"
	"sort"

	"github.com/closurefs/closurefs/image"
)

// xattrLongPrefix is one entry of the long xattr name prefix table.
type xattrLongPrefix struct {
	base  uint8
	infix string
}

// readXattrPrefixes loads the long xattr name prefixes, stored as
// length-prefixed records from byte xattr_prefix_start*4 of the packed
// inode (or of the image, with the plain_xattr_pfx feature or no packed
// inode).
func (rd *Reader) readXattrPrefixes() error {
	n := int(rd.sb.XattrPrefixCount)
	if n == 0 {
		return nil
	}
	if rd.incompat&FeatureIncompatXattrPrefixes == 0 {
		return corruptf("long xattr prefixes without the xattr_prefixes feature")
	}
	pos := int64(rd.sb.XattrPrefixStart) << 2
	var pk *rdInode
	if rd.compat&compatPlainXattrPfx == 0 && rd.packedNid() != 0 {
		var err error
		if pk, err = rd.packedInode(); err != nil {
			return err
		}
	}
	read := func(p []byte, off int64) error {
		if pk == nil {
			return rd.readFull(p, off)
		}
		if off < 0 || off > pk.size || int64(len(p)) > pk.size-off {
			return corruptf("xattr prefix beyond the packed inode")
		}
		if k, err := rd.readAt(pk, p, off); k != len(p) {
			return corruptf("xattr prefix: %v", err)
		}
		return nil
	}
	for i := 0; i < n; i++ {
		pos = (pos + 3) &^ 3
		var l [2]byte
		if err := read(l[:], pos); err != nil {
			return err
		}
		size := int(binary.LittleEndian.Uint16(l[:]))
		if size < 1 || size > MaxNameLen+1 {
			return corruptf("long xattr prefix %d has size %d", i, size)
		}
		b := make([]byte, size)
		if err := read(b, pos+2); err != nil {
			return err
		}
		if b[0] == 0 || int(b[0]) >= len(XattrPrefixes) {
			return corruptf("long xattr prefix %d has base index %d", i, b[0])
		}
		rd.prefixes = append(rd.prefixes, xattrLongPrefix{b[0], string(b[1:])})
		pos += 2 + int64(size)
	}
	return nil
}

// xattrName builds the full name of an entry with name index idx.
func (rd *Reader) xattrName(idx uint8, suffix []byte) (string, error) {
	if idx&XattrLongPrefixBit != 0 {
		i := int(idx &^ XattrLongPrefixBit)
		if i >= len(rd.prefixes) {
			return "", corruptf("xattr long prefix %d of %d", i, len(rd.prefixes))
		}
		p := rd.prefixes[i]
		return XattrPrefixes[p.base] + p.infix + string(suffix), nil
	}
	if idx == 0 || int(idx) >= len(XattrPrefixes) {
		return "", corruptf("xattr name index %d", idx)
	}
	return XattrPrefixes[idx] + string(suffix), nil
}

// xattrEntry decodes one entry at b; it returns the entry and its
// 4-aligned size.
func (rd *Reader) xattrEntry(b []byte) (image.Xattr, int, error) {
	if len(b) < XattrEntrySize {
		return image.Xattr{}, 0, corruptf("xattr entry truncated")
	}
	nl := int(b[0])
	idx := b[1]
	vl := int(binary.LittleEndian.Uint16(b[2:]))
	size := XattrEntrySize + nl + vl
	if size > len(b) {
		return image.Xattr{}, 0, corruptf("xattr entry of %d bytes overruns its area", size)
	}
	name, err := rd.xattrName(idx, b[XattrEntrySize:XattrEntrySize+nl])
	if err != nil {
		return image.Xattr{}, 0, err
	}
	v := append([]byte(nil), b[XattrEntrySize+nl:size]...)
	return image.Xattr{Key: name, Value: v}, (size + 3) &^ 3, nil
}

// xattrs returns the inline and shared xattrs of in, sorted by key.
func (rd *Reader) xattrs(in *rdInode) ([]image.Xattr, error) {
	if in.xisize == 0 {
		return nil, nil
	}
	if in.xisize < XattrIbodyHeaderSize {
		return nil, corruptf("nid %d: xattr area of %d bytes", in.nid, in.xisize)
	}
	b, err := rd.metaAt(in.pos+in.isize, int(in.xisize))
	if err != nil {
		return nil, err
	}
	shared := int(b[4])
	area := b[XattrIbodyHeaderSize:]
	if shared*4 > len(area) {
		return nil, corruptf("nid %d: %d shared xattrs overrun the xattr area", in.nid, shared)
	}
	var out []image.Xattr
	for i := 0; i < shared; i++ {
		id := binary.LittleEndian.Uint32(area[i*4:])
		x, err := rd.sharedXattr(id)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	area = area[shared*4:]
	for len(area) > 0 {
		if len(out) >= rdMaxXattrs {
			return nil, corruptf("nid %d: more than %d xattrs", in.nid, rdMaxXattrs)
		}
		x, size, err := rd.xattrEntry(area)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
		area = area[size:]
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (rd *Reader) sharedXattr(id uint32) (image.Xattr, error) {
	pos := rd.xattrBse + int64(id)*4
	h, err := rd.metaAt(pos, XattrEntrySize)
	if err != nil {
		return image.Xattr{}, err
	}
	size := XattrEntrySize + int(h[0]) + int(binary.LittleEndian.Uint16(h[2:]))
	b, err := rd.metaAt(pos, size)
	if err != nil {
		return image.Xattr{}, err
	}
	x, _, err := rd.xattrEntry(b)
	return x, err
}

package squashfs

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/closurefs/closurefs/image"
)

var xattrPrefixes = [...]string{XattrUser: "user.", XattrTrusted: "trusted.", XattrSecurity: "security."}

// InodeXattrs returns the extended attributes of inode in, sorted by key.
func (rd *Reader) InodeXattrs(in *Inode) ([]image.Xattr, error) {
	if in.Xattr == NoXattr {
		return nil, nil
	}
	xs, err := rd.xattrs(in.Xattr)
	if err != nil {
		return nil, fmt.Errorf("squashfs: inode %s: xattr id %d: %w", refString(in.Ref), in.Xattr, err)
	}
	return xs, nil
}

func (rd *Reader) xattrs(id uint32) ([]image.Xattr, error) {
	if id >= rd.xattrCount {
		return nil, fmt.Errorf("out of range (%d xattr ids)", rd.xattrCount)
	}
	b, err := rd.tableEntry("xattr id table", rd.xattrIdx, rd.sb.XattrTable, uint64(id), xattrIDSize)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	ref := le.Uint64(b[0:])
	count := le.Uint32(b[8:])
	if count > rdMaxXattrCount {
		return nil, fmt.Errorf("%d key/value pairs (at most %d)", count, rdMaxXattrCount)
	}
	// The key/value blocks end where the id table's blocks begin.
	limit := rd.sb.XattrTable
	if len(rd.xattrIdx) > 0 && rd.xattrIdx[0] < limit {
		limit = rd.xattrIdx[0]
	}
	kvPos := func(ref uint64) (metaPos, error) {
		blk, off := ref>>16, uint32(ref&0xffff)
		if blk >= limit-rd.xattrKV || off >= MetadataBlockSize {
			return metaPos{}, fmt.Errorf("reference %s outside the xattr key/value table", refString(ref))
		}
		return metaPos{block: rd.xattrKV + blk, off: off}, nil
	}
	p, err := kvPos(ref)
	if err != nil {
		return nil, err
	}
	c := rd.cursorAt("xattr table", rd.xattrKV, limit, p)
	out := make([]image.Xattr, 0, min(count, 64))
	total := 0
	for i := uint32(0); i < count; i++ {
		typ, err := c.u16()
		if err != nil {
			return nil, err
		}
		nlen, err := c.u16()
		if err != nil {
			return nil, err
		}
		prefix := typ &^ xattrOOL
		if int(prefix) >= len(xattrPrefixes) {
			return nil, fmt.Errorf("key %d has unknown prefix id %d", i, prefix)
		}
		if nlen > rdMaxXattrName {
			return nil, fmt.Errorf("key %d name length %d too long", i, nlen)
		}
		name, err := c.read(int(nlen))
		if err != nil {
			return nil, err
		}
		key := xattrPrefixes[prefix] + string(name)
		vlen, err := c.u32()
		if err != nil {
			return nil, err
		}
		var val []byte
		if typ&xattrOOL != 0 {
			if vlen != 8 {
				return nil, fmt.Errorf("key %q: out-of-line value reference of %d bytes", key, vlen)
			}
			rb, err := c.read(8)
			if err != nil {
				return nil, err
			}
			p, err := kvPos(le.Uint64(rb))
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", key, err)
			}
			vc := rd.cursorAt("xattr table", rd.xattrKV, limit, p)
			if vlen, err = vc.u32(); err != nil {
				return nil, err
			}
			if vlen > rdMaxXattrValue {
				return nil, fmt.Errorf("key %q: value of %d bytes too long", key, vlen)
			}
			if val, err = vc.read(int(vlen)); err != nil {
				return nil, err
			}
		} else {
			if vlen > rdMaxXattrValue {
				return nil, fmt.Errorf("key %q: value of %d bytes too long", key, vlen)
			}
			if val, err = c.read(int(vlen)); err != nil {
				return nil, err
			}
		}
		// Out-of-line values can repeat one big value many times: cap the
		// total.
		if total += len(key) + len(val); total > rdMaxXattrTotal {
			return nil, fmt.Errorf("xattrs larger than %d bytes", rdMaxXattrTotal)
		}
		out = append(out, image.Xattr{Key: key, Value: append([]byte{}, val...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

package erofs

import (
	"bytes"
	"encoding/binary"
	"io"
	"io/fs"
)

// rdMaxDirSize bounds the directories the reader accepts.
const rdMaxDirSize = 1 << 26

// rdMaxDirEntries bounds the entries of one directory listing.
const rdMaxDirEntries = 1 << 20

// Dirent is a directory entry as stored in the image.
type rdDirent struct {
	name string
	nid  uint64
	typ  uint8
}

// dirBlock returns directory block i of dir.
func (rd *Reader) dirBlock(dir *rdInode, i int64) ([]byte, error) {
	off := i << rd.blkBits
	n := min(rd.blkSize, dir.size-off)
	if n <= 0 {
		return nil, corruptf("nid %d: directory block %d beyond its size", dir.nid, i)
	}
	if dir.layout == LayoutFlatPlain || dir.layout == LayoutFlatInline {
		e, err := rd.mapFlat(dir, off)
		if err != nil {
			return nil, err
		}
		if e.kind == extRaw {
			if off+n > e.la+e.llen {
				return nil, corruptf("nid %d: directory block %d crosses extents", dir.nid, i)
			}
			return rd.metaAt(e.pa+off-e.la, int(n))
		}
	}
	b := make([]byte, n)
	if k, err := rd.readAt(dir, b, off); k != len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// rdDirBlock is a parsed directory block.
type rdDirBlock struct {
	b     []byte
	count int
}

func rdParseDirBlock(dir *rdInode, i int64, b []byte) (rdDirBlock, error) {
	if len(b) < DirentSize {
		return rdDirBlock{}, corruptf("nid %d: directory block %d of %d bytes", dir.nid, i, len(b))
	}
	off0 := int(binary.LittleEndian.Uint16(b[8:]))
	if off0 < DirentSize || off0%DirentSize != 0 || off0 > len(b) {
		return rdDirBlock{}, corruptf("nid %d: directory block %d: first name offset %d", dir.nid, i, off0)
	}
	return rdDirBlock{b: b, count: off0 / DirentSize}, nil
}

// entry returns entry j of the block.
func (d rdDirBlock) entry(dir *rdInode, j int) (name []byte, nid uint64, typ uint8, err error) {
	e := d.b[j*DirentSize:]
	nid = binary.LittleEndian.Uint64(e)
	start := int(binary.LittleEndian.Uint16(e[8:]))
	typ = e[10]
	end := len(d.b)
	if j+1 < d.count {
		end = int(binary.LittleEndian.Uint16(e[DirentSize+8:]))
	}
	if start < d.count*DirentSize || start >= end || end > len(d.b) {
		return nil, 0, 0, corruptf("nid %d: directory entry %d has name bounds [%d,%d)", dir.nid, j, start, end)
	}
	name = d.b[start:end]
	if j+1 == d.count {
		if k := bytes.IndexByte(name, 0); k >= 0 {
			name = name[:k]
		}
	}
	if len(name) == 0 || len(name) > MaxNameLen {
		return nil, 0, 0, corruptf("nid %d: directory entry %d has a name of %d bytes", dir.nid, j, len(name))
	}
	return name, nid, typ, nil
}

func (rd *Reader) dirBlocks(dir *rdInode) (int64, error) {
	if dir.size > rdMaxDirSize {
		return 0, corruptf("nid %d: directory of %d bytes", dir.nid, dir.size)
	}
	return (dir.size + rd.blkSize - 1) >> rd.blkBits, nil
}

// lookup finds name in directory dir by binary search, first over the
// blocks (by their first name) and then inside one block.
func (rd *Reader) lookup(dir *rdInode, name string) (rdDirent, error) {
	nb, err := rd.dirBlocks(dir)
	if err != nil {
		return rdDirent{}, err
	}
	target := []byte(name)
	lo, hi := int64(0), nb
	var cand rdDirBlock
	candIdx := int64(-1)
	for lo < hi {
		mid := lo + (hi-lo)/2
		b, err := rd.dirBlock(dir, mid)
		if err != nil {
			return rdDirent{}, err
		}
		d, err := rdParseDirBlock(dir, mid, b)
		if err != nil {
			return rdDirent{}, err
		}
		first, nid, typ, err := d.entry(dir, 0)
		if err != nil {
			return rdDirent{}, err
		}
		switch c := bytes.Compare(first, target); {
		case c == 0:
			return rdDirent{name, nid, typ}, nil
		case c < 0:
			cand, candIdx = d, mid
			lo = mid + 1
		default:
			hi = mid
		}
	}
	if candIdx < 0 {
		return rdDirent{}, fs.ErrNotExist
	}
	l, h := 1, cand.count
	for l < h {
		m := l + (h-l)/2
		n, nid, typ, err := cand.entry(dir, m)
		if err != nil {
			return rdDirent{}, err
		}
		switch c := bytes.Compare(n, target); {
		case c == 0:
			return rdDirent{name, nid, typ}, nil
		case c < 0:
			l = m + 1
		default:
			h = m
		}
	}
	return rdDirent{}, fs.ErrNotExist
}

// readDir returns the entries of dir other than . and .., in order.
func (rd *Reader) readDir(dir *rdInode) ([]rdDirent, error) {
	nb, err := rd.dirBlocks(dir)
	if err != nil {
		return nil, err
	}
	var out []rdDirent
	var prev []byte
	for i := int64(0); i < nb; i++ {
		b, err := rd.dirBlock(dir, i)
		if err != nil {
			return nil, err
		}
		d, err := rdParseDirBlock(dir, i, b)
		if err != nil {
			return nil, err
		}
		for j := 0; j < d.count; j++ {
			name, nid, typ, err := d.entry(dir, j)
			if err != nil {
				return nil, err
			}
			if prev != nil && bytes.Compare(prev, name) >= 0 {
				return nil, corruptf("nid %d: directory entries out of order (%q after %q)", dir.nid, name, prev)
			}
			prev = name
			if string(name) == "." || string(name) == ".." {
				continue
			}
			if bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0 {
				return nil, corruptf("nid %d: directory entry name %q", dir.nid, name)
			}
			if len(out) >= rdMaxDirEntries {
				return nil, corruptf("nid %d: more than %d directory entries", dir.nid, rdMaxDirEntries)
			}
			out = append(out, rdDirent{string(name), nid, typ})
		}
	}
	return out, nil
}

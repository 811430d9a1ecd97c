package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Ref  uint64 // inode reference of the entry
	Ino  uint32 // inode number
	Type uint16 // basic inode type (1-7)
}

// Mode returns the entry's file type bits.
func (e DirEntry) Mode() fs.FileMode { return fileMode(0, e.Type).Type() }

// DirPos is a resumable position in a directory listing, returned by
// DirReader.Pos and accepted by Reader.OpenDirAt. The zero DirPos is
// the start of the listing.
type DirPos struct {
	started   bool
	pos       metaPos
	remaining uint64 // listing bytes left
	left      uint32 // entries left behind the current header
	hdrStart  uint32 // inode block of the current header
	hdrIno    uint32 // base inode number of the current header
	prev      string // last name returned, for the ordering check
	// Index counts the entries returned before this position.
	Index uint64
}

// DirReader streams the entries of one directory in listing order.
type DirReader struct {
	rd  *Reader
	dir *Inode
	c   *cursor
	p   DirPos
	err error
}

// OpenDir starts reading the listing of directory dir.
func (rd *Reader) OpenDir(dir *Inode) (*DirReader, error) { return rd.OpenDirAt(dir, DirPos{}) }

// OpenDirAt resumes reading the listing of dir at p (from DirReader.Pos).
func (rd *Reader) OpenDirAt(dir *Inode, p DirPos) (*DirReader, error) {
	if !dir.isDir() {
		return nil, fmt.Errorf("inode %s is not a directory", refString(dir.Ref))
	}
	if !p.started {
		p = DirPos{started: true, pos: metaPos{block: rd.sb.DirTable + uint64(dir.dirBlock), off: dir.dirOffset}}
		if dir.Size > 3 {
			p.remaining = dir.Size - 3
		}
	}
	d := &DirReader{rd: rd, dir: dir, p: p}
	d.c = rd.cursorAt("directory table", rd.sb.DirTable, rd.dirLimit, p.pos)
	return d, nil
}

// Pos returns the position after the last entry returned.
func (d *DirReader) Pos() DirPos { return d.p }

func (d *DirReader) errorf(format string, args ...any) error {
	return fmt.Errorf("directory inode %s, listing at %#x:%d: %s", refString(d.dir.Ref), d.c.pos.block-d.rd.sb.DirTable, d.c.pos.off, fmt.Sprintf(format, args...))
}

// take consumes n bytes of the listing.
func (d *DirReader) take(n uint64) ([]byte, error) {
	if n > d.p.remaining {
		return nil, d.errorf("listing overruns the directory size %d", d.dir.Size)
	}
	b, err := d.c.read(int(n))
	if err != nil {
		return nil, fmt.Errorf("directory inode %s: %w", refString(d.dir.Ref), err)
	}
	d.p.remaining -= n
	return b, nil
}

// Next returns the next entry, or io.EOF after the last one.
func (d *DirReader) Next() (DirEntry, error) {
	if d.err != nil {
		return DirEntry{}, d.err
	}
	e, err := d.next()
	if err != nil {
		err = wrapErr(err)
		d.err = err
		return DirEntry{}, err
	}
	d.p.Index++
	d.p.pos = d.c.pos
	return e, nil
}

func (d *DirReader) next() (DirEntry, error) {
	le := binary.LittleEndian
	sb := &d.rd.sb
	if d.p.left == 0 {
		if d.p.remaining == 0 {
			return DirEntry{}, io.EOF
		}
		b, err := d.take(12)
		if err != nil {
			return DirEntry{}, err
		}
		count := le.Uint32(b[0:]) + 1
		d.p.hdrStart = le.Uint32(b[4:])
		d.p.hdrIno = le.Uint32(b[8:])
		if count == 0 || count > maxDirEntries {
			return DirEntry{}, d.errorf("header with %d entries (at most %d)", count, maxDirEntries)
		}
		if uint64(d.p.hdrStart) >= sb.DirTable-sb.InodeTable {
			return DirEntry{}, d.errorf("header points at inode block %#x outside the inode table", d.p.hdrStart)
		}
		d.p.left = count
	}
	b, err := d.take(8)
	if err != nil {
		return DirEntry{}, err
	}
	off := le.Uint16(b[0:])
	delta := int16(le.Uint16(b[2:]))
	typ := le.Uint16(b[4:])
	nlen := uint64(le.Uint16(b[6:])) + 1
	if off >= MetadataBlockSize {
		return DirEntry{}, d.errorf("entry inode offset %d out of range", off)
	}
	if typ < TypeDir || typ > TypeSocket {
		return DirEntry{}, d.errorf("entry with unknown type %d", typ)
	}
	if nlen > rdMaxName {
		return DirEntry{}, d.errorf("entry name length %d too long", nlen)
	}
	nb, err := d.take(nlen)
	if err != nil {
		return DirEntry{}, err
	}
	name := string(nb)
	if name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return DirEntry{}, d.errorf("invalid entry name %q", name)
	}
	if d.p.Index > 0 && name <= d.p.prev {
		return DirEntry{}, d.errorf("entry %q out of order after %q", name, d.p.prev)
	}
	ino := int64(d.p.hdrIno) + int64(delta)
	if ino < 1 || ino > int64(sb.Inodes) {
		return DirEntry{}, d.errorf("entry %q has inode number %d out of range", name, ino)
	}
	d.p.left--
	d.p.prev = name
	return DirEntry{
		Name: name,
		Ref:  uint64(d.p.hdrStart)<<16 | uint64(off),
		Ino:  uint32(ino),
		Type: typ,
	}, nil
}

// dirEntries returns the entries of dir through the directory cache;
// the slice must not be modified.
func (rd *Reader) dirEntries(dir *Inode) ([]DirEntry, error) {
	if dir.Size-3 > rd.maxCachedListing {
		return rd.ReadDirAll(dir)
	}
	return rd.dirs.Get(dir.Ref, func() ([]DirEntry, int64, error) {
		ents, err := rd.ReadDirAll(dir)
		cost := int64(64)
		for _, e := range ents {
			cost += int64(48 + len(e.Name))
		}
		return ents, cost, err
	})
}

// ReadDirAll returns every entry of directory dir.
func (rd *Reader) ReadDirAll(dir *Inode) ([]DirEntry, error) {
	d, err := rd.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	var out []DirEntry
	for {
		e, err := d.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
}

// errNotFound is returned by Lookup for a missing name.
var errNotFound = fs.ErrNotExist

// Lookup finds name in directory dir and returns its entry, using the
// directory index of an extended directory to skip to the right part of
// the listing. It fails with an error matching fs.ErrNotExist if there
// is no such entry.
func (rd *Reader) Lookup(dir *Inode, name string) (DirEntry, error) {
	if !dir.isDir() {
		return DirEntry{}, fmt.Errorf("inode %s is not a directory", refString(dir.Ref))
	}
	if dir.Size <= 3 {
		return DirEntry{}, errNotFound
	}
	if dir.Size-3 <= rd.maxCachedListing {
		ents, err := rd.dirEntries(dir)
		if err != nil {
			return DirEntry{}, err
		}
		i := sort.Search(len(ents), func(i int) bool { return ents[i].Name >= name })
		if i < len(ents) && ents[i].Name == name {
			return ents[i], nil
		}
		return DirEntry{}, errNotFound
	}
	p, err := rd.indexStart(dir, name)
	if err != nil {
		return DirEntry{}, wrapErr(err)
	}
	d, err := rd.OpenDirAt(dir, p)
	if err != nil {
		return DirEntry{}, err
	}
	for {
		e, err := d.Next()
		if err == io.EOF {
			return DirEntry{}, errNotFound
		}
		if err != nil {
			return DirEntry{}, err
		}
		if e.Name == name {
			return e, nil
		}
		if e.Name > name {
			return DirEntry{}, errNotFound
		}
	}
}

// indexStart returns where to start scanning dir's listing for name: the
// header the directory index names as the last one starting at or before
// name, or the listing start.
func (rd *Reader) indexStart(dir *Inode, name string) (DirPos, error) {
	if dir.idxCount == 0 || dir.Size <= 3 {
		return DirPos{}, nil
	}
	sb := &rd.sb
	listing := dir.Size - 3
	c := rd.cursorAt("inode table", sb.InodeTable, rd.inodeLimit, dir.idxPos)
	le := binary.LittleEndian
	var best DirPos
	var lastIndex uint64
	for i := uint32(0); i < dir.idxCount; i++ {
		b, err := c.read(12)
		if err != nil {
			return DirPos{}, fmt.Errorf("directory inode %s: index entry %d: %w", refString(dir.Ref), i, err)
		}
		index := uint64(le.Uint32(b[0:]))
		start := le.Uint32(b[4:])
		nlen := uint64(le.Uint32(b[8:])) + 1
		if nlen > rdMaxName {
			return DirPos{}, fmt.Errorf("directory inode %s: index entry %d: name length %d too long", refString(dir.Ref), i, nlen)
		}
		if index >= listing || (i > 0 && index <= lastIndex) || uint64(start) >= rd.dirLimit-sb.DirTable {
			return DirPos{}, fmt.Errorf("directory inode %s: index entry %d points outside the listing", refString(dir.Ref), i)
		}
		lastIndex = index
		nb, err := c.read(int(nlen))
		if err != nil {
			return DirPos{}, fmt.Errorf("directory inode %s: index entry %d: %w", refString(dir.Ref), i, err)
		}
		if string(nb) > name {
			break
		}
		best = DirPos{
			started:   true,
			pos:       metaPos{block: sb.DirTable + uint64(start), off: uint32((uint64(dir.dirOffset) + index) % MetadataBlockSize)},
			remaining: listing - index,
		}
	}
	return best, nil
}

// EntryInode reads the inode of entry e of directory dir (from Lookup or
// a DirReader), checking that it agrees with the entry.
func (rd *Reader) EntryInode(dir *Inode, e DirEntry) (*Inode, error) {
	in, err := rd.child(dir, e)
	return in, wrapErr(err)
}

// LookupInode finds name in directory dir and reads its inode.
func (rd *Reader) LookupInode(dir *Inode, name string) (*Inode, error) {
	e, err := rd.Lookup(dir, name)
	if err != nil {
		return nil, err
	}
	return rd.EntryInode(dir, e)
}

// child reads the inode of entry e listed in directory parent and checks
// that it agrees with the entry. A directory must be listed by exactly
// one directory, so cycles and hard-linked directories are errors.
func (rd *Reader) child(parent *Inode, e DirEntry) (*Inode, error) {
	in, err := rd.inode(e.Ref)
	if err != nil {
		return nil, fmt.Errorf("entry %q: %w", e.Name, err)
	}
	if in.basicType() != e.Type {
		return nil, fmt.Errorf("entry %q: inode %s has type %d, the directory says %d", e.Name, refString(e.Ref), in.Type, e.Type)
	}
	if in.Ino != e.Ino {
		return nil, fmt.Errorf("entry %q: inode %s has number %d, the directory says %d", e.Name, refString(e.Ref), in.Ino, e.Ino)
	}
	if in.isDir() {
		if err := rd.claimDir(parent.Ref, in.Ref); err != nil {
			return nil, fmt.Errorf("entry %q: %w", e.Name, err)
		}
	}
	return in, nil
}

// claimDir records that directory child is listed in directory parent,
// and fails if it is the root or already listed elsewhere.
func (rd *Reader) claimDir(parent, child uint64) error {
	if child == rd.sb.RootInode {
		return fmt.Errorf("directory cycle: entry points back to the root directory")
	}
	rd.parentsMu.Lock()
	defer rd.parentsMu.Unlock()
	if p, ok := rd.parents[child]; ok {
		if p != parent {
			return fmt.Errorf("directory inode %s is listed by two directories (%s and %s): a cycle or a hard-linked directory", refString(child), refString(p), refString(parent))
		}
		return nil
	}
	if child == parent {
		return fmt.Errorf("directory cycle: directory %s lists itself", refString(child))
	}
	rd.parents[child] = parent
	return nil
}

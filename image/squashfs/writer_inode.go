package squashfs

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/closurefs/closurefs/image"
	"golang.org/x/sys/unix"
)

// metadata is the result of laying out the inode and directory tables.
type metadata struct {
	inodeTable []byte
	dirTable   []byte
	root       uint64
	inodes     uint32
	ids        []uint32
	export     []uint64 // inode reference by inode number - 1
	xattrKV    []byte
	xattrIDs   []xattrID
}

type xattrID struct {
	ref         uint64
	count, size uint32
}

// inodeInfo is what a directory entry needs to know about its inode.
type inodeInfo struct {
	ref uint64
	ino uint32
	typ uint16 // basic type
}

type metaBuilder struct {
	s       *state
	inodes  *metaWriter
	dirs    *metaWriter
	xattrs  *metaWriter
	ino     map[*image.Node]uint32
	linked  map[*image.Node]inodeInfo // inodes shared by hard links
	idIndex map[uint32]uint16
	xidx    map[string]uint32
	m       *metadata
	count   int
	buf     []byte
}

// buildMetadata writes the inode and directory tables: children before
// their directory, so every reference is known when it is written.
func (s *state) buildMetadata(t *image.Tree) (*metadata, error) {
	b := &metaBuilder{
		s:       s,
		inodes:  newMetaWriter(s.opts.Codec),
		dirs:    newMetaWriter(s.opts.Codec),
		xattrs:  newMetaWriter(s.opts.Codec),
		ino:     make(map[*image.Node]uint32),
		linked:  make(map[*image.Node]inodeInfo),
		idIndex: make(map[uint32]uint16),
		xidx:    make(map[string]uint32),
		m:       &metadata{},
	}
	var next uint32
	b.number(t.Root, &next)
	b.m.inodes = next
	b.m.export = make([]uint64, next)
	root, err := b.writeDir(t.Root, next+1)
	if err != nil {
		return nil, err
	}
	b.m.root = root.ref
	if b.m.inodeTable, err = b.inodes.finish(); err != nil {
		return nil, err
	}
	if b.m.dirTable, err = b.dirs.finish(); err != nil {
		return nil, err
	}
	if b.m.xattrKV, err = b.xattrs.finish(); err != nil {
		return nil, err
	}
	return b.m, nil
}

// number assigns inode numbers in the order inodes are written: the
// entries of a directory (each subdirectory after its own entries), then
// the directory.
func (b *metaBuilder) number(d *image.Node, next *uint32) {
	for _, c := range d.Children {
		switch {
		case c.IsDir():
			b.number(c, next)
		case c.Link != nil:
		default:
			*next++
			b.ino[c] = *next
		}
	}
	*next++
	b.ino[d] = *next
}

func (b *metaBuilder) id(v uint32) (uint16, error) {
	if i, ok := b.idIndex[v]; ok {
		return i, nil
	}
	if len(b.m.ids) >= 1<<16 {
		return 0, fmt.Errorf("squashfs: more than 65536 distinct uids and gids")
	}
	i := uint16(len(b.m.ids))
	b.idIndex[v] = i
	b.m.ids = append(b.m.ids, v)
	return i, nil
}

// xattr returns the xattr table index of n's attributes, or NoXattr.
func (b *metaBuilder) xattr(n *image.Node) (uint32, error) {
	if len(n.Xattrs) == 0 {
		return NoXattr, nil
	}
	var kv []byte
	for _, x := range n.Xattrs {
		var typ uint16
		var name string
		switch {
		case strings.HasPrefix(x.Key, "user."):
			typ, name = XattrUser, x.Key[5:]
		case strings.HasPrefix(x.Key, "trusted."):
			typ, name = XattrTrusted, x.Key[8:]
		case strings.HasPrefix(x.Key, "security."):
			typ, name = XattrSecurity, x.Key[9:]
		default:
			return 0, fmt.Errorf("squashfs: %s: extended attribute %q: only user., trusted. and security. attributes can be stored", n.Path(), x.Key)
		}
		if len(name) == 0 || len(name) > 0xffff {
			return 0, fmt.Errorf("squashfs: %s: bad extended attribute name %q", n.Path(), x.Key)
		}
		kv = le16(kv, typ)
		kv = le16(kv, uint16(len(name)))
		kv = append(kv, name...)
		kv = le32(kv, uint32(len(x.Value)))
		kv = append(kv, x.Value...)
	}
	if i, ok := b.xidx[string(kv)]; ok {
		return i, nil
	}
	i := uint32(len(b.m.xattrIDs))
	b.xidx[string(kv)] = i
	b.m.xattrIDs = append(b.m.xattrIDs, xattrID{ref: b.xattrs.ref(), count: uint32(len(n.Xattrs)), size: uint32(len(kv))})
	b.xattrs.write(kv)
	return i, nil
}

// header appends n's inode header of type typ to b.buf.
func (b *metaBuilder) header(n *image.Node, typ uint16) error {
	uid, err := b.id(n.UID)
	if err != nil {
		return err
	}
	gid, err := b.id(n.GID)
	if err != nil {
		return err
	}
	mode := uint16(n.Mode.Perm())
	if n.Mode&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if n.Mode&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if n.Mode&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	h := inodeHeader{Type: typ, Mode: mode, UID: uid, GID: gid, Mtime: uint32(n.Mtime), Ino: b.ino[n]}
	b.buf = h.append(b.buf[:0])
	return nil
}

// emitInode writes b.buf as n's inode and returns its reference.
func (b *metaBuilder) emitInode(n *image.Node, typ uint16) inodeInfo {
	ref := b.inodes.ref()
	b.inodes.write(b.buf)
	info := inodeInfo{ref: ref, ino: b.ino[n], typ: typ}
	b.m.export[info.ino-1] = ref
	if n.Nlink > 1 && !n.IsDir() {
		b.linked[n] = info
	}
	return info
}

// writeInode writes the inode of a non-directory node.
func (b *metaBuilder) writeInode(n *image.Node) (inodeInfo, error) {
	b.count++
	if b.count%4096 == 0 {
		if err := b.s.ctx.Err(); err != nil {
			return inodeInfo{}, err
		}
	}
	xi, err := b.xattr(n)
	if err != nil {
		return inodeInfo{}, err
	}
	var typ uint16
	switch {
	case n.IsRegular():
		return b.writeFile(n, xi)
	case n.IsSymlink():
		typ = TypeSymlink
	case n.Mode&fs.ModeDevice != 0 && n.Mode&fs.ModeCharDevice != 0:
		typ = TypeCharDev
	case n.Mode&fs.ModeDevice != 0:
		typ = TypeBlockDev
	case n.Mode&fs.ModeNamedPipe != 0:
		typ = TypeFifo
	case n.Mode&fs.ModeSocket != 0:
		typ = TypeSocket
	default:
		return inodeInfo{}, fmt.Errorf("squashfs: %s: unsupported file type %v", n.Path(), n.Mode.Type())
	}
	// Extended inodes of these types differ only by the trailing xattr
	// index; nlink fits the basic ones.
	ext := xi != NoXattr
	t := typ
	if ext {
		t += 7
	}
	if err := b.header(n, t); err != nil {
		return inodeInfo{}, err
	}
	b.buf = le32(b.buf, max(n.Nlink, 1))
	switch typ {
	case TypeSymlink:
		b.buf = le32(b.buf, uint32(len(n.Target)))
		b.buf = append(b.buf, n.Target...)
	case TypeCharDev, TypeBlockDev:
		maj, mnr := unix.Major(n.Rdev), unix.Minor(n.Rdev)
		b.buf = le32(b.buf, (mnr&0xff)|(maj<<8)|((mnr&^0xff)<<12))
	}
	if ext {
		b.buf = le32(b.buf, xi)
	}
	return b.emitInode(n, typ), nil
}

// writeFile writes a regular file's inode.
func (b *metaBuilder) writeFile(n *image.Node, xi uint32) (inodeInfo, error) {
	src := n
	if n.Same != nil {
		src = n.Same
	}
	fd, ok := b.s.data[src]
	if !ok {
		return inodeInfo{}, fmt.Errorf("squashfs: %s: internal error: no data written", n.Path())
	}
	size := uint64(n.Size)
	ext := xi != NoXattr || n.Nlink > 1 || size >= 1<<32 || fd.start >= 1<<32 || fd.sparse > 0 || fd.zeroTail
	if !ext {
		if err := b.header(n, TypeFile); err != nil {
			return inodeInfo{}, err
		}
		b.buf = le32(b.buf, uint32(fd.start))
		b.buf = le32(b.buf, fd.frag)
		b.buf = le32(b.buf, fd.fragOff)
		b.buf = le32(b.buf, uint32(size))
	} else {
		if err := b.header(n, TypeExtFile); err != nil {
			return inodeInfo{}, err
		}
		b.buf = le64(b.buf, fd.start)
		b.buf = le64(b.buf, size)
		b.buf = le64(b.buf, fd.sparse+fd.tailSparse())
		b.buf = le32(b.buf, max(n.Nlink, 1))
		b.buf = le32(b.buf, fd.frag)
		b.buf = le32(b.buf, fd.fragOff)
		b.buf = le32(b.buf, xi)
	}
	for _, sz := range fd.sizes {
		b.buf = le32(b.buf, sz)
	}
	if fd.zeroTail {
		b.buf = le32(b.buf, 0)
	}
	return b.emitInode(n, TypeFile), nil
}

type dirEnt struct {
	name string
	info inodeInfo
}

// dirRun is one directory header and its entries.
type dirRun struct {
	first, count int
	block        uint64 // inode metadata block of every entry
	base         uint32 // reference inode number
	pos          uint64 // uncompressed position of the header in the directory table
}

// writeDir writes the subtree of d, d's listing and d's inode.
func (b *metaBuilder) writeDir(d *image.Node, parent uint32) (inodeInfo, error) {
	if err := b.s.ctx.Err(); err != nil {
		return inodeInfo{}, err
	}
	ents := make([]dirEnt, 0, len(d.Children))
	for _, c := range d.Children {
		var info inodeInfo
		var err error
		switch {
		case c.IsDir():
			info, err = b.writeDir(c, b.ino[d])
		case c.Link != nil:
			var ok bool
			if info, ok = b.linked[c.Link]; !ok {
				err = fmt.Errorf("squashfs: %s: hard link to %s, which was not written before it", c.Path(), c.Link.Path())
			}
		default:
			info, err = b.writeInode(c)
		}
		if err != nil {
			return inodeInfo{}, err
		}
		if len(c.Name) == 0 || len(c.Name) > 256 {
			return inodeInfo{}, fmt.Errorf("squashfs: %s: name longer than 256 bytes", c.Path())
		}
		ents = append(ents, dirEnt{c.Name, info})
	}

	// Split the listing into runs: a new header when the inode block
	// changes, after 256 entries, when the inode number is out of reach of
	// the base, or when the listing crosses a metadata block boundary.
	start := b.dirs.total
	startRef := b.dirs.ref()
	var runs []dirRun
	pos := start
	for i, e := range ents {
		var cur *dirRun
		if len(runs) > 0 {
			cur = &runs[len(runs)-1]
		}
		delta := int64(e.info.ino) - int64(cur.baseOr(e.info.ino))
		if cur == nil || cur.count == maxDirEntries || e.info.ref>>16 != cur.block ||
			delta < -32768 || delta > 32767 || pos/MetadataBlockSize != cur.pos/MetadataBlockSize {
			runs = append(runs, dirRun{first: i, block: e.info.ref >> 16, base: e.info.ino, pos: pos})
			cur = &runs[len(runs)-1]
			pos += dirHeaderSize
		}
		cur.count++
		pos += dirEntrySize + uint64(len(e.name))
	}
	listing := pos - start
	xi, err := b.xattr(d)
	if err != nil {
		return inodeInfo{}, err
	}
	fileSize := listing + 3
	// Extended only when it must be (as gensquashfs 1.2 decides, so
	// sqfsdiff sees the same types): xattrs, a listing too large for the
	// basic inode's u16 size, or a far directory table. Extended
	// directories carry an index entry per header for fast lookups.
	ext := xi != NoXattr || fileSize > 0xffff || startRef>>16 >= 1<<32
	var index []byte
	nindex := 0
	for _, r := range runs {
		if ext {
			name := ents[r.first].name
			index = le32(index, uint32(r.pos-start))
			index = le32(index, uint32(b.dirs.ref()>>16))
			index = le32(index, uint32(len(name)-1))
			index = append(index, name...)
			nindex++
		}
		buf := le32(b.buf[:0], uint32(r.count-1))
		buf = le32(buf, uint32(r.block))
		buf = le32(buf, r.base)
		for _, e := range ents[r.first : r.first+r.count] {
			buf = le16(buf, uint16(e.info.ref&0xffff))
			buf = le16(buf, uint16(int16(int64(e.info.ino)-int64(r.base))))
			buf = le16(buf, e.info.typ)
			buf = le16(buf, uint16(len(e.name)-1))
			buf = append(buf, e.name...)
		}
		b.buf = buf
		b.dirs.write(buf)
	}

	blk := startRef >> 16
	if blk >= 1<<32 {
		return inodeInfo{}, fmt.Errorf("squashfs: directory table larger than 4 GiB")
	}
	if !ext {
		if err := b.header(d, TypeDir); err != nil {
			return inodeInfo{}, err
		}
		b.buf = le32(b.buf, uint32(blk))
		b.buf = le32(b.buf, d.Nlink)
		b.buf = le16(b.buf, uint16(fileSize))
		b.buf = le16(b.buf, uint16(startRef&0xffff))
		b.buf = le32(b.buf, parent)
	} else {
		if fileSize >= 1<<32 {
			return inodeInfo{}, fmt.Errorf("squashfs: %s: directory listing too large", d.Path())
		}
		if err := b.header(d, TypeExtDir); err != nil {
			return inodeInfo{}, err
		}
		b.buf = le32(b.buf, d.Nlink)
		b.buf = le32(b.buf, uint32(fileSize))
		b.buf = le32(b.buf, uint32(blk))
		b.buf = le32(b.buf, parent)
		b.buf = le16(b.buf, uint16(nindex))
		b.buf = le16(b.buf, uint16(startRef&0xffff))
		b.buf = le32(b.buf, xi)
		b.buf = append(b.buf, index...)
	}
	return b.emitInode(d, TypeDir), nil
}

// baseOr returns the run's base inode number, or v when there is no run.
func (r *dirRun) baseOr(v uint32) uint32 {
	if r == nil {
		return v
	}
	return r.base
}

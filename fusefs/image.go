// Package fusefs serves closurefs file systems through FUSE: read-only
// mounts of erofs and squashfs images (one implementation over image.FS),
// and the live closure view, a read-only loopback of a Nix store that shows
// exactly one closure.
package fusefs

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/closurefs/closurefs/image"
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ImageRoot is the root of a read-only FUSE file system over an image
// reader. Create it with NewImageRoot and mount it with Mount.
type ImageRoot struct {
	imageNode
	fsys image.FS
	// size is the image size in bytes, for statfs.
	size int64
	// ino is the root's inode number from the image.
	ino uint64
	// file is the image file, if known: reads of bytes stored unchanged
	// in it are spliced from it to the kernel (see SpliceFrom).
	file *os.File
}

// SpliceFrom tells the file system that f is the image file fsys reads:
// file data stored unchanged in the image (uncompressed erofs extents)
// then goes from f's page cache to the kernel by splice, without a copy
// through the daemon. f must stay open while the file system is mounted.
func (r *ImageRoot) SpliceFrom(f *os.File) { r.file = f }

// imageNode is one file, directory, symlink or special file of an image.
type imageNode struct {
	gofs.Inode
	root *ImageRoot
	name string // path in fsys, "." for the root
	attr fuse.Attr

	mu sync.Mutex
	f  fs.File     // regular files: opened on first read
	ra io.ReaderAt // f as a ReaderAt
}

var (
	_ gofs.NodeLookuper       = (*imageNode)(nil)
	_ gofs.NodeGetattrer      = (*imageNode)(nil)
	_ gofs.NodeReadlinker     = (*imageNode)(nil)
	_ gofs.NodeOpener         = (*imageNode)(nil)
	_ gofs.NodeReader         = (*imageNode)(nil)
	_ gofs.NodeOpendirHandler = (*imageNode)(nil)
	_ gofs.NodeGetxattrer     = (*imageNode)(nil)
	_ gofs.NodeListxattrer    = (*imageNode)(nil)
	_ gofs.NodeStatfser       = (*imageNode)(nil)
	_ gofs.NodeFlusher        = (*imageNode)(nil)
	_ gofs.NodeOnForgetter    = (*imageNode)(nil)
)

// NewImageRoot returns the root node of a file system showing fsys. size is
// the image size in bytes (reported by statfs; 0 if unknown).
func NewImageRoot(fsys image.FS, size int64) (*ImageRoot, error) {
	fi, err := fsys.Lstat(".")
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errors.New("image root is not a directory")
	}
	r := &ImageRoot{fsys: fsys, size: size}
	r.imageNode = imageNode{root: r, name: "."}
	fillAttr(&r.attr, fi)
	r.ino = r.attr.Ino
	return r, nil
}

// StableAttr returns the root's stable attributes, to pass as
// gofs.Options.RootStableAttr so that the root keeps the image's inode
// number and no child can collide with it.
func (r *ImageRoot) StableAttr() *gofs.StableAttr {
	return &gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: r.ino}
}

// fillAttr sets a from fi: type and permissions, size, inode data.
func fillAttr(a *fuse.Attr, fi fs.FileInfo) {
	a.Mode = unixMode(fi.Mode())
	a.Size = uint64(fi.Size())
	if fi.IsDir() && a.Size == 0 {
		a.Size = 4096
	}
	if m := fi.Mode(); m.IsRegular() {
		// As the kernel's squashfs counts them; other formats report
		// their own block usage, which image.Inode does not carry.
		a.Blocks = (a.Size + 511) / 512
	}
	a.Blksize = 4096
	if ino, ok := image.InodeOf(fi); ok {
		a.Ino = ino.Ino
		a.Nlink = ino.Nlink
		a.Uid = ino.UID
		a.Gid = ino.GID
		a.Rdev = uint32(ino.Rdev)
		mt := ino.Mtime
		a.Mtime, a.Mtimensec = uint64(mt.Unix()), uint32(mt.Nanosecond())
	} else {
		mt := fi.ModTime()
		a.Mtime, a.Mtimensec = uint64(mt.Unix()), uint32(mt.Nanosecond())
	}
	if a.Nlink == 0 {
		a.Nlink = 1
	}
	a.Atime, a.Atimensec = a.Mtime, a.Mtimensec
	a.Ctime, a.Ctimensec = a.Mtime, a.Mtimensec
}

// unixMode converts an fs.FileMode to st_mode bits; a type POSIX has no
// bits for is shown as a regular file.
func unixMode(m fs.FileMode) uint32 {
	mode, err := image.UnixMode(m)
	if err != nil {
		mode, _ = image.UnixMode(m &^ fs.ModeType)
	}
	return mode
}

// toErrno maps reader errors to errno values: missing names ENOENT, bad
// images EIO.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	}
	return syscall.EIO
}

func (n *imageNode) child(name string) string {
	if n.name == "." {
		return name
	}
	return n.name + "/" + name
}

// newChild returns the inode for fi, found as name in n.
func (n *imageNode) newChild(ctx context.Context, name string, fi fs.FileInfo, out *fuse.EntryOut) *gofs.Inode {
	c := &imageNode{root: n.root, name: n.child(name)}
	fillAttr(&c.attr, fi)
	out.Attr = c.attr
	return n.NewInode(ctx, c, gofs.StableAttr{Mode: c.attr.Mode & syscall.S_IFMT, Ino: c.attr.Ino})
}

// Lookup finds name in the directory n through the reader's Lstat, which
// searches the directory without listing it where the format allows.
func (n *imageNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	// Any byte string is a valid name (store paths may hold names that are
	// not UTF-8); whether the reader can look it up is its own business.
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return nil, syscall.ENOENT
	}
	fi, err := n.root.fsys.Lstat(n.child(name))
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, name, fi, out), 0
}

// Getattr returns the attributes read when the node was looked up: images
// do not change.
func (n *imageNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Attr = n.attr
	return 0
}

// Readlink returns a symlink's target.
func (n *imageNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.root.fsys.ReadLink(n.name)
	if err != nil {
		return nil, toErrno(err)
	}
	return []byte(t), 0
}

// Open tells the kernel that this file system needs no OPEN (ENOSYS): it
// then stops sending OPEN, FLUSH and RELEASE for files, keeps their pages
// cached across opens (the image is immutable), and reads with no handle.
// Writers are refused by the kernel on the read-only mount.
func (n *imageNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, 0, syscall.ENOSYS
}

// Flush: nothing to flush; ENOSYS stops the kernel from sending FLUSH.
func (n *imageNode) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

// readerAt returns the node's file, opened on first use and kept until the
// kernel forgets the node.
func (n *imageNode) readerAt() (io.ReaderAt, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ra != nil {
		return n.ra, 0
	}
	if n.attr.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, syscall.EINVAL
	}
	f, err := n.root.fsys.Open(n.name)
	if err != nil {
		return nil, toErrno(err)
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		f.Close()
		return nil, syscall.EIO
	}
	n.f, n.ra = f, ra
	return ra, 0
}

// OnForget closes the node's file.
func (n *imageNode) OnForget() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f != nil {
		n.f.Close()
		n.f, n.ra = nil, nil
	}
}

// spliceMin is the smallest read answered by splicing from the image file.
// A splice reply costs five system calls (header into a pipe, file into
// the pipe, pipe to /dev/fuse, draining the pipe) against a copy's two
// (pread, writev). Reading the bench closure's 39k files from an
// uncompressed image in the page cache took 5.3-8.9 s with this limit
// against 6.5-9.7 s splicing every read (alternating runs on a busy
// machine), for the same daemon CPU.
const spliceMin = 64 << 10

// Read reads from the file. Reads run concurrently: the reader's ReaderAt
// is safe for parallel use, and decompresses through its shared cache.
func (n *imageNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	ra, errno := n.readerAt()
	if errno != 0 {
		return nil, errno
	}
	if off >= int64(n.attr.Size) {
		return dataResult(nil), 0
	}
	if rest := int64(n.attr.Size) - off; int64(len(dest)) > rest {
		dest = dest[:rest]
	}
	if r := n.root; r.file != nil && len(dest) >= spliceMin && len(dest) <= spliceMax() {
		if s, ok := ra.(image.StoredRanger); ok {
			if pa, k, ok := s.StoredAt(off, len(dest)); ok && k == len(dest) {
				return fuse.ReadResultFd(r.file.Fd(), pa, k), 0
			}
		}
	}
	k, err := ra.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, toErrno(err)
	}
	return dataResult(dest[:k]), 0
}

// OpendirHandle opens a directory for a streamed listing.
func (n *imageNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if n.attr.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, 0, syscall.ENOTDIR
	}
	// The directory is read on the first READDIR only: once the kernel has
	// cached a listing, an opendir costs no work here.
	return &imageDir{n: n}, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR, 0
}

// dirBatch is how many entries a directory stream reads at a time.
const dirBatch = 512

// imageDir is an open directory. It reads entries in batches from the
// reader (fs.ReadDirFile) so that a directory of any size streams in
// bounded memory. Offsets are entry positions: 1 and 2 are "." and "..",
// entry i of the directory has offset i+3.
type imageDir struct {
	n      *imageNode
	f      fs.ReadDirFile // nil: all entries in buf
	buf    []fs.DirEntry
	pos    uint64 // offset of the next entry to return
	eof    bool
	opened bool        // f or buf set up
	last   fs.DirEntry // entry returned last, for FileLookuper
	lastN  string
}

var (
	_ gofs.FileReaddirenter = (*imageDir)(nil)
	_ gofs.FileSeekdirer    = (*imageDir)(nil)
	_ gofs.FileReleasedirer = (*imageDir)(nil)
	_ gofs.FileLookuper     = (*imageDir)(nil)
)

func (d *imageDir) rewind() syscall.Errno {
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
	d.buf, d.pos, d.eof, d.opened = nil, 0, false, true
	f, err := d.n.root.fsys.Open(d.n.name)
	if err != nil {
		return toErrno(err)
	}
	if rdf, ok := f.(fs.ReadDirFile); ok {
		d.f = rdf
		return 0
	}
	f.Close()
	ents, err := d.n.root.fsys.ReadDir(d.n.name)
	if err != nil {
		return toErrno(err)
	}
	d.buf, d.eof = ents, true
	return 0
}

// fill makes sure buf holds the next entry, if there is one.
func (d *imageDir) fill() syscall.Errno {
	if len(d.buf) > 0 || d.eof {
		return 0
	}
	ents, err := d.f.ReadDir(dirBatch)
	if err != nil && !errors.Is(err, io.EOF) {
		return toErrno(err)
	}
	if len(ents) == 0 || errors.Is(err, io.EOF) {
		d.eof = len(ents) == 0
	}
	d.buf = ents
	return 0
}

// Readdirent returns the next entry, or nil at the end.
func (d *imageDir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	switch d.pos {
	case 0:
		d.pos = 1
		return &fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.n.attr.Ino, Off: 1}, 0
	case 1:
		d.pos = 2
		return &fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Off: 2}, 0
	}
	if !d.opened {
		if errno := d.rewind(); errno != 0 {
			return nil, errno
		}
		d.pos = 2
	}
	if errno := d.fill(); errno != 0 {
		return nil, errno
	}
	if len(d.buf) == 0 {
		return nil, 0
	}
	e := d.buf[0]
	d.buf = d.buf[1:]
	d.pos++
	de := &fuse.DirEntry{Name: e.Name(), Mode: unixMode(e.Type()) & syscall.S_IFMT, Off: d.pos}
	if fi, err := e.Info(); err == nil {
		if ino, ok := image.InodeOf(fi); ok {
			de.Ino = ino.Ino
		}
	}
	d.last, d.lastN = e, e.Name()
	return de, 0
}

// Seekdir moves to offset off (a value Readdirent returned, or 0).
func (d *imageDir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == d.pos {
		return 0
	}
	if off < d.pos || d.pos < 2 {
		if errno := d.rewind(); errno != 0 {
			return errno
		}
	}
	for d.pos < off {
		de, errno := d.Readdirent(ctx)
		if errno != 0 {
			return errno
		}
		if de == nil {
			break
		}
	}
	return 0
}

// Lookup serves READDIRPLUS for the entry just returned, from the entry's
// own FileInfo.
func (d *imageDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.last != nil && d.lastN == name {
		if fi, err := d.last.Info(); err == nil {
			return d.n.newChild(ctx, name, fi, out), 0
		}
	}
	return d.n.Lookup(ctx, name, out)
}

// Releasedir closes the directory.
func (d *imageDir) Releasedir(ctx context.Context, flags uint32) {
	if d.f != nil {
		d.f.Close()
	}
}

// xattrs returns n's extended attributes, sorted by key.
func (n *imageNode) xattrs() ([]image.Xattr, syscall.Errno) {
	xfs, ok := n.root.fsys.(image.XattrFS)
	if !ok {
		return nil, 0
	}
	xs, err := xfs.Xattrs(n.name)
	if err != nil {
		return nil, toErrno(err)
	}
	return xs, 0
}

// Getxattr returns one extended attribute.
func (n *imageNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	xs, errno := n.xattrs()
	if errno != 0 {
		return 0, errno
	}
	i := sort.Search(len(xs), func(i int) bool { return xs[i].Key >= attr })
	if i == len(xs) || xs[i].Key != attr {
		return 0, syscall.ENODATA
	}
	return copyOut(dest, xs[i].Value)
}

// Listxattr lists the extended attribute names.
func (n *imageNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	xs, errno := n.xattrs()
	if errno != 0 {
		return 0, errno
	}
	var b []byte
	for _, x := range xs {
		b = append(append(b, x.Key...), 0)
	}
	return copyOut(dest, b)
}

// copyOut implements the getxattr/listxattr size protocol: an empty dest
// asks for the size, a short one gets ERANGE.
func copyOut(dest, v []byte) (uint32, syscall.Errno) {
	if len(dest) == 0 {
		return uint32(len(v)), 0
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Statfs reports the image size as the file system's (full) size.
func (n *imageNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const bs = 4096
	out.Bsize = bs
	out.Frsize = bs
	out.Blocks = uint64((n.root.size + bs - 1) / bs)
	out.NameLen = 255
	return 0
}

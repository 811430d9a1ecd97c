package erofs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/closurefs/closurefs/image"
)

var (
	errRdNotDir = errors.New("not a directory")
	errRdIsDir  = errors.New("is a directory")
)

var (
	_ image.FS      = (*Reader)(nil)
	_ image.XattrFS = (*Reader)(nil)
)

// resolve walks name from the root. Symlinks met on the way are followed
// (relative targets only, as fstest.MapFS does; an absolute target or one
// leaving the image is an error); the final symlink only if follow.
func (rd *Reader) resolve(op, name string, follow bool) (*rdInode, error) {
	if !image.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	orig := name
	for hops := 0; ; hops++ {
		in, rest, err := rd.walk(name, follow)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: orig, Err: err}
		}
		if rest == "" {
			return in, nil
		}
		if hops >= rdMaxSymlinkHop {
			return nil, &fs.PathError{Op: op, Path: orig, Err: errors.New("too many levels of symbolic links")}
		}
		name = rest
	}
}

// walk resolves name component by component. If it meets a symlink to
// follow, it returns the path to resolve instead as rest.
func (rd *Reader) walk(name string, follow bool) (in *rdInode, rest string, err error) {
	cur, err := rd.inodeAt(rd.rootNid)
	if err != nil {
		return nil, "", err
	}
	if name == "." {
		return cur, "", nil
	}
	done := 0
	for done < len(name) {
		elem := name[done:]
		if i := strings.IndexByte(elem, '/'); i >= 0 {
			elem = elem[:i]
		}
		if !cur.isDir() {
			return nil, "", errRdNotDir
		}
		e, err := rd.lookup(cur, elem)
		if err != nil {
			return nil, "", err
		}
		child, err := rd.inodeAt(e.nid)
		if err != nil {
			return nil, "", err
		}
		end := done + len(elem)
		last := end == len(name)
		if child.isSymlink() && (!last || follow) {
			t, err := rd.readLink(child)
			if err != nil {
				return nil, "", err
			}
			if path.IsAbs(t) {
				return nil, "", fmt.Errorf("symlink %s: absolute target %q is outside the image", name[:end], t)
			}
			p := path.Join(path.Dir(name[:end]), t)
			if !last {
				p = path.Join(p, name[end+1:])
			}
			if !image.ValidPath(p) {
				return nil, "", fmt.Errorf("symlink %s: target %q leaves the image", name[:end], t)
			}
			return nil, p, nil
		}
		if last && child.isDir() {
			if err := rd.checkParent(cur, child); err != nil {
				return nil, "", err
			}
		}
		cur = child
		done = end + 1
	}
	return cur, "", nil
}

// checkParent verifies that directory child, found in parent, names
// parent as its "..": with this check on every directory a walk enters,
// a hostile image cannot make a walk loop forever.
func (rd *Reader) checkParent(parent, child *rdInode) error {
	if child.nid == parent.nid || child.nid == rd.rootNid {
		return corruptf("directory loop: nid %d inside nid %d", child.nid, parent.nid)
	}
	if child.parentOK.Load() == parent.nid+1 {
		return nil
	}
	e, err := rd.lookup(child, "..")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return corruptf("nid %d: directory without ..", child.nid)
		}
		return err
	}
	if e.nid != parent.nid {
		return corruptf("directory nid %d inside nid %d has .. = %d (a directory loop or hard-linked directory)", child.nid, parent.nid, e.nid)
	}
	child.parentOK.Store(parent.nid + 1)
	return nil
}

func (rd *Reader) readLink(in *rdInode) (string, error) {
	if in.size > rdMaxSymlink {
		return "", corruptf("nid %d: symlink target of %d bytes", in.nid, in.size)
	}
	b := make([]byte, in.size)
	n, err := rd.readAt(in, b, 0)
	if n != len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return string(b), nil
}

// rdFileInfo is the fs.FileInfo of an image entry.
type rdFileInfo struct {
	name string
	in   *rdInode
}

func (fi *rdFileInfo) Name() string       { return fi.name }
func (fi *rdFileInfo) Size() int64        { return fi.in.size }
func (fi *rdFileInfo) Mode() fs.FileMode  { return fi.in.fileMode() }
func (fi *rdFileInfo) ModTime() time.Time { return time.Unix(fi.in.mtime, int64(fi.in.nsec)) }
func (fi *rdFileInfo) IsDir() bool        { return fi.in.isDir() }
func (fi *rdFileInfo) Sys() any           { return fi.in.imageInode() }

func rdBaseName(name string) string {
	if name == "." {
		return "."
	}
	return path.Base(name)
}

// Stat returns the FileInfo of name, following symlinks.
func (rd *Reader) Stat(name string) (fs.FileInfo, error) {
	in, err := rd.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &rdFileInfo{rdBaseName(name), in}, nil
}

// Lstat returns the FileInfo of name without following a final symlink.
func (rd *Reader) Lstat(name string) (fs.FileInfo, error) {
	in, err := rd.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &rdFileInfo{rdBaseName(name), in}, nil
}

// ReadLink returns the target of symlink name.
func (rd *Reader) ReadLink(name string) (string, error) {
	in, err := rd.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !in.isSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t, err := rd.readLink(in)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// Xattrs returns the extended attributes of name (not following a final
// symlink), sorted by key.
func (rd *Reader) Xattrs(name string) ([]image.Xattr, error) {
	in, err := rd.resolve("xattrs", name, false)
	if err != nil {
		return nil, err
	}
	xs, err := rd.xattrs(in)
	if err != nil {
		return nil, &fs.PathError{Op: "xattrs", Path: name, Err: err}
	}
	return xs, nil
}

// ReadDir returns the entries of directory name in name order.
func (rd *Reader) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := rd.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !in.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errRdNotDir}
	}
	es, err := rd.readDir(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(es))
	for i, e := range es {
		out[i] = &rdDirEntry{rd: rd, parent: in, e: e}
	}
	return out, nil
}

// rdDirEntry implements fs.DirEntry; Info reads the inode on demand.
type rdDirEntry struct {
	rd     *Reader
	parent *rdInode
	e      rdDirent
}

func (d *rdDirEntry) Name() string { return d.e.name }
func (d *rdDirEntry) IsDir() bool  { return d.Type().IsDir() }

// Type returns the type bits recorded in the directory entry, or the
// inode's if the entry records none.
func (d *rdDirEntry) Type() fs.FileMode {
	switch d.e.typ {
	case FTRegFile:
		return 0
	case FTDir:
		return fs.ModeDir
	case FTChrDev:
		return fs.ModeDevice | fs.ModeCharDevice
	case FTBlkDev:
		return fs.ModeDevice
	case FTFifo:
		return fs.ModeNamedPipe
	case FTSock:
		return fs.ModeSocket
	case FTSymlink:
		return fs.ModeSymlink
	}
	if fi, err := d.Info(); err == nil {
		return fi.Mode().Type()
	}
	return fs.ModeIrregular
}

func (d *rdDirEntry) Info() (fs.FileInfo, error) {
	in, err := d.rd.inodeAt(d.e.nid)
	if err != nil {
		return nil, err
	}
	if in.fileMode().Type() != d.typeBits() {
		return nil, corruptf("entry %q says type %d, inode %d has mode %#o", d.e.name, d.e.typ, in.nid, in.mode)
	}
	return &rdFileInfo{d.e.name, in}, nil
}

// typeBits is the entry's recorded type, or the inode's own when unknown.
func (d *rdDirEntry) typeBits() fs.FileMode {
	if d.e.typ == FTUnknown || d.e.typ > FTSymlink {
		if in, err := d.rd.inodeAt(d.e.nid); err == nil {
			return in.fileMode().Type()
		}
	}
	return d.Type()
}

func (d *rdDirEntry) String() string { return fs.FormatDirEntry(d) }

// Open opens name, following symlinks. Regular files implement
// io.ReaderAt and io.Seeker; directories fs.ReadDirFile.
func (rd *Reader) Open(name string) (fs.File, error) {
	in, err := rd.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi := &rdFileInfo{rdBaseName(name), in}
	switch {
	case in.isReg():
		return &file{rd: rd, fi: fi, name: name}, nil
	case in.isDir():
		return &dir{rd: rd, fi: fi, name: name}, nil
	}
	return &rdSpecial{fi: fi, name: name}, nil
}

// file is an open regular file. It implements io.ReaderAt and io.Seeker.
type file struct {
	rd     *Reader
	fi     *rdFileInfo
	name   string
	off    int64
	closed bool
}

func (f *file) Stat() (fs.FileInfo, error) { return f.fi, nil }

func (f *file) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

func (f *file) Read(p []byte) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	if f.off >= f.fi.in.size {
		return 0, io.EOF
	}
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt implements io.ReaderAt; it is safe for concurrent use.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	n, err := f.rd.readAt(f.fi.in, p, off)
	if err != nil && err != io.EOF {
		err = &fs.PathError{Op: "read", Path: f.name, Err: err}
	}
	return n, err
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.fi.in.size
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

// dir is an open directory.
type dir struct {
	rd      *Reader
	fi      *rdFileInfo
	name    string
	entries []rdDirent
	loaded  bool
	pos     int
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *dir) Close() error               { return nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errRdIsDir}
}

// ReadDir implements fs.ReadDirFile.
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.loaded {
		es, err := d.rd.readDir(d.fi.in)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.name, Err: err}
		}
		d.entries, d.loaded = es, true
	}
	rest := d.entries[d.pos:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	out := make([]fs.DirEntry, len(rest))
	for i, e := range rest {
		out[i] = &rdDirEntry{rd: d.rd, parent: d.fi.in, e: e}
	}
	d.pos += len(rest)
	return out, nil
}

// rdSpecial is an open symlink target that is no file or directory:
// a device, fifo or socket. It has metadata only.
type rdSpecial struct {
	fi   *rdFileInfo
	name string
}

func (s *rdSpecial) Stat() (fs.FileInfo, error) { return s.fi, nil }
func (s *rdSpecial) Close() error               { return nil }

// Read reports end of file: the image holds no content for these.
func (s *rdSpecial) Read([]byte) (int, error) { return 0, io.EOF }

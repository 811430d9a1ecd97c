package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
)

// NodeTree is what an image reader provides to NodeFS: its inodes, of
// type N, and how to find, list and read them. NodeFS does the rest of
// the read interface (FS, XattrFS) once for every format: resolving paths,
// following symlinks, and open files and directories.
type NodeTree[N any] interface {
	// Root returns the root directory.
	Root() (N, error)
	// Lookup returns the entry name of directory dir, or an error that
	// wraps fs.ErrNotExist if there is none.
	Lookup(dir N, name string) (N, error)
	// Info returns the FileInfo of n, named name. Its Sys is *Inode.
	Info(name string, n N) fs.FileInfo
	// ReadLink returns the target of symlink n.
	ReadLink(n N) (string, error)
	// OpenFile returns the contents of regular file n, Info(n).Size()
	// bytes, safe for concurrent use.
	OpenFile(n N) (io.ReaderAt, error)
	// OpenDir returns the entries of directory n in name order.
	OpenDir(n N) (DirIter, error)
	// Xattrs returns the extended attributes of n, sorted by key.
	Xattrs(n N) ([]Xattr, error)
}

// DirIter lists a directory one entry at a time; Next returns io.EOF after
// the last entry.
type DirIter interface {
	Next() (fs.DirEntry, error)
}

// SliceDirIter is a DirIter over entries already read.
type SliceDirIter []fs.DirEntry

// Next returns the next entry, or io.EOF.
func (s *SliceDirIter) Next() (fs.DirEntry, error) {
	if len(*s) == 0 {
		return nil, io.EOF
	}
	e := (*s)[0]
	*s = (*s)[1:]
	return e, nil
}

// maxSymlinkHops bounds the symlinks followed while resolving one path.
const maxSymlinkHops = 40

var (
	errNotDir = errors.New("not a directory")
	errIsDir  = errors.New("is a directory")
)

// NodeFS is the read interface (FS and XattrFS) over a NodeTree. Symlinks
// met while resolving a path are followed within the image (relative
// targets only, as testing/fstest.MapFS does: an absolute target, or one
// leaving the image, is an error); a final symlink only by Open, Stat and
// ReadDir.
type NodeFS[N any] struct {
	t    NodeTree[N]
	dirs *dirCache[N]
}

// NewNodeFS returns the read interface over t.
func NewNodeFS[N any](t NodeTree[N]) NodeFS[N] {
	return NodeFS[N]{t, &dirCache[N]{m: make(map[string]N)}}
}

// dirCache maps directory paths to their nodes, so that resolving many
// names in one directory (a listing's entries, a walk) does not look up
// every element of the path again. Only directories reached without
// following a symlink are kept; the cache is emptied when full.
type dirCache[N any] struct {
	mu sync.Mutex
	m  map[string]N
}

// maxCachedDirs bounds the dirCache.
const maxCachedDirs = 4096

func (c *dirCache[N]) get(name string) (N, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[name]
	return n, ok
}

func (c *dirCache[N]) put(name string, n N) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedDirs {
		clear(c.m)
	}
	c.m[name] = n
}

// Resolve returns the node name leads to, following a final symlink only
// if follow; op names the operation in errors.
func (f NodeFS[N]) Resolve(op, name string, follow bool) (N, error) {
	var zero N
	if !ValidPath(name) {
		return zero, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	n, _, err := f.walk(name, follow)
	if err != nil {
		return zero, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

// Canonical returns the path in the image, with no symlink in it but
// perhaps the last element (followed only if follow), that a path typed
// by a user leads to. Unlike FS paths, p may start with "/", end with "/"
// (its last element must then be a directory, a symlink to one followed)
// and hold "." and ".." elements, which are resolved as the kernel
// resolves them: after the symlinks before them. ".." at the root stays
// there.
func (f NodeFS[N]) Canonical(p string, follow bool) (string, error) {
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return ".", nil
	}
	_, name, err := f.walk(p, follow)
	if err != nil {
		return "", &fs.PathError{Op: "resolve", Path: p, Err: err}
	}
	return name, nil
}

// segment is what is left to resolve of a path or of a symlink's target:
// one or more elements ("/"-separated, perhaps empty), and the symlink the
// target is of ("" for the path walked).
type segment struct{ rest, via string }

// walk resolves name element by element, and returns the node and its
// path with no symlink in it. A symlink's target is resolved from the
// directory holding it, as the kernel does: ".." goes up from the
// directory the walk has reached, so that in s/../x, with s a symlink to
// d/e, ".." is d, not the directory holding s.
//
// Paths are resolved on every Open and Stat: a walk through no symlink
// allocates nothing beyond the lookups, naming its directories by slices
// of name.
func (f NodeFS[N]) walk(name string, follow bool) (N, string, error) {
	var zero N
	root, err := f.t.Root()
	if err != nil || name == "." {
		return root, ".", err
	}
	cur, curName := root, "." // the directory reached, and its path
	seg := segment{rest: name}
	// Start from the deepest directory of name's path already resolved.
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		if d, ok := f.dirs.get(name[:i]); ok {
			cur, curName, seg.rest = d, name[:i], name[i+1:]
		}
	}
	var pending []segment // segments a symlink's target interrupted
	exact := true         // curName is a prefix of name
	hops := 0             // symlinks followed
	for more := true; more; {
		elem := seg.rest
		if i := strings.IndexByte(elem, '/'); i >= 0 {
			elem, seg.rest = elem[:i], elem[i+1:]
		} else {
			more = false
		}
		last := !more && len(pending) == 0
		next := func() {
			if !more && len(pending) > 0 {
				seg, pending, more = pending[len(pending)-1], pending[:len(pending)-1], true
			}
		}
		switch elem {
		case "", ".":
			exact = false
			next()
			continue
		case "..":
			exact = false
			if curName == "." {
				if seg.via != "" {
					return zero, "", fmt.Errorf("symlink %s: target leaves the image", seg.via)
				}
			} else if cur, curName, err = f.parent(curName); err != nil {
				return zero, "", err
			}
			next()
			continue
		}
		child, err := f.t.Lookup(cur, elem)
		if err != nil {
			return zero, "", err
		}
		var full string
		switch {
		case exact && more:
			full = name[:len(name)-len(seg.rest)-1]
		case exact:
			full = name
		case curName == ".":
			full = elem
		default:
			full = curName + "/" + elem
		}
		mode := f.t.Info(elem, child).Mode()
		if mode&fs.ModeSymlink != 0 && (!last || follow) {
			if hops++; hops > maxSymlinkHops {
				return zero, "", errors.New("too many levels of symbolic links")
			}
			t, err := f.t.ReadLink(child)
			if err != nil {
				return zero, "", err
			}
			if t == "" {
				return zero, "", fmt.Errorf("symlink %s has an empty target", full)
			}
			if path.IsAbs(t) {
				return zero, "", fmt.Errorf("symlink %s: absolute target %q is outside the image", full, t)
			}
			if more {
				pending = append(pending, seg)
			}
			seg, more, exact = segment{t, full}, true, false
			continue
		}
		if last {
			return child, full, nil
		}
		if !mode.IsDir() {
			return zero, "", errNotDir
		}
		f.dirs.put(full, child)
		cur, curName = child, full
		next()
	}
	// The path ended in "", "." or "..", or in a symlink to a directory.
	return cur, curName, nil
}

// parent returns the parent of directory dir, a path with no symlink in
// it, and the parent's path: from the cache, where the walk that reached
// dir put it, or else by walking there again.
func (f NodeFS[N]) parent(dir string) (N, string, error) {
	p := path.Dir(dir)
	if p == "." {
		n, err := f.t.Root()
		return n, p, err
	}
	if n, ok := f.dirs.get(p); ok {
		return n, p, nil
	}
	return f.walk(p, true)
}

func baseName(name string) string {
	if name == "." {
		return "."
	}
	return path.Base(name)
}

// Stat returns the FileInfo of name, following symlinks.
func (f NodeFS[N]) Stat(name string) (fs.FileInfo, error) {
	n, err := f.Resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return f.t.Info(baseName(name), n), nil
}

// Lstat returns the FileInfo of name without following a final symlink.
func (f NodeFS[N]) Lstat(name string) (fs.FileInfo, error) {
	n, err := f.Resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return f.t.Info(baseName(name), n), nil
}

// ReadLink returns the target of symlink name.
func (f NodeFS[N]) ReadLink(name string) (string, error) {
	n, err := f.Resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if f.t.Info(baseName(name), n).Mode()&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t, err := f.t.ReadLink(n)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

// Xattrs returns the extended attributes of name (not following a final
// symlink), sorted by key.
func (f NodeFS[N]) Xattrs(name string) ([]Xattr, error) {
	n, err := f.Resolve("xattrs", name, false)
	if err != nil {
		return nil, err
	}
	xs, err := f.t.Xattrs(n)
	if err != nil {
		return nil, &fs.PathError{Op: "xattrs", Path: name, Err: err}
	}
	return xs, nil
}

// ReadDir returns the entries of directory name in name order.
func (f NodeFS[N]) ReadDir(name string) ([]fs.DirEntry, error) {
	d, err := f.Open(name)
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			pe.Op = "readdir"
		}
		return nil, err
	}
	rd, ok := d.(*nodeDir[N])
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return rd.ReadDir(-1)
}

// Open opens name, following symlinks. Regular files implement
// io.ReaderAt and io.Seeker, safe to use concurrently through ReadAt;
// directories implement fs.ReadDirFile and stream their listing.
func (f NodeFS[N]) Open(name string) (fs.File, error) {
	n, err := f.Resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi := f.t.Info(baseName(name), n)
	switch {
	case fi.Mode().IsRegular():
		ra, err := f.t.OpenFile(n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &nodeFile{ra: ra, fi: fi, name: name}, nil
	case fi.IsDir():
		return &nodeDir[N]{t: f.t, n: n, fi: fi, name: name}, nil
	}
	return &nodeSpecial{fi: fi, name: name}, nil
}

// nodeFile is an open regular file.
type nodeFile struct {
	ra     io.ReaderAt
	fi     fs.FileInfo
	name   string
	off    int64
	closed bool
}

func (f *nodeFile) Stat() (fs.FileInfo, error) { return f.fi, nil }

func (f *nodeFile) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

func (f *nodeFile) Read(p []byte) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	if f.off >= f.fi.Size() {
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
func (f *nodeFile) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	n, err := f.ra.ReadAt(p, off)
	if err != nil && err != io.EOF {
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			err = &fs.PathError{Op: "read", Path: f.name, Err: err}
		}
	}
	return n, err
}

// StoredAt implements StoredRanger for files whose tree's reader does.
func (f *nodeFile) StoredAt(off int64, n int) (int64, int, bool) {
	if s, ok := f.ra.(StoredRanger); ok && !f.closed {
		return s.StoredAt(off, n)
	}
	return 0, 0, false
}

func (f *nodeFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.fi.Size()
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

// nodeDir is an open directory, listed on the first ReadDir.
type nodeDir[N any] struct {
	t    NodeTree[N]
	n    N
	fi   fs.FileInfo
	name string
	it   DirIter
}

func (d *nodeDir[N]) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *nodeDir[N]) Close() error               { return nil }
func (d *nodeDir[N]) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errIsDir}
}

// ReadDir implements fs.ReadDirFile, streaming the listing.
func (d *nodeDir[N]) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.it == nil {
		it, err := d.t.OpenDir(d.n)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.name, Err: err}
		}
		d.it = it
	}
	var out []fs.DirEntry
	for n <= 0 || len(out) < n {
		e, err := d.it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, &fs.PathError{Op: "readdir", Path: d.name, Err: err}
		}
		out = append(out, e)
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// nodeSpecial is an open device, fifo or socket: it has metadata only.
type nodeSpecial struct {
	fi   fs.FileInfo
	name string
}

func (s *nodeSpecial) Stat() (fs.FileInfo, error) { return s.fi, nil }
func (s *nodeSpecial) Close() error               { return nil }

// Read reports end of file: the image holds no content for these.
func (s *nodeSpecial) Read([]byte) (int, error) { return 0, io.EOF }

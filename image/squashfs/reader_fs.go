package squashfs

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

// resolve walks name from the root. Symlinks met on the way are followed
// (relative targets only, as fstest.MapFS does; an absolute target or one
// leaving the image is not found); the final symlink only if follow.
func (rd *Reader) resolve(op, name string, follow bool) (*Inode, error) {
	if !image.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	orig := name
	for hops := 0; ; hops++ {
		in, rest, err := rd.walk(name, follow)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: orig, Err: wrapErr(err)}
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
func (rd *Reader) walk(name string, follow bool) (in *Inode, rest string, err error) {
	cur, err := rd.inode(rd.sb.RootInode)
	if err != nil {
		return nil, "", err
	}
	if name == "." {
		return cur, "", nil
	}
	done := 0 // bytes of name resolved
	for done < len(name) {
		elem := name[done:]
		if i := strings.IndexByte(elem, '/'); i >= 0 {
			elem = elem[:i]
		}
		if !cur.isDir() {
			return nil, "", errNotDir
		}
		e, err := rd.Lookup(cur, elem)
		if err != nil {
			return nil, "", err
		}
		child, err := rd.child(cur, e)
		if err != nil {
			return nil, "", err
		}
		end := done + len(elem)
		last := end == len(name)
		if child.isSymlink() && (!last || follow) {
			t := child.Target
			if t == "" {
				return nil, "", fmt.Errorf("symlink %s has an empty target", name[:end])
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
		cur = child
		done = end + 1
	}
	return cur, "", nil
}

// fileInfo is the fs.FileInfo of an image entry.
type fileInfo struct {
	name string
	in   *Inode
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return int64(fi.in.Size) }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.in.Mode }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(int64(fi.in.Mtime), 0) }
func (fi *fileInfo) IsDir() bool        { return fi.in.isDir() }
func (fi *fileInfo) Sys() any           { return fi.in.ImageInode() }

// FileInfo returns an fs.FileInfo for inode in under the given name;
// Sys returns *image.Inode.
func (in *Inode) FileInfo(name string) fs.FileInfo { return &fileInfo{name, in} }

func baseName(name string) string {
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
	return &fileInfo{baseName(name), in}, nil
}

// Lstat returns the FileInfo of name without following a final symlink.
func (rd *Reader) Lstat(name string) (fs.FileInfo, error) {
	in, err := rd.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{baseName(name), in}, nil
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
	return in.Target, nil
}

// Xattrs returns the extended attributes of name (not following a final
// symlink), sorted by key.
func (rd *Reader) Xattrs(name string) ([]image.Xattr, error) {
	in, err := rd.resolve("xattrs", name, false)
	if err != nil {
		return nil, err
	}
	xs, err := rd.InodeXattrs(in)
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
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	ents, err := rd.dirEntries(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = &fsDirEntry{rd: rd, parent: in, e: e}
	}
	return out, nil
}

// fsDirEntry implements fs.DirEntry; Info reads the inode on demand.
type fsDirEntry struct {
	rd     *Reader
	parent *Inode
	e      DirEntry
}

func (d *fsDirEntry) Name() string      { return d.e.Name }
func (d *fsDirEntry) IsDir() bool       { return d.e.Type == TypeDir }
func (d *fsDirEntry) Type() fs.FileMode { return d.e.Mode() }
func (d *fsDirEntry) Info() (fs.FileInfo, error) {
	in, err := d.rd.child(d.parent, d.e)
	if err != nil {
		return nil, wrapErr(err)
	}
	return &fileInfo{d.e.Name, in}, nil
}
func (d *fsDirEntry) String() string { return fs.FormatDirEntry(d) }

// Open opens name, following symlinks. Regular files implement
// io.ReaderAt and io.Seeker; directories fs.ReadDirFile.
func (rd *Reader) Open(name string) (fs.File, error) {
	in, err := rd.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	fi := &fileInfo{baseName(name), in}
	switch {
	case in.isFile():
		fd, err := rd.FileData(in)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &file{FileData: fd, fi: fi, name: name}, nil
	case in.isDir():
		return &dir{rd: rd, fi: fi, name: name}, nil
	}
	return &special{fi: fi, name: name}, nil
}

// file is an open regular file.
type file struct {
	*FileData
	fi     *fileInfo
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
	n, err := f.FileData.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrClosed}
	}
	return f.FileData.ReadAt(p, off)
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.Size()
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
	rd   *Reader
	fi   *fileInfo
	name string
	d    *DirReader
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *dir) Close() error               { return nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile, streaming the listing.
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.d == nil {
		r, err := d.rd.OpenDir(d.fi.in)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.name, Err: err}
		}
		d.d = r
	}
	var out []fs.DirEntry
	for n <= 0 || len(out) < n {
		e, err := d.d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, &fs.PathError{Op: "readdir", Path: d.name, Err: err}
		}
		out = append(out, &fsDirEntry{rd: d.rd, parent: d.fi.in, e: e})
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// special is an open device, fifo or socket: it has metadata only.
type special struct {
	fi   *fileInfo
	name string
}

func (s *special) Stat() (fs.FileInfo, error) { return s.fi, nil }
func (s *special) Close() error               { return nil }

// Read reports end of file: the image holds no content for these.
func (s *special) Read([]byte) (int, error) { return 0, io.EOF }

package squashfs

import (
	"io"
	"io/fs"
	"time"

	"github.com/closurefs/closurefs/image"
)

var (
	_ image.FS      = (*Reader)(nil)
	_ image.XattrFS = (*Reader)(nil)
)

// tree is the Reader as an image.NodeTree, which gives it the read
// interface (Open, Stat, Lstat, ReadLink, ReadDir, Xattrs).
type tree struct{ rd *Reader }

func (t tree) Root() (*Inode, error) {
	in, err := t.rd.inode(t.rd.sb.RootInode)
	return in, wrapErr(err)
}

func (t tree) Lookup(dir *Inode, name string) (*Inode, error) {
	e, err := t.rd.Lookup(dir, name)
	if err != nil {
		return nil, wrapErr(err)
	}
	in, err := t.rd.child(dir, e)
	return in, wrapErr(err)
}

func (t tree) Info(name string, in *Inode) fs.FileInfo { return &fileInfo{name, in} }

func (t tree) ReadLink(in *Inode) (string, error) { return in.Target, nil }

func (t tree) OpenFile(in *Inode) (io.ReaderAt, error) { return t.rd.FileData(in) }

func (t tree) Xattrs(in *Inode) ([]image.Xattr, error) { return t.rd.InodeXattrs(in) }

func (t tree) OpenDir(in *Inode) (image.DirIter, error) {
	d, err := t.rd.OpenDir(in)
	if err != nil {
		return nil, err
	}
	return &dirIter{rd: t.rd, parent: in, d: d}, nil
}

// dirIter lists a directory as fs.DirEntry values.
type dirIter struct {
	rd     *Reader
	parent *Inode
	d      *DirReader
}

func (it *dirIter) Next() (fs.DirEntry, error) {
	e, err := it.d.Next()
	if err != nil {
		return nil, err
	}
	return &fsDirEntry{rd: it.rd, parent: it.parent, e: e}, nil
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

package erofs

import (
	"errors"
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

func (t tree) Root() (*rdInode, error) { return t.rd.inodeAt(t.rd.rootNid) }

// Lookup finds name in dir. A directory found must name dir as its "..",
// so that no walk can loop.
func (t tree) Lookup(dir *rdInode, name string) (*rdInode, error) {
	e, err := t.rd.lookup(dir, name)
	if err != nil {
		return nil, err
	}
	child, err := t.rd.inodeAt(e.nid)
	if err != nil {
		return nil, err
	}
	if child.isDir() {
		if err := t.rd.checkParent(dir, child); err != nil {
			return nil, err
		}
	}
	return child, nil
}

func (t tree) Info(name string, in *rdInode) fs.FileInfo { return &rdFileInfo{name, in} }

func (t tree) ReadLink(in *rdInode) (string, error) { return t.rd.readLink(in) }

func (t tree) OpenFile(in *rdInode) (io.ReaderAt, error) { return fileData{t.rd, in}, nil }

func (t tree) Xattrs(in *rdInode) ([]image.Xattr, error) { return t.rd.xattrs(in) }

func (t tree) OpenDir(in *rdInode) (image.DirIter, error) {
	es, err := t.rd.readDir(in)
	if err != nil {
		return nil, err
	}
	ents := make(image.SliceDirIter, len(es))
	for i, e := range es {
		ents[i] = &rdDirEntry{rd: t.rd, parent: in, e: e}
	}
	return &ents, nil
}

// fileData is the content of a regular file.
type fileData struct {
	rd *Reader
	in *rdInode
}

func (f fileData) ReadAt(p []byte, off int64) (int, error) { return f.rd.readAt(f.in, p, off) }

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

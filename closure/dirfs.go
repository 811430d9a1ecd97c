package closure

import (
	"io/fs"
	"os"
	"strings"

	"github.com/closurefs/closurefs/image"
)

// DirFS is a directory on disk as an fs.FS (with fs.ReadDirFS, fs.StatFS and
// fs.ReadLinkFS), like os.DirFS but accepting any file name the kernel
// accepts: os.DirFS rejects names that are not valid UTF-8, which Nix
// store paths may contain (NAR names are arbitrary bytes). Files opened
// are *os.File, so regular files implement io.ReaderAt.
//
// Names are slash-separated and relative, as fs.ValidPath requires apart
// from the UTF-8 rule; symlinks in the middle of a name are followed by the
// kernel, as with os.DirFS.
type DirFS string

func (d DirFS) join(op, name string) (string, error) {
	if !image.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return joinDir(string(d), name), nil
}

// joinDir joins a directory and a valid relative name.
func joinDir(dir, name string) string {
	switch {
	case name == ".":
		return dir
	case strings.HasSuffix(dir, "/"):
		return dir + name
	}
	return dir + "/" + name
}

// Open opens the named file.
func (d DirFS) Open(name string) (fs.File, error) {
	p, err := d.join("open", name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ReadDir reads the named directory, sorted by name.
func (d DirFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := d.join("readdir", name)
	if err != nil {
		return nil, err
	}
	return os.ReadDir(p)
}

// Stat returns the FileInfo of the named file, following symlinks.
func (d DirFS) Stat(name string) (fs.FileInfo, error) {
	p, err := d.join("stat", name)
	if err != nil {
		return nil, err
	}
	return os.Stat(p)
}

// Lstat returns the FileInfo of the named file, not following a final
// symlink.
func (d DirFS) Lstat(name string) (fs.FileInfo, error) {
	p, err := d.join("lstat", name)
	if err != nil {
		return nil, err
	}
	return os.Lstat(p)
}

// ReadLink returns the target of the named symlink.
func (d DirFS) ReadLink(name string) (string, error) {
	p, err := d.join("readlink", name)
	if err != nil {
		return "", err
	}
	return os.Readlink(p)
}

var (
	_ fs.ReadDirFS  = DirFS("")
	_ fs.StatFS     = DirFS("")
	_ fs.ReadLinkFS = DirFS("")
)

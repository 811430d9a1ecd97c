// Package image holds what the erofs and squashfs packages share: the read
// interface every image reader implements, and the Tree model every image
// writer consumes.
package image

import (
	"io"
	"io/fs"
	"strings"
	"syscall"
	"time"
)

// FS is the read interface implemented by every image reader. It is the
// seam between image formats and their users (NAR hashing, verification,
// FUSE): a directory on disk, via os.DirFS, satisfies the embedded
// interfaces too, and InodeOf recovers its inode data.
//
// Files returned by Open for regular files implement io.ReaderAt.
// FileInfo.Sys of every entry returns *Inode.
type FS interface {
	fs.ReadDirFS
	fs.StatFS
	fs.ReadLinkFS
}

// XattrFS is implemented by readers that expose extended attributes.
type XattrFS interface {
	// Xattrs returns the extended attributes of name (not following a
	// final symlink), sorted by key.
	Xattrs(name string) ([]Xattr, error)
}

// Xattr is one extended attribute.
type Xattr struct {
	Key   string // full name, e.g. "user.foo" or "security.capability"
	Value []byte
}

// Inode is the metadata an image keeps for an entry beyond fs.FileInfo.
// Image readers return it from FileInfo.Sys.
type Inode struct {
	Ino   uint64 // inode number as stored in (or derived from) the image
	Nlink uint32
	UID   uint32
	GID   uint32
	Rdev  uint64 // device number for character and block devices
	Mtime time.Time
}

// InodeOf returns the inode data of fi, which may come from an image reader
// (Sys is *Inode) or from the operating system (Sys is *syscall.Stat_t).
// ok is false if fi carries neither.
func InodeOf(fi fs.FileInfo) (ino Inode, ok bool) {
	switch s := fi.Sys().(type) {
	case *Inode:
		return *s, true
	case *syscall.Stat_t:
		return Inode{
			Ino:   s.Ino,
			Nlink: uint32(s.Nlink),
			UID:   s.Uid,
			GID:   s.Gid,
			Rdev:  s.Rdev,
			Mtime: time.Unix(s.Mtim.Sec, s.Mtim.Nsec),
		}, true
	}
	return Inode{}, false
}

// ReaderAtFile is a regular file opened from an FS.
type ReaderAtFile interface {
	fs.File
	io.ReaderAt
}

// A StoredRanger is a file of an image that can tell where its bytes are
// stored unchanged in the image, so that a caller holding the image file
// can pass them on (splice, copy_file_range) without a copy through
// memory.
type StoredRanger interface {
	// StoredAt reports that bytes [off, off+k) of the file are stored as
	// they are, one after the other, at image offset imgOff, for the
	// largest k <= n; ok is false if byte off is not stored as it is
	// (compressed, a hole, shared with other files' tails) or is past the
	// end of the file.
	StoredAt(off int64, n int) (imgOff int64, k int, ok bool)
}

// ValidPath reports whether name is a valid path for an FS: fs.ValidPath
// without its UTF-8 requirement, since Nix store paths may hold file names
// in any encoding (NAR names are arbitrary bytes) and NAR hashing must
// reach them. Names holding a NUL byte, which no file system stores, are
// invalid.
func ValidPath(name string) bool {
	if name == "." {
		return true
	}
	if strings.IndexByte(name, 0) >= 0 {
		return false
	}
	for {
		i := strings.IndexByte(name, '/')
		elem := name
		if i >= 0 {
			elem = name[:i]
		}
		if elem == "" || elem == "." || elem == ".." {
			return false
		}
		if i < 0 {
			return true
		}
		name = name[i+1:]
	}
}

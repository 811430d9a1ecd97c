//go:build linux

package closure

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/rawsys"
	"golang.org/x/sys/unix"
)

// A DirFS is serialised with raw system calls relative to directory file
// descriptors: per regular file openat, fstat, read and close, and no
// per-entry lstat (directory entry types come from getdents). This avoids
// os.File's poller registration and finalizers, which for a store of many
// small files cost more than the hashing. The bytes are the same as the
// generic fs.FS walk.

// dumpDirFS writes the NAR of name in the directory dir.
func (e *narEncoder) dumpDirFS(dir DirFS, name string) error {
	if !image.ValidPath(name) {
		return &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	full := joinDir(string(dir), name)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: full, Err: err}
	}
	if err := e.str("nix-archive-1"); err != nil {
		return err
	}
	parent, base := string(dir), name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		parent, base = joinDir(parent, name[:i]), name[i+1:]
	}
	if name == "." {
		parent, base = full, "."
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: parent, Err: err}
	}
	defer unix.Close(pfd)
	return e.nodeAt(pfd, parent, base, st.Mode&unix.S_IFMT)
}

// nodeAt writes the node for entry name of the directory open as dirfd
// (whose path is dirPath, for errors); typ is its S_IFMT type.
func (e *narEncoder) nodeAt(dirfd int, dirPath, name string, typ uint32) error {
	switch typ {
	case unix.S_IFREG:
		return e.regularAt(dirfd, dirPath, name)
	case unix.S_IFLNK:
		target, err := rawsys.Readlinkat(dirfd, name)
		if err != nil {
			return &fs.PathError{Op: "readlink", Path: joinDir(dirPath, name), Err: err}
		}
		return e.strs("(", "type", "symlink", "target", target, ")")
	case unix.S_IFDIR:
		return e.dirAt(dirfd, dirPath, name)
	default:
		return fmt.Errorf("%s: unsupported file type %#o", joinDir(dirPath, name), typ)
	}
}

func (e *narEncoder) regularAt(dirfd int, dirPath, name string) error {
	fd, err := rawsys.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return &fs.PathError{Op: "open", Path: joinDir(dirPath, name), Err: err}
	}
	defer rawsys.Close(fd)
	var st unix.Stat_t
	if err := rawsys.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: joinDir(dirPath, name), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: changed type while being read", joinDir(dirPath, name))
	}
	if err := e.strs("(", "type", "regular"); err != nil {
		return err
	}
	if st.Mode&0o100 != 0 {
		if err := e.strs("executable", ""); err != nil {
			return err
		}
	}
	if err := e.str("contents"); err != nil {
		return err
	}
	size := st.Size
	var l [8]byte
	binary.LittleEndian.PutUint64(l[:], uint64(size))
	if err := e.write(l[:]); err != nil {
		return err
	}
	if err := e.copyContents(rawsys.Reader{Fd: fd, Path: joinDir(dirPath, name)}, joinDir(dirPath, name), size); err != nil {
		return err
	}
	if err := e.write(zeros[:pad8(uint64(size))]); err != nil {
		return err
	}
	return e.str(")")
}

// dirent is one directory entry: name and S_IFMT type (0 if unknown).
type dirent struct {
	name string
	typ  uint32
}

func (e *narEncoder) dirAt(dirfd int, dirPath, name string) error {
	path := joinDir(dirPath, name)
	fd, err := rawsys.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer rawsys.Close(fd)
	ents, err := e.readDirents(fd)
	if err != nil {
		return &fs.PathError{Op: "readdir", Path: path, Err: err}
	}
	if err := e.strs("(", "type", "directory"); err != nil {
		return err
	}
	for _, ent := range ents {
		typ := ent.typ
		if typ == 0 {
			var st unix.Stat_t
			if err := unix.Fstatat(fd, ent.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return &fs.PathError{Op: "lstat", Path: joinDir(path, ent.name), Err: err}
			}
			typ = st.Mode & unix.S_IFMT
		}
		if err := e.strs("entry", "(", "name", ent.name, "node"); err != nil {
			return err
		}
		if err := e.nodeAt(fd, path, ent.name, typ); err != nil {
			return err
		}
		if err := e.str(")"); err != nil {
			return err
		}
	}
	return e.str(")")
}

// readDirents returns the entries of the directory open as fd, without .
// and .., sorted by name.
func (e *narEncoder) readDirents(fd int) ([]dirent, error) {
	if e.dbuf == nil {
		e.dbuf = make([]byte, 64<<10)
	}
	var ents []dirent
	err := rawsys.ReadDir(fd, e.dbuf, func(name []byte, dtype byte) {
		ents = append(ents, dirent{name: string(name), typ: dtToMode(dtype)})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ents, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return ents, nil
}

func dtToMode(dt byte) uint32 {
	switch dt {
	case unix.DT_REG:
		return unix.S_IFREG
	case unix.DT_DIR:
		return unix.S_IFDIR
	case unix.DT_LNK:
		return unix.S_IFLNK
	case unix.DT_UNKNOWN:
		return 0
	default:
		return unix.S_IFIFO // any other type: reported as unsupported
	}
}

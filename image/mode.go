package image

import (
	"fmt"
	"io/fs"
	"syscall"
)

// UnixMode converts an fs.FileMode to POSIX st_mode bits (file type,
// permissions, setuid, setgid, sticky), as image formats and FUSE store
// them. It fails for types POSIX has no bits for (fs.ModeIrregular).
func UnixMode(m fs.FileMode) (uint32, error) {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		v |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		v |= syscall.S_ISVTX
	}
	switch {
	case m.IsRegular():
		v |= syscall.S_IFREG
	case m.IsDir():
		v |= syscall.S_IFDIR
	case m&fs.ModeSymlink != 0:
		v |= syscall.S_IFLNK
	case m&fs.ModeCharDevice != 0:
		v |= syscall.S_IFCHR
	case m&fs.ModeDevice != 0:
		v |= syscall.S_IFBLK
	case m&fs.ModeNamedPipe != 0:
		v |= syscall.S_IFIFO
	case m&fs.ModeSocket != 0:
		v |= syscall.S_IFSOCK
	default:
		return 0, fmt.Errorf("unsupported file type %v", m.Type())
	}
	return v, nil
}

// FileMode converts POSIX st_mode bits to an fs.FileMode; the inverse of
// UnixMode. An unknown file type gives a regular file's mode.
func FileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

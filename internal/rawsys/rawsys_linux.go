//go:build linux

// Package rawsys makes the short file system calls of closurefs's store
// walks and FUSE daemon as raw system calls.
//
// Made the usual way, every system call tells the Go scheduler that the
// thread may block, and on a machine with slow system calls the
// scheduler's monitor then keeps handing the goroutine's processor to
// another thread and back: tens of thousands of wake-ups and futex calls
// per closure walk (measured with strace -c), and a cold stat walk of a
// closure a third slower. These wrappers keep the goroutine on its
// processor for the call's duration instead, which is what a worker that
// does nothing else wants. They suit calls that are short or wait only
// for the disk (never for another process or the network).
package rawsys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errOf returns e as an error, nil for 0.
func errOf(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// Openat is unix.Openat without the scheduler hand-off.
func Openat(dirfd int, name string, flags int) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	for {
		fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(fd), nil
	}
}

// Fstat is unix.Fstat without the scheduler hand-off.
func Fstat(fd int, st *unix.Stat_t) error {
	_, _, e := unix.RawSyscall(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0)
	return errOf(e)
}

// Read is unix.Read without the scheduler hand-off.
func Read(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Getdents is unix.Getdents without the scheduler hand-off.
func Getdents(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_GETDENTS64, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// ReadDir reads the whole directory open as fd with getdents64, using buf
// (at least a few hundred bytes) as the buffer, and calls fn with the name
// and d_type (unix.DT_*) of every entry but . and .., in the order the
// file system returns them. name is only valid during the call. A
// malformed record is an error, never a read out of bounds.
func ReadDir(fd int, buf []byte, fn func(name []byte, dtype byte)) error {
	for {
		n, err := Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		b := buf[:n]
		for len(b) > 0 {
			// struct linux_dirent64: ino u64, off s64, reclen u16,
			// type u8, name (NUL-terminated, padded).
			if len(b) < 19 {
				return errors.New("short directory entry")
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return fmt.Errorf("bad directory entry length %d", reclen)
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if !(len(name) == 1 && name[0] == '.') && !(len(name) == 2 && name[0] == '.' && name[1] == '.') {
				fn(name, b[18])
			}
			b = b[reclen:]
		}
	}
}

// Readlinkat returns the target of the symlink name relative to dirfd,
// growing its buffer as needed up to 1 MiB (longer targets are an error).
func Readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<20 {
			return "", errors.New("symlink target too long")
		}
	}
}

// Close is unix.Close without the scheduler hand-off.
func Close(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// Lstat is syscall.Lstat without the scheduler hand-off.
func Lstat(path string, st *syscall.Stat_t) error {
	return Fstatat(unix.AT_FDCWD, path, st, unix.AT_SYMLINK_NOFOLLOW)
}

// Fstatat is syscall.Fstatat without the scheduler hand-off.
func Fstatat(dirfd int, name string, st *syscall.Stat_t, flags int) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(st)), uintptr(flags), 0, 0)
	return errOf(e)
}

// Reader reads a file descriptor it does not own with Read, as an
// io.Reader whose errors name Path.
type Reader struct {
	Fd   int
	Path string // for errors
}

// Read implements io.Reader.
func (r Reader) Read(p []byte) (int, error) {
	for {
		n, err := Read(r.Fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: r.Path, Err: err}
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

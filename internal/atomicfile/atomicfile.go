// Package atomicfile writes an output file so that it appears whole or not
// at all: data goes to a temporary file in the target directory, which is
// fsynced and renamed over the target on Commit, and removed on Abort.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/closurefs/closurefs/internal/linkpath"
)

// File is an output file being written.
type File struct {
	*os.File
	target string
	done   bool
}

// Create starts writing path. The temporary file lives next to it, so the
// final rename stays on one filesystem. If path is a symlink, the file it
// leads to is written (the link stays); an existing path that is not a
// regular file (a device, a directory) is refused, as renaming over it
// would replace it rather than write into it.
func Create(path string, perm os.FileMode) (*File, error) {
	path, err := target(path)
	if err != nil {
		return nil, err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{File: f, target: path}, nil
}

// Commit makes the written data durable and moves it to the target path.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("%s: already committed or aborted", f.target)
	}
	f.done = true
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		os.Remove(f.File.Name())
		return fmt.Errorf("write %s: %w", f.target, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("write %s: %w", f.target, err)
	}
	if err := os.Rename(f.File.Name(), f.target); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("write %s: %w", f.target, err)
	}
	if d, err := os.Open(filepath.Dir(f.target)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort discards the temporary file. It is safe to call after Commit (it
// then does nothing), so `defer f.Abort()` cleans up every failed path.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// target follows symlinks at path (also dangling ones: the file they name
// is to be created) and checks that what is there, if anything, is a
// regular file.
func target(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	if abs, err = linkpath.Follow(abs); err != nil {
		return "", fmt.Errorf("create %s: %w", path, err)
	}
	fi, err := os.Lstat(abs)
	switch {
	case os.IsNotExist(err):
		return abs, nil
	case err != nil:
		return "", fmt.Errorf("create %s: %w", path, err)
	case fi.Mode().IsRegular():
		return abs, nil
	case fi.IsDir():
		return "", fmt.Errorf("create %s: is a directory", path)
	}
	kind := "a special file"
	switch m := fi.Mode(); {
	case m&os.ModeDevice != 0:
		kind = "a device"
	case m&os.ModeNamedPipe != 0:
		kind = "a named pipe"
	case m&os.ModeSocket != 0:
		kind = "a socket"
	}
	return "", fmt.Errorf("create %s: is %s, not a regular file; write to a file, then copy it there", path, kind)
}

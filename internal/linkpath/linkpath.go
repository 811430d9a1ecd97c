// Package linkpath follows the symlinks at the last element of a path the
// way the kernel does, without looking at what it finally leads to, which
// may not exist yet (a file to create) or may be a mount that must not be
// touched (a FUSE mountpoint whose daemon may hang).
package linkpath

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxHops is the kernel's limit on the symlinks followed in one lookup.
const maxHops = 40

// Follow returns the path p leads to once the symlinks at its last
// element are followed. The final path is not looked at. A relative
// target is resolved from the directory holding the link, element by
// element, with the symlinks of that directory and of the target's own
// directories followed before any "..", as the kernel resolves it. p
// should be absolute.
func Follow(p string) (string, error) {
	for range maxHops {
		t, err := os.Readlink(p)
		if err != nil {
			return p, nil // not a symlink, or nothing there
		}
		if filepath.IsAbs(t) {
			p = resolveIn("/", t[1:])
		} else {
			p = resolveIn(realDir(filepath.Dir(p)), t)
		}
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", p)
}

// realDir returns dir with its symlinks resolved, or dir if that fails.
func realDir(dir string) string {
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		return r
	}
	return dir
}

// resolveIn returns the path rel names from directory dir (which has no
// symlinks in it), following the symlinks of every element but the last.
func resolveIn(dir, rel string) string {
	elems := strings.Split(rel, "/")
	for i, e := range elems {
		switch {
		case e == "" || e == ".":
		case e == "..":
			dir = filepath.Dir(dir)
		case i == len(elems)-1:
			return filepath.Join(dir, e)
		default:
			dir = realDir(filepath.Join(dir, e))
		}
	}
	return dir
}

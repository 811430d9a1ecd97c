package image

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// readXattrs reads the extended attributes of the file at p without
// following a final symlink.
func readXattrs(p string) ([]Xattr, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: listxattr: %w", p, err)
	}
	if sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, buf); err != nil {
		return nil, fmt.Errorf("%s: listxattr: %w", p, err)
	}
	var xs []Xattr
	for _, k := range bytes.Split(buf[:sz], []byte{0}) {
		if len(k) == 0 {
			continue
		}
		vsz, err := unix.Lgetxattr(p, string(k), nil)
		if err != nil {
			return nil, fmt.Errorf("%s: getxattr %s: %w", p, k, err)
		}
		v := make([]byte, vsz)
		if vsz, err = unix.Lgetxattr(p, string(k), v); err != nil {
			return nil, fmt.Errorf("%s: getxattr %s: %w", p, k, err)
		}
		xs = append(xs, Xattr{Key: string(k), Value: v[:vsz]})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Key < xs[j].Key })
	return xs, nil
}

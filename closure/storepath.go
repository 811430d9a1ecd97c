package closure

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// HashPartLen is the length of the hash part of a store path's base name.
const HashPartLen = 32

// MaxNameLen is the longest name Nix allows after the hash part and dash.
const MaxNameLen = 211

// maxSymlinkHops bounds symlink resolution in FollowLinksToStorePath.
const maxSymlinkHops = 40

// ErrBadStorePath is returned (wrapped) for strings that are not valid
// store paths.
var ErrBadStorePath = errors.New("invalid store path")

// StorePath is a parsed store path <Dir>/<Hash>-<Name>.
type StorePath struct {
	Dir  string // store directory, e.g. /nix/store
	Hash string // 32 nix-base32 characters
	Name string // name after the dash
}

// String returns the full store path.
func (p StorePath) String() string { return p.Dir + "/" + p.Hash + "-" + p.Name }

// Base returns the store path's base name, <Hash>-<Name>.
func (p StorePath) Base() string { return p.Hash + "-" + p.Name }

// ParseStorePath parses the full store path s, which must be exactly
// storeDir, a slash and a valid base name (see ParseBaseName).
func ParseStorePath(storeDir, s string) (StorePath, error) {
	dir, base, ok := cutLast(s, '/')
	if !ok || dir != storeDir {
		return StorePath{}, fmt.Errorf("%w: %q is not directly in the store directory %s", ErrBadStorePath, s, storeDir)
	}
	p, err := ParseBaseName(base)
	if err != nil {
		return StorePath{}, err
	}
	p.Dir = storeDir
	return p, nil
}

// ParseBaseName parses a store path base name: 32 nix-base32 characters, a
// dash and a name allowed by ValidateName.
func ParseBaseName(base string) (StorePath, error) {
	if len(base) < HashPartLen+2 {
		return StorePath{}, fmt.Errorf("%w: %q is too short", ErrBadStorePath, base)
	}
	for i := 0; i < HashPartLen; i++ {
		if !isBase32Char(base[i]) {
			return StorePath{}, fmt.Errorf("%w: %q: hash part has invalid character %q", ErrBadStorePath, base, base[i])
		}
	}
	if base[HashPartLen] != '-' {
		return StorePath{}, fmt.Errorf("%w: %q: no dash after the hash part", ErrBadStorePath, base)
	}
	name := base[HashPartLen+1:]
	if err := ValidateName(name); err != nil {
		return StorePath{}, fmt.Errorf("%w: %q: %v", ErrBadStorePath, base, err)
	}
	return StorePath{Hash: base[:HashPartLen], Name: name}, nil
}

// ValidateName checks a store path name against Nix's rules: 1 to
// MaxNameLen characters from [A-Za-z0-9+-._?=], not starting with a dot.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name is %d characters long, more than %d", len(name), MaxNameLen)
	case name[0] == '.':
		return errors.New("name starts with a dot")
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fmt.Errorf("name has invalid character %q", name[i])
		}
	}
	return nil
}

func nameChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("+-._?=", c) >= 0
}

// IsStorePath reports whether s is a valid store path in storeDir.
func IsStorePath(storeDir, s string) bool {
	_, err := ParseStorePath(storeDir, s)
	return err == nil
}

// ToStorePath returns the store path containing s, a path lexically inside
// storeDir (e.g. /nix/store/<hash>-foo/bin/foo gives
// /nix/store/<hash>-foo). It does not touch the file system.
func ToStorePath(storeDir, s string) (string, error) {
	c := filepath.Clean(s)
	rest, ok := strings.CutPrefix(c, storeDir+"/")
	if !ok {
		return "", fmt.Errorf("%w: %q is not in the store directory %s", ErrBadStorePath, s, storeDir)
	}
	base, _, _ := strings.Cut(rest, "/")
	p := storeDir + "/" + base
	if _, err := ParseStorePath(storeDir, p); err != nil {
		return "", err
	}
	return p, nil
}

// FollowLinksToStorePath maps s to the store path it is in or leads to:
// a path inside a store path, or a symlink chain ending there, such as a
// result link, /run/current-system or a profile. Symlinks are resolved one
// component at a time until the path enters storeDir, so a store path that
// is itself a symlink is returned rather than followed. Relative paths are
// taken from the current directory.
func FollowLinksToStorePath(storeDir, s string) (string, error) {
	p, err := filepath.Abs(s)
	if err != nil {
		return "", err
	}
	for hops := 0; ; {
		if strings.HasPrefix(p, storeDir+"/") {
			return ToStorePath(storeDir, p)
		}
		// Find the first symlink among p's components.
		cur := "/"
		comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
		resolved := false
		for i, comp := range comps {
			if comp == "" {
				continue
			}
			next := filepath.Join(cur, comp)
			if strings.HasPrefix(next, storeDir+"/") {
				return ToStorePath(storeDir, filepath.Join(append([]string{next}, comps[i+1:]...)...))
			}
			fi, err := os.Lstat(next)
			if err != nil {
				return "", fmt.Errorf("resolving %s: %w", s, err)
			}
			if fi.Mode()&os.ModeSymlink == 0 {
				cur = next
				continue
			}
			if hops++; hops > maxSymlinkHops {
				return "", fmt.Errorf("resolving %s: too many levels of symbolic links", s)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", fmt.Errorf("resolving %s: %w", s, err)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			p = filepath.Join(append([]string{target}, comps[i+1:]...)...)
			resolved = true
			break
		}
		if !resolved {
			return "", fmt.Errorf("%w: %s does not lead into the store directory %s", ErrBadStorePath, s, storeDir)
		}
	}
}

// cutLast splits s around the last sep.
func cutLast(s string, sep byte) (before, after string, found bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

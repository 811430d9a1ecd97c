package closure

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrBadHash is returned (wrapped) for malformed NAR hash strings.
var ErrBadHash = errors.New("invalid SHA-256 hash")

// HashFormat selects how FormatHash prints a digest.
type HashFormat int

// Hash formats understood by FormatHash.
const (
	HashBase32 HashFormat = iota // nix-base32, 52 characters
	HashBase16                   // lower-case hex, 64 characters
	HashBase64                   // standard base64 with padding, 44 characters
	HashSRI                      // "sha256-" and base64
)

// FormatHash prints the SHA-256 digest h in format f, with the "sha256:"
// prefix if prefix is true (ignored for HashSRI, which has its own).
func FormatHash(h [32]byte, f HashFormat, prefix bool) string {
	var s string
	switch f {
	case HashBase16:
		s = hex.EncodeToString(h[:])
	case HashBase64:
		s = base64.StdEncoding.EncodeToString(h[:])
	case HashSRI:
		return "sha256-" + base64.StdEncoding.EncodeToString(h[:])
	default:
		s = EncodeBase32(h[:])
	}
	if prefix {
		return "sha256:" + s
	}
	return s
}

// ParseHash parses a SHA-256 digest the way Nix's Hash::parseAny does for
// an expected type of sha256: an optional "sha256:" prefix followed by
// base16 (64 characters), nix-base32 (52) or base64 (44), or an SRI hash
// "sha256-<base64>".
func ParseHash(s string) ([32]byte, error) {
	var h [32]byte
	rest := s
	sri := false
	if i := strings.IndexAny(s, ":-"); i >= 0 {
		algo := s[:i]
		if algo != "sha256" {
			return h, fmt.Errorf("%w: %q: hash type %q, want sha256", ErrBadHash, s, algo)
		}
		sri = s[i] == '-'
		rest = s[i+1:]
	}
	var b []byte
	var err error
	switch {
	case len(rest) == 64 && !sri:
		b, err = hex.DecodeString(rest)
	case len(rest) == 52 && !sri:
		b, err = DecodeBase32(rest, 32)
	case len(rest) == 44:
		b, err = base64.StdEncoding.DecodeString(rest)
		if err == nil && len(b) != 32 {
			err = errors.New("wrong length")
		}
	default:
		if sri {
			return h, fmt.Errorf("%w: %q: SRI hash must have 44 base64 characters", ErrBadHash, s)
		}
		return h, fmt.Errorf("%w: %q: %d characters is not base16 (64), nix-base32 (52) or base64 (44)", ErrBadHash, s, len(rest))
	}
	if err != nil {
		return h, fmt.Errorf("%w: %q: %v", ErrBadHash, s, err)
	}
	copy(h[:], b)
	return h, nil
}

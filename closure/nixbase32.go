package closure

import (
	"errors"
	"fmt"
)

// nixBase32Alphabet is Nix's base-32 alphabet: the digits and lower-case
// letters without e, o, u and t.
const nixBase32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz"

// nixBase32Index maps a byte to its digit value, or 0xff.
var nixBase32Index = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(nixBase32Alphabet); i++ {
		t[nixBase32Alphabet[i]] = byte(i)
	}
	return t
}()

// Base32EncodedLen returns the length of the nix-base32 encoding of n bytes.
func Base32EncodedLen(n int) int {
	if n == 0 {
		return 0
	}
	return (n*8-1)/5 + 1
}

// Base32DecodedLen returns the number of bytes whose nix-base32 encoding is
// n characters long, rounding down.
func Base32DecodedLen(n int) int {
	return n * 5 / 8
}

// EncodeBase32 returns the nix-base32 encoding of b. Nix reads the input as
// one little-endian number and prints its 5-bit digits most significant
// first, so the result is not RFC 4648 base32.
func EncodeBase32(b []byte) string {
	n := Base32EncodedLen(len(b))
	s := make([]byte, 0, n)
	for d := n - 1; d >= 0; d-- {
		bit := uint(d * 5)
		i, j := bit/8, bit%8
		c := b[i] >> j
		if int(i)+1 < len(b) {
			c |= b[i+1] << (8 - j)
		}
		s = append(s, nixBase32Alphabet[c&0x1f])
	}
	return string(s)
}

// ErrBadBase32 is returned (wrapped) for malformed nix-base32 strings.
var ErrBadBase32 = errors.New("invalid nix-base32 string")

// DecodeBase32 decodes the nix-base32 string s into exactly size bytes. s
// must be Base32EncodedLen(size) characters long and must not encode bits
// beyond size bytes.
func DecodeBase32(s string, size int) ([]byte, error) {
	if len(s) != Base32EncodedLen(size) {
		return nil, fmt.Errorf("%w: length %d, want %d", ErrBadBase32, len(s), Base32EncodedLen(size))
	}
	b := make([]byte, size)
	for n := 0; n < len(s); n++ {
		c := s[len(s)-n-1]
		digit := nixBase32Index[c]
		if digit == 0xff {
			return nil, fmt.Errorf("%w: character %q", ErrBadBase32, c)
		}
		bit := uint(n * 5)
		i, j := int(bit/8), bit%8
		b[i] |= digit << j
		carry := digit >> (8 - j)
		if i+1 < size {
			b[i+1] |= carry
		} else if carry != 0 {
			return nil, fmt.Errorf("%w: %q has bits beyond %d bytes", ErrBadBase32, s, size)
		}
	}
	return b, nil
}

// isBase32Char reports whether c is in Nix's base-32 alphabet.
func isBase32Char(c byte) bool { return nixBase32Index[c] != 0xff }

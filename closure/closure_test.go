package closure

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestBase32KnownVectors(t *testing.T) {
	// sha256("") as printed by `nix-hash --type sha256 --flat --base32 /dev/null`.
	empty := sha256.Sum256(nil)
	if got, want := EncodeBase32(empty[:]), "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"; got != want {
		t.Errorf("EncodeBase32(sha256(\"\")) = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte{0}, "00"},
		{[]byte{0x1f}, "0z"},
		{[]byte{0xff}, "7z"},
	} {
		if got := EncodeBase32(tc.in); got != tc.want {
			t.Errorf("EncodeBase32(%x) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := DecodeBase32(tc.want, len(tc.in))
		if err != nil || !bytes.Equal(back, tc.in) && len(tc.in) > 0 {
			t.Errorf("DecodeBase32(%q) = %x, %v", tc.want, back, err)
		}
	}
}

func TestBase32AgainstNix(t *testing.T) {
	if _, err := exec.LookPath("nix-hash"); err != nil {
		t.Skip("nix-hash not installed")
	}
	var args []string
	var want [][]byte
	for i := 0; i < 20; i++ {
		b := make([]byte, 32)
		rand.Read(b)
		want = append(want, b)
		args = append(args, hex.EncodeToString(b))
	}
	out, err := exec.Command("nix-hash", append([]string{"--type", "sha256", "--to-base32"}, args...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(want) {
		t.Fatalf("nix-hash printed %d lines, want %d", len(lines), len(want))
	}
	for i, l := range lines {
		if got := EncodeBase32(want[i]); got != l {
			t.Errorf("EncodeBase32(%x) = %s, nix-hash says %s", want[i], got, l)
		}
		b, err := DecodeBase32(l, 32)
		if err != nil || !bytes.Equal(b, want[i]) {
			t.Errorf("DecodeBase32(%s) = %x, %v; want %x", l, b, err, want[i])
		}
	}
}

func TestDecodeBase32Errors(t *testing.T) {
	for _, s := range []string{"0", "e0", "0e", "u0", "80", "zz"} {
		if _, err := DecodeBase32(s, 1); !errors.Is(err, ErrBadBase32) {
			t.Errorf("DecodeBase32(%q, 1): err = %v, want ErrBadBase32", s, err)
		}
	}
}

const testHash = "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"

func TestParseStorePath(t *testing.T) {
	h := "3hqij8902382qfrkyh2qyy84m808d2w9"
	long := strings.Repeat("a", MaxNameLen)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"/nix/store/" + h + "-hello", true},
		{"/nix/store/" + h + "-a+b-c._?=X9", true},
		{"/nix/store/" + h + "-" + long, true},
		{"/nix/store/" + h + "-" + long + "a", false},
		{"/nix/store/" + h + "-.hidden", false},
		{"/nix/store/" + h + "-", false},
		{"/nix/store/" + h + "hello", false},
		{"/nix/store/" + h[:31] + "-hello", false},
		{"/nix/store/" + h[:31] + "e-hello", false},
		{"/nix/store/" + h + "-he llo", false},
		{"/nix/store/" + h + "-hé", false},
		{"/nix/store/" + h + "-hello/bin", false},
		{"/nix/store//" + h + "-hello", false},
		{"/other/" + h + "-hello", false},
		{"", false},
	} {
		p, err := ParseStorePath("/nix/store", tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseStorePath(%q): err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrBadStorePath) {
			t.Errorf("ParseStorePath(%q): err %v is not ErrBadStorePath", tc.in, err)
		}
		if tc.ok && p.String() != tc.in {
			t.Errorf("ParseStorePath(%q).String() = %q", tc.in, p.String())
		}
	}
}

func TestToStorePath(t *testing.T) {
	h := "3hqij8902382qfrkyh2qyy84m808d2w9"
	p := "/s/" + h + "-x"
	for _, tc := range []struct{ in, want string }{
		{p, p},
		{p + "/bin/x", p},
		{p + "/", p},
		{"/s/./" + h + "-x/../" + h + "-x/a", p},
		{"/s", ""},
		{"/t/" + h + "-x", ""},
	} {
		got, err := ToStorePath("/s", tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ToStorePath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseHash(t *testing.T) {
	want := sha256.Sum256(nil)
	b16 := hex.EncodeToString(want[:])
	for _, s := range []string{
		testHash, "sha256:" + testHash,
		b16, "sha256:" + b16, strings.ToUpper(b16),
		"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
	} {
		got, err := ParseHash(s)
		if err != nil || got != want {
			t.Errorf("ParseHash(%q) = %x, %v; want %x", s, got, err, want)
		}
	}
	for _, s := range []string{
		"", "sha256:", "md5:" + testHash, "sha256-" + testHash, "sha256:" + testHash[1:],
		"sha256:" + testHash[:51] + "e", b16[:63] + "g", "sha512:" + b16,
		"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF!=",
	} {
		if _, err := ParseHash(s); !errors.Is(err, ErrBadHash) {
			t.Errorf("ParseHash(%q): err = %v, want ErrBadHash", s, err)
		}
	}
	if got := FormatHash(want, HashSRI, false); got != "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" {
		t.Errorf("FormatHash SRI = %s", got)
	}
}
